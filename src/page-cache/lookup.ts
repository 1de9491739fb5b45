/**
 * What the cache does with a lookup: a fresh entry is a hit (counted per tier); a stale one is
 * served in grace with one background refresh, or revalidated; an L1 miss asks L2 (when there
 * is one and no fetch for the key is already running), then the origin through the fill.
 */
import type { Clock } from '../core/clock.js'
import type { Flights } from './coalesce.js'
import type { PageCacheContext } from './context.js'
import type { Fill } from './fill.js'
import type { MemoryStore } from './memory-store.js'
import { deliver, selectVariant } from './respond.js'
import type { Counters } from './stats.js'
import type { CacheEntry, CacheRequest, CacheResult, OriginFetch } from './types.js'

export class Lookup {
  readonly #ctx: PageCacheContext
  readonly #fill: Fill
  readonly #clock: Clock
  readonly #l1: MemoryStore
  readonly #flights: Flights
  readonly #s: Counters

  constructor(ctx: PageCacheContext, fill: Fill) {
    this.#ctx = ctx
    this.#fill = fill
    this.#clock = ctx.clock
    this.#l1 = ctx.l1
    this.#flights = ctx.flights
    this.#s = ctx.counters
  }

  /** An entry found in L1 or L2: a hit while fresh, else grace or revalidation. */
  found(key: string, entry: CacheEntry, req: CacheRequest, fetchOrigin: OriginFetch, tier: 'l1' | 'l2'): CacheResult | Promise<CacheResult> {
    const now = this.#clock.now()
    if (entry.staleAt <= now) return this.#stale(key, entry, req, fetchOrigin, now)
    this.#s.hits++
    if (tier === 'l1') {
      this.#s.l1Hits++
      return deliver(entry, req, 'HIT', now, 'hit')
    }
    this.#s.l2Hits++
    return deliver(entry, req, 'HIT', now, 'hit; detail=l2')
  }

  /** No usable L1 variant: L2 when there is one and no fetch for the key runs, else the origin. */
  async afterL1Miss(key: string, req: CacheRequest, fetchOrigin: OriginFetch, primaryFound: boolean): Promise<CacheResult> {
    if (this.#ctx.l2 !== undefined && !this.#flights.has(key)) {
      const variants = await this.#ctx.l2.get(key)
      if (variants !== undefined && variants.length > 0) {
        // Fill L1 with what L2 had; each entry keeps its own staleAt/deleteAt, i.e. the remaining freshness.
        for (const v of variants) this.#fill.storeL1(v)
        const entry = selectVariant(this.#l1.get(key) ?? [], req.headers)
        if (entry !== undefined) return this.found(key, entry, req, fetchOrigin, 'l2')
      } else this.#s.l2Misses++
    }
    return this.#fill.fetch(key, req, fetchOrigin, undefined, primaryFound ? 'vary-miss' : 'uri-miss')
  }

  /** A stale entry: grace serves it at once with one background refresh; otherwise revalidate. */
  #stale(key: string, entry: CacheEntry, req: CacheRequest, fetchOrigin: OriginFetch, now: number): CacheResult | Promise<CacheResult> {
    if (!entry.mustRevalidate && now - entry.staleAt < entry.graceMs) {
      this.#fill.refresh(key, entry, req, fetchOrigin)
      this.#s.staleHits++
      return deliver(entry, req, 'STALE', now, 'hit; detail=grace')
    }
    return this.#fill.fetch(key, req, fetchOrigin, entry, 'stale')
  }
}
