import type { LRUCache } from 'lru-cache'
import type { Clock } from '../core/clock.js'
import { CacheCore } from './core.js'
import type { Entry } from './entry.js'
import { ViewKeys } from './keys.js'
import { resolveOptions, validateName, type DataCacheOptions } from './options.js'
import type { DataCacheEventName, DataCacheEvents, DataCacheStats, GetOptions, GetOrSetOptions, Loader, SetOptions } from './types.js'

/**
 * A two-tier cache (L1 in process, L2 Redis) seen through one namespace. `namespace(name)`
 * returns another view over the same tiers, connections, bus and counters, with its own keys.
 */
export class DataCache {
  readonly #core: CacheCore
  readonly #keys: ViewKeys
  readonly #views = new Map<string, DataCache>()
  // Copied out of the core so the L1-hit path reads own fields only.
  readonly #lru: LRUCache<string, Entry> | undefined
  readonly #l1Prefix: string
  readonly #clock: Clock

  /** @internal use createDataCache() or namespace() */
  constructor(core: CacheCore, keys: ViewKeys) {
    this.#core = core
    this.#keys = keys
    this.#lru = core.l1?.lru
    this.#l1Prefix = keys.l1Prefix
    this.#clock = core.clock
  }

  /** The full namespace of this view, e.g. 'shop' or 'shop:carts'. */
  get name(): string {
    return this.#keys.namespace
  }

  /** This instance's id on the bus. */
  get nodeId(): string {
    return this.#core.nodeId
  }

  /**
   * Returns the fresh value, or loads it once per process (per cluster with `lock`), stores it
   * in both tiers and returns it. With a stale value in grace, a failing or slow loader yields
   * the stale value instead.
   */
  getOrSet<T>(key: string, loader: Loader<T>, options?: GetOrSetOptions): Promise<T> {
    // The hot path: one lookup, one clock read, no allocation after the first hit (the resolved
    // promise is kept on the entry), no async function (which would cost an extra promise).
    const lru = this.#lru
    if (lru !== undefined) {
      const l1Key = this.#l1Prefix === '' ? key : this.#l1Prefix + key
      const e = lru.get(l1Key)
      if (e !== undefined && e.staleAt > this.#clock.now()) {
        const core = this.#core
        core.l1Hits++
        if (core.wantHits) core.hit(key, this.#keys.namespace, 'l1')
        return (e.promise ??= Promise.resolve(e.value)) as Promise<T>
      }
      return this.#core.miss(this.#keys, l1Key, key, loader, options, e)
    }
    return this.#core.miss(this.#keys, key, key, loader, options, undefined)
  }

  /** The fresh value from L1 or L2, else undefined (or the graced one with `allowStale`). */
  get<T = unknown>(key: string, options?: GetOptions): Promise<T | undefined> {
    const lru = this.#lru
    if (lru !== undefined) {
      const e = lru.get(this.#l1Prefix === '' ? key : this.#l1Prefix + key)
      if (e !== undefined && e.staleAt > this.#clock.now()) {
        const core = this.#core
        core.l1Hits++
        if (core.wantHits) core.hit(key, this.#keys.namespace, 'l1')
        return (e.promise ??= Promise.resolve(e.value)) as Promise<T>
      }
    }
    return this.#core.read(this.#keys, key, options?.allowStale === true) as Promise<T | undefined>
  }

  /** Is there a fresh value in L1 or L2? */
  has(key: string): Promise<boolean> {
    return this.#core.has(this.#keys, key)
  }

  /** Writes L1 and L2 and invalidates the key on every other node. */
  set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    return this.#core.set(this.#keys, key, value, options)
  }

  /** Deletes one key (or several) in L1 and L2, on every node. */
  delete(key: string | readonly string[]): Promise<void> {
    return this.#core.delete(this.#keys, typeof key === 'string' ? [key] : key)
  }

  /** Deletes every key carrying this tag (or any of these tags) in L1 and L2, on every node. */
  deleteByTag(tag: string | readonly string[]): Promise<void> {
    return this.#core.deleteByTag(this.#keys, typeof tag === 'string' ? [tag] : tag)
  }

  /** Deletes this namespace and its sub-namespaces, in L1 and L2, on every node. */
  clear(): Promise<void> {
    return this.#core.clear(this.#keys)
  }

  /** A view with its own key prefix, sharing tiers, connections, bus, stats and events. */
  namespace(name: string): DataCache {
    let view = this.#views.get(name)
    if (view === undefined) {
      validateName(name, 'namespace()')
      view = new DataCache(this.#core, new ViewKeys(this.#core.opts.namespace, this.#keys.child(name)))
      this.#views.set(name, view)
    }
    return view
  }

  /** Resolves once Redis is connected and the bus subscribed (bounded by l2.connectWait); never rejects. */
  ready(): Promise<void> {
    return this.#core.ready()
  }

  /** Counters shared by all views of this cache. */
  stats(): DataCacheStats {
    return this.#core.stats()
  }

  on<E extends DataCacheEventName>(event: E, listener: (payload: DataCacheEvents[E]) => void): this {
    this.#core.on(event, listener)
    return this
  }

  off<E extends DataCacheEventName>(event: E, listener: (payload: DataCacheEvents[E]) => void): this {
    this.#core.off(event, listener)
    return this
  }

  once<E extends DataCacheEventName>(event: E, listener: (payload: DataCacheEvents[E]) => void): this {
    this.#core.once(event, listener)
    return this
  }

  /** Closes the connections this cache opened (shared by all views). A caller's ioredis instance is left open. */
  disconnect(): Promise<void> {
    return this.#core.disconnect()
  }
}

/** Validates the options (throws STRATA_DATA_CACHE_OPTIONS on any mistake) and builds the cache. */
export function createDataCache(options: DataCacheOptions = {}): DataCache {
  const resolved = resolveOptions(options)
  const core = new CacheCore(resolved)
  return new DataCache(core, new ViewKeys(resolved.namespace, ''))
}
