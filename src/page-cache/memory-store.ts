/**
 * L1: an in-process LRU bounded by bytes (body + headers), answering synchronously. Values are the
 * variant lists of one URL, so a lookup is one map access.
 */
import { LRUCache } from 'lru-cache'
import { systemClock, type Clock } from '../core/clock.js'
import { GarbageNudge, defaultNudgeBytes, type GcRequest } from './gc-nudge.js'
import { selectsEntry, soften, withVariant, type PageStore, type PurgeOptions, type PurgeSelector, type StoreStats } from './store.js'
import type { CacheEntry } from './types.js'

/** Keys handled per event-loop turn by a scanning purge, so a large cache never blocks the loop. */
export const PURGE_SLICE = 1000

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve))

export interface MemoryStoreOptions {
  maxBytes: number
  clock?: Clock
  /**
   * Bytes stored after which V8 is asked for a scavenge, and bytes dropped (evicted, deleted,
   * purged) after which it is asked for a major collection, so dead read buffers and bodies do not
   * stay resident until V8 notices them (see gc-nudge.ts). Default: maxBytes / 16, between 4 and
   * 64 MB; 0 turns the nudge off.
   */
  gcNudgeBytes?: number
  /** How the nudge asks for a collection (tests); default V8's own. */
  requestGc?: GcRequest
  /** The least time between two major collections the nudge asks for (default 100 ms). */
  gcMinMajorGapMs?: number
}

function sizeOf(variants: readonly CacheEntry[]): number {
  let n = 0
  for (const v of variants) n += v.size
  return Math.max(1, n)
}

export class MemoryStore implements PageStore {
  readonly name = 'memory'
  #lru: LRUCache<string, readonly CacheEntry[]>
  #clock: Clock
  readonly #nudge: GarbageNudge | undefined

  constructor(opts: MemoryStoreOptions) {
    this.#clock = opts.clock ?? systemClock
    const nudgeBytes = opts.gcNudgeBytes ?? defaultNudgeBytes(opts.maxBytes)
    const nudge = nudgeBytes > 0 ? new GarbageNudge(nudgeBytes, opts.requestGc, opts.gcMinMajorGapMs === undefined ? {} : { minMajorGapMs: opts.gcMinMajorGapMs }) : undefined
    this.#nudge = nudge
    this.#lru = new LRUCache<string, readonly CacheEntry[]>({
      maxSize: Math.max(1, opts.maxBytes),
      sizeCalculation: sizeOf,
      // 'set' replaces a variant list whose entries mostly live on in the new list: not counted.
      ...(nudge !== undefined && {
        dispose: (variants: readonly CacheEntry[], _key: string, reason: LRUCache.DisposeReason) => {
          if (reason !== 'set') nudge.dropped(sizeOf(variants))
        },
      }),
    })
  }

  /** Collections asked for after stores (minor) and drops (major); zeros when the nudge is off. */
  get gcNudges(): { minor: number; major: number } {
    return { ...(this.#nudge?.requested ?? { minor: 0, major: 0 }) }
  }

  /** Synchronous: the L1 hot path does not wait for a microtask. */
  get(key: string): readonly CacheEntry[] | undefined {
    const variants = this.#lru.get(key)
    if (variants === undefined) return undefined
    const now = this.#clock.now()
    // Fast path: nothing expired (the usual case) costs no allocation.
    let expired = 0
    for (const v of variants) if (v.deleteAt <= now) expired++
    if (expired === 0) return variants
    const live = variants.filter((v) => v.deleteAt > now)
    if (live.length === 0) this.#lru.delete(key)
    else this.#lru.set(key, live)
    return live.length === 0 ? undefined : live
  }

  /** Every live variant, without touching recency (for stats and tests). */
  peek(key: string): readonly CacheEntry[] | undefined {
    return this.#lru.peek(key)
  }

  set(entry: CacheEntry): void {
    if (entry.size > this.#lru.maxSize) return
    this.#nudge?.stored(entry.size)
    this.#lru.set(entry.key, withVariant(this.#lru.peek(entry.key), entry))
  }

  delete(key: string): number {
    const v = this.#lru.peek(key)
    if (v === undefined) return 0
    this.#lru.delete(key)
    return v.length
  }

  async purge(selector: PurgeSelector, opts: PurgeOptions): Promise<number> {
    if (selector.kind === 'keys') {
      let n = 0
      for (const k of selector.keys) n += this.#apply(k, selector, opts)
      return n
    }
    if (selector.kind === 'all' && !opts.soft) {
      const n = this.#count()
      this.#lru.clear()
      return n
    }
    // A snapshot of the keys, handled in slices with a yield between them.
    const keys = [...this.#lru.keys()]
    let n = 0
    for (let i = 0; i < keys.length; i += PURGE_SLICE) {
      if (i > 0) await yieldToLoop()
      const end = Math.min(keys.length, i + PURGE_SLICE)
      for (let j = i; j < end; j++) {
        const k = keys[j]!
        if (selector.kind === 'match' && !selector.match(k)) continue
        n += this.#apply(k, selector, opts)
      }
    }
    return n
  }

  #apply(key: string, selector: PurgeSelector, opts: PurgeOptions): number {
    const variants = this.#lru.peek(key)
    if (variants === undefined) return 0
    const hit = variants.filter((v) => selectsEntry(selector, v))
    if (hit.length === 0) return 0
    if (opts.soft) {
      this.#lru.set(key, variants.map((v) => (hit.includes(v) ? soften(v, opts.now) : v)), { noUpdateTTL: true })
    } else if (hit.length === variants.length) {
      this.#lru.delete(key)
    } else {
      this.#lru.set(key, variants.filter((v) => !hit.includes(v)))
    }
    return hit.length
  }

  #count(): number {
    let n = 0
    for (const v of this.#lru.values()) n += v.length
    return n
  }

  /** Iterates primary keys (most recently used first). */
  keys(): IterableIterator<string> {
    return this.#lru.keys()
  }

  stats(): StoreStats {
    return { entries: this.#count(), bytes: this.#lru.calculatedSize }
  }

  clear(): void {
    this.#lru.clear()
  }

  async close(): Promise<void> {
    this.#lru.clear()
  }
}
