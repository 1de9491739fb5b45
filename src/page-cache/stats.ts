/**
 * The page cache's counters and the /stats shape built from them. The counters are one plain
 * object of numbers shared by the facade and its parts: an increment on the hit path is a field
 * write, no call.
 */
import type { PageCacheContext } from './context.js'
import type { PageCacheStats } from './types.js'

export interface Counters {
  hits: number
  misses: number
  staleHits: number
  revalidated: number
  coalescedWaits: number
  passes: number
  l1Hits: number
  l2Hits: number
  l2Misses: number
  /** Bus messages this node refused (an invalid purge command), besides those the bus itself refused. */
  busRejected: number
}

export function createCounters(): Counters {
  return { hits: 0, misses: 0, staleHits: 0, revalidated: 0, coalescedWaits: 0, passes: 0, l1Hits: 0, l2Hits: 0, l2Misses: 0, busRejected: 0 }
}

/** Counters and L1 sizes, without I/O. */
export function cacheStats(ctx: PageCacheContext): PageCacheStats {
  const s = ctx.counters
  const l1 = ctx.l1.stats()
  const l2 = ctx.l2
  const lookups = s.hits + s.staleHits + s.misses
  return {
    hits: s.hits,
    misses: s.misses,
    staleHits: s.staleHits,
    revalidated: s.revalidated,
    coalescedWaits: s.coalescedWaits,
    passes: s.passes,
    hitRatio: lookups === 0 ? 0 : (s.hits + s.staleHits) / lookups,
    entries: l1.entries,
    bytes: l1.bytes,
    l1: { hits: s.l1Hits, misses: s.hits + s.staleHits + s.misses - s.l1Hits, entries: l1.entries, bytes: l1.bytes },
    l2: l2 === undefined
      ? { enabled: false }
      : { enabled: true, hits: s.l2Hits, misses: s.l2Misses, entries: 0, bytes: 0, breaker: l2.breakerState, errors: l2.errors, pendingPurges: l2.pendingPurges },
    bus: busStats(ctx),
  }
}

function busStats(ctx: PageCacheContext): PageCacheStats['bus'] {
  const rejected = ctx.counters.busRejected
  if (ctx.bus === undefined) return { enabled: false, rejected }
  const b = ctx.bus.stats?.()
  return { enabled: true, published: b?.published ?? 0, received: Math.max(0, (b?.received ?? 0) - rejected), rejected: (b?.rejected ?? 0) + rejected, queued: b?.queued ?? 0 }
}

/** `cacheStats` plus L2's entry and byte counts (one Redis round trip, breaker-protected). */
export async function fullCacheStats(ctx: PageCacheContext): Promise<PageCacheStats> {
  const st = cacheStats(ctx)
  if (ctx.l2 !== undefined && st.l2.enabled) {
    const l2 = await ctx.l2.stats()
    st.l2.entries = l2.entries
    st.l2.bytes = l2.bytes
  }
  return st
}
