/**
 * The page cache: the whole shared-cache flow behind one call, `handle(req, fetchOrigin)`.
 * L1 (memory, synchronous) → L2 (Redis, optional, behind a breaker) → origin, with coalescing,
 * grace, stale-if-error, revalidation, and invalidation (purges, unsafe methods, the bus).
 *
 * This class is the facade: it wires the parts around one shared context (context.ts) and keeps
 * the fresh-L1-hit path (handle, freshLookup, freshResult, freshEntry, countHit) to itself, on
 * its own fields. The parts: lookup.ts (fresh/stale decisions, L2), fill.ts (origin fetch,
 * coalescing, storing), invalidation.ts (unsafe methods, purges, the bus), stats.ts (counters),
 * redis-wiring.ts (L2 tier and bus setup and teardown), pass.ts (pass-through).
 */
import { randomUUID } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { CacheConfig } from '../config/schema.js'
import { systemClock, type Clock } from '../core/clock.js'
import { discardBody } from '../core/streams.js'
import { silentLogger, type Logger } from '../observability/logger.js'
import type { InvalidationBus } from './bus.js'
import { Flights } from './coalesce.js'
import type { PageCacheContext } from './context.js'
import { Fill } from './fill.js'
import { Invalidation } from './invalidation.js'
import { createKeyFunction, type KeyFunction } from './key.js'
import { Lookup } from './lookup.js'
import { MemoryStore } from './memory-store.js'
import { pass } from './pass.js'
import { isUnsafeMethod } from './policy.js'
import { RedisWiring } from './redis-wiring.js'
import { deliver, selectVariant } from './respond.js'
import { cacheStats, createCounters, fullCacheStats, type Counters } from './stats.js'
import type { PageStore } from './store.js'
import type { CacheEntry, CacheRequest, CacheResult, OriginFetch, PageCacheStats, PurgeCommand } from './types.js'

export interface PageCacheOptions {
  config: CacheConfig
  clock?: Clock
  logger?: Logger
  /** Called once when an entry enters L1; the result is kept as `entry.prepared` (memory only). */
  prepare?: (entry: CacheEntry) => unknown
  /** An L2 store to use instead of the one `config.redis` would create (tests, custom stores). */
  l2?: PageStore
  /** An invalidation bus to use instead of the one `config.redis` would create. */
  bus?: InvalidationBus
  /** How long a stale entry with validators is kept for revalidation, seconds (default 300). */
  keepSeconds?: number
  /** L2 circuit breaker tuning. */
  breaker?: { failureThreshold?: number; cooldownMs?: number }
  /** This node's id on the bus (default: a random UUID). */
  nodeId?: string
}

export class PageCache {
  readonly nodeId: string
  #config: CacheConfig
  #clock: Clock
  #key: KeyFunction
  #l1: MemoryStore
  /**
   * What the parts share. `#config`, `#clock`, `#key`, `#l1` and `#s` are the same objects,
   * kept here too so the hit path reads them in one step (reconfigure() updates both configs).
   */
  #ctx: PageCacheContext
  #s: Counters
  #invalidation: Invalidation
  #lookup: Lookup
  #redis: RedisWiring

  constructor(opts: PageCacheOptions) {
    this.#config = opts.config
    this.#clock = opts.clock ?? systemClock
    this.#key = createKeyFunction(opts.config.key)
    this.#l1 = new MemoryStore({ maxBytes: opts.config.maxBytes, clock: this.#clock, ...(opts.config.gcNudge === false ? { gcNudgeBytes: 0 } : {}) })
    this.nodeId = opts.nodeId ?? randomUUID()
    this.#s = createCounters()
    this.#ctx = {
      config: this.#config, nodeId: this.nodeId, clock: this.#clock, log: (opts.logger ?? silentLogger).child({ module: 'page-cache' }), key: this.#key, l1: this.#l1,
      l2: undefined, bus: undefined, hitForPass: new LRUCache({ max: 10_000 }), flights: new Flights(), counters: this.#s,
    }
    this.#invalidation = new Invalidation(this.#ctx)
    const fill = new Fill(this.#ctx, this.#invalidation, { prepare: opts.prepare, keepMs: (opts.keepSeconds ?? 300) * 1000 })
    this.#lookup = new Lookup(this.#ctx, fill)
    this.#redis = new RedisWiring(this.#ctx, opts, () => this.#invalidation.subscribe())
  }

  /** Resolves once L2 and the bus are set up (requests before that simply skip them). */
  ready(): Promise<void> {
    return this.#redis.ready()
  }

  /** The primary cache key for a request (exported behaviour for ESI and the proxy). */
  keyFor(req: Pick<CacheRequest, 'scheme' | 'host' | 'url'>): string {
    return this.#key(req.scheme, req.host, req.url)
  }

  handle(req: CacheRequest, fetchOrigin: OriginFetch): CacheResult | Promise<CacheResult> {
    const method = req.method
    if (!this.#config.enabled) return pass(this.#s, req, fetchOrigin, 'bypass')
    if (method !== 'GET' && method !== 'HEAD') {
      // Also on a route whose cache is off: the URL may be stored through another route.
      if (isUnsafeMethod(method)) return this.#invalidation.unsafe(req, fetchOrigin)
      return pass(this.#s, req, fetchOrigin, 'method')
    }
    if (req.policy?.enabled === false) return pass(this.#s, req, fetchOrigin, 'bypass')
    const key = this.#key(req.scheme, req.host, req.url)
    const variants = this.#l1.get(key)
    if (variants !== undefined) {
      const entry = selectVariant(variants, req.headers)
      if (entry !== undefined) return this.#lookup.found(key, entry, req, fetchOrigin, 'l1')
    }
    return this.#lookup.afterL1Miss(key, req, fetchOrigin, variants !== undefined)
  }

  /**
   * The fresh L1 entry for a GET, synchronously, or undefined: no fetch, no L2, no waiting, no
   * response object. Counted as a hit. ESI splices cached fragments with it, without a promise,
   * a timer or a header copy per include.
   */
  freshEntry(req: CacheRequest, count = true, key?: string, now = this.#clock.now()): CacheEntry | undefined {
    if (req.method !== 'GET') return undefined
    const entry = this.#freshL1(req, now, key)
    if (entry !== undefined && count) this.countHit()
    return entry
  }

  /** The fresh L1 variant for a request (its primary key, when the caller has it), or undefined (no side effects). */
  #freshL1(req: CacheRequest, now: number, key = this.#key(req.scheme, req.host, req.url)): CacheEntry | undefined {
    if (!this.#config.enabled || req.policy?.enabled === false) return undefined
    const variants = this.#l1.get(key)
    if (variants === undefined) return undefined
    const entry = selectVariant(variants, req.headers)
    return entry === undefined || entry.staleAt <= now ? undefined : entry
  }

  /**
   * The proxy's fast path, step one: the fresh L1 entry for a GET or HEAD, or undefined. Nothing
   * is counted; the caller calls `countHit()` when it serves the entry, and otherwise takes the
   * full path (`handle`). Step two is `plainHit` (respond.ts) for the common case, else
   * `freshResult`.
   */
  freshLookup(req: CacheRequest, now: number): CacheEntry | undefined {
    return this.#freshL1(req, now)
  }

  /** The cache's clock: one reading serves a whole fast-path request. */
  now(): number {
    return this.#clock.now()
  }

  /**
   * Step two otherwise: the complete response for the entry when its body is in memory (a 304,
   * a Range, a template); undefined when it needs a stream (gunzip on the fly).
   */
  freshResult(entry: CacheEntry, req: CacheRequest, now: number): CacheResult | undefined {
    const result = deliver(entry, req, 'HIT', now, 'hit')
    if (result.body !== null && !Buffer.isBuffer(result.body)) {
      discardBody(result.body)
      return undefined
    }
    return result
  }

  /**
   * For the proxy's pass-through path: the Cache-Status `fwd` reason when a request is known,
   * without any I/O, to bypass the cache (the cache is off; a method other than GET and HEAD; a
   * hit-for-pass marker stands and nothing for the URL is in L1), counted as a pass; undefined
   * when `handle` must decide. With an L2, `handle` asks it first for GET and HEAD, so this
   * answers undefined for those.
   */
  passFor(req: CacheRequest): string | undefined {
    if (!this.#config.enabled) {
      this.#s.passes++
      return 'bypass'
    }
    const method = req.method
    if (method !== 'GET' && method !== 'HEAD') {
      // Never served from cache; an unsafe one invalidates afterwards (`invalidateAfter`).
      this.#s.passes++
      return 'method'
    }
    if (req.policy?.enabled === false) {
      this.#s.passes++
      return 'bypass'
    }
    if (this.#ctx.l2 !== undefined) return undefined
    const key = this.#key(req.scheme, req.host, req.url)
    const until = this.#ctx.hitForPass.get(key)
    if (until === undefined || until <= this.#clock.now() || this.#l1.peek(key) !== undefined) return undefined
    this.#s.passes++
    return 'bypass; detail=hit-for-pass'
  }

  /**
   * A config reload: rules and lifetimes apply to the next storage decision. Keys fixed at
   * construction (sizes, Redis, the cache key) are the caller's to keep unchanged.
   */
  reconfigure(config: CacheConfig): void {
    this.#config = config
    this.#ctx.config = config
  }

  /** Records an L1 hit served from `freshHit`. */
  countHit(): void {
    this.#s.hits++
    this.#s.l1Hits++
  }

  /**
   * RFC 9111 §4.4, after the response to an unsafe request: a non-error status invalidates the
   * target URI and the Location / Content-Location URIs on the same origin. Undefined (nothing to
   * wait for) otherwise.
   */
  invalidateAfter(req: CacheRequest, status: number, headers: Record<string, string | string[]>): Promise<void> | undefined {
    return this.#invalidation.invalidateAfter(req, status, headers)
  }

  /**
   * Purges by URLs, prefix, pattern, tags or all (optionally soft). Throws a StrataError with
   * code STRATA_ADMIN_BAD_BODY naming the problem when the command is invalid. Answers how many
   * entries were affected: `purged` is the larger of the L1 and L2 counts.
   */
  purge(cmd: PurgeCommand | unknown): Promise<{ purged: number; l1: number; l2: number }> {
    return this.#invalidation.purge(cmd)
  }

  stats(): PageCacheStats {
    return cacheStats(this.#ctx)
  }

  /** Stats including L2's entry and byte counts (one Redis round trip, breaker-protected). */
  fullStats(): Promise<PageCacheStats> {
    return fullCacheStats(this.#ctx)
  }

  /** The L1 variants under a key, without touching recency (for tests and the admin API). */
  peek(key: string): readonly CacheEntry[] | undefined {
    return this.#l1.peek(key)
  }

  async close(): Promise<void> {
    await this.#redis.close()
    await this.#l1.close()
  }
}
