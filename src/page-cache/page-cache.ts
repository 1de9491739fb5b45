/**
 * The page cache: the whole shared-cache flow behind one call, `handle(req, fetchOrigin)`.
 * L1 (memory, synchronous) → L2 (Redis, optional, behind a breaker) → origin, with coalescing,
 * grace, stale-if-error, revalidation, and invalidation (purges, unsafe methods, the bus).
 */
import { randomUUID } from 'node:crypto'
import { createGunzip } from 'node:zlib'
import type { Readable } from 'node:stream'
import { LRUCache } from 'lru-cache'
import type { CacheConfig } from '../config/schema.js'
import { discardBody, through } from '../core/streams.js'
import { systemClock, type Clock } from '../core/clock.js'
import { headerList, headerValue } from '../core/headers.js'
import { silentLogger, type Logger } from '../observability/logger.js'
import { StrataError } from '../core/errors.js'
import type { InvalidationBus } from './bus.js'
import { Flights, type FlightOutcome } from './coalesce.js'
import { createEntry } from './entry.js'
import { createKeyFunction, type KeyFunction } from './key.js'
import { MemoryStore } from './memory-store.js'
import {
  acceptsEncoding,
  freshenHeaders,
  isUnsafeMethod,
  normalizeAcceptEncoding,
  notModifiedMatches,
  storageDecision,
  variantKey,
  varyFields,
  type NotStorableReason,
} from './policy.js'
import type { PageCacheContext } from './context.js'
import { Invalidation } from './invalidation.js'
import { pass } from './pass.js'
import { RedisWiring } from './redis-wiring.js'
import { cacheStatusValue, deliver, forwardHeaders, selectVariant } from './respond.js'
import type { PageStore } from './store.js'
import { cacheStats, createCounters, fullCacheStats, type Counters } from './stats.js'
import { BodyTee } from './tee.js'
import type { CacheEntry, CacheRequest, CacheResult, OriginFetch, OriginResponse, PageCacheStats, PurgeCommand } from './types.js'

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

/** Request fields that must not reach the origin on a cache fill: the cache answers them itself. */
const CLIENT_CONDITIONALS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range']

/** Reasons worth remembering as hit-for-pass: the next requests would not be cacheable either. */
const HFP_REASONS: ReadonlySet<NotStorableReason> = new Set(['no-store', 'private', 'set-cookie', 'vary-star', 'no-ttl'])

export class PageCache {
  readonly nodeId: string
  #config: CacheConfig
  #clock: Clock
  #log: Logger
  #prepare: ((entry: CacheEntry) => unknown) | undefined
  #key: KeyFunction
  #l1: MemoryStore
  /** What the parts share (context.ts); `#config`, `#clock`, `#key`, `#l1` and `#s` are its hot-path members, kept here directly. */
  #ctx: PageCacheContext
  #s: Counters
  #invalidation: Invalidation
  #redis: RedisWiring
  #keepMs: number

  constructor(opts: PageCacheOptions) {
    this.#config = opts.config
    this.#clock = opts.clock ?? systemClock
    this.#log = (opts.logger ?? silentLogger).child({ module: 'page-cache' })
    this.#prepare = opts.prepare
    this.#key = createKeyFunction(opts.config.key)
    this.#l1 = new MemoryStore({ maxBytes: opts.config.maxBytes, clock: this.#clock })
    this.#keepMs = (opts.keepSeconds ?? 300) * 1000
    this.nodeId = opts.nodeId ?? randomUUID()
    this.#s = createCounters()
    this.#ctx = {
      config: this.#config, nodeId: this.nodeId, clock: this.#clock, log: this.#log, key: this.#key, l1: this.#l1,
      l2: undefined, bus: undefined, hitForPass: new LRUCache({ max: 10_000 }), flights: new Flights(), counters: this.#s,
    }
    this.#invalidation = new Invalidation(this.#ctx)
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
      if (isUnsafeMethod(method)) return this.#invalidation.unsafe(req, fetchOrigin)
      return pass(this.#s, req, fetchOrigin, 'method')
    }
    const key = this.#key(req.scheme, req.host, req.url)
    const variants = this.#l1.get(key)
    if (variants !== undefined) {
      const entry = selectVariant(variants, req.headers)
      if (entry !== undefined) return this.#found(key, entry, req, fetchOrigin, 'l1')
    }
    return this.#afterL1Miss(key, req, fetchOrigin, variants !== undefined)
  }

  /** An entry found in L1 or L2: a hit while fresh, else grace or revalidation. */
  #found(key: string, entry: CacheEntry, req: CacheRequest, fetchOrigin: OriginFetch, tier: 'l1' | 'l2'): CacheResult | Promise<CacheResult> {
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
    if (!this.#config.enabled) return undefined
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

  async #afterL1Miss(key: string, req: CacheRequest, fetchOrigin: OriginFetch, primaryFound: boolean): Promise<CacheResult> {
    if (this.#ctx.l2 !== undefined && !this.#ctx.flights.has(key)) {
      const variants = await this.#ctx.l2.get(key)
      if (variants !== undefined && variants.length > 0) {
        // Fill L1 with what L2 had; each entry keeps its own staleAt/deleteAt, i.e. the remaining freshness.
        for (const v of variants) this.#storeL1(v)
        const entry = selectVariant(this.#l1.get(key) ?? [], req.headers)
        if (entry !== undefined) return this.#found(key, entry, req, fetchOrigin, 'l2')
      } else this.#s.l2Misses++
    }
    return this.#fetch(key, req, fetchOrigin, undefined, primaryFound ? 'vary-miss' : 'uri-miss')
  }

  /** A stale entry: grace serves it at once with one background refresh; otherwise revalidate. */
  #stale(key: string, entry: CacheEntry, req: CacheRequest, fetchOrigin: OriginFetch, now: number): CacheResult | Promise<CacheResult> {
    if (!entry.mustRevalidate && now - entry.staleAt < entry.graceMs) {
      this.#refresh(key, entry, req, fetchOrigin)
      this.#s.staleHits++
      return deliver(entry, req, 'STALE', now, 'hit; detail=grace')
    }
    return this.#fetch(key, req, fetchOrigin, entry, 'stale')
  }

  #canServeStaleIfError(entry: CacheEntry | undefined, now: number): entry is CacheEntry {
    return entry !== undefined && !entry.mustRevalidate && now - entry.staleAt < entry.staleIfErrorMs
  }

  /** One background refresh per key (the flight map doubles as the "already refreshing" flag). */
  #refresh(key: string, entry: CacheEntry, req: CacheRequest, fetchOrigin: OriginFetch): void {
    if (this.#ctx.flights.has(key)) return
    const bg: CacheRequest = { ...req, method: 'GET' }
    this.#lead(key, bg, fetchOrigin, entry, 'stale', 'background')
      .then((r) => {
        if (r.body !== null && !Buffer.isBuffer(r.body)) discardBody(r.body)
      })
      .catch((err) => this.#log.warn({ err, key }, 'background refresh failed'))
  }

  /** Miss or revalidation: join a running fetch for the key, or lead one. */
  async #fetch(key: string, req: CacheRequest, fetchOrigin: OriginFetch, stale: CacheEntry | undefined, fwd: string): Promise<CacheResult> {
    const now = this.#clock.now()
    if (stale === undefined) {
      const until = this.#ctx.hitForPass.get(key)
      if (until !== undefined && until > now) return pass(this.#s, req, fetchOrigin, 'bypass; detail=hit-for-pass')
    }
    const c = this.#config.coalesce
    if (c.enabled) {
      const waiting = this.#ctx.flights.join(key, c.maxWaiters)
      if (waiting !== undefined) {
        this.#s.coalescedWaits++
        const outcome = await waiting
        const t = this.#clock.now()
        const entry = outcome.entry !== undefined ? selectVariant([outcome.entry], req.headers) : undefined
        if (entry !== undefined) {
          this.#s.misses++
          return deliver(entry, req, 'MISS', t, `fwd=${fwd}; collapsed`)
        }
        if (outcome.error !== undefined) {
          if (this.#canServeStaleIfError(stale, t)) {
            this.#s.staleHits++
            return deliver(stale, req, 'STALE', t, `fwd=${fwd}; collapsed; detail=stale-if-error`)
          }
          // The leader's fetch failed: its error, to every waiter at once, rather than every
          // waiter to the failing origin at once.
          throw outcome.error
        }
        // The leader's requester left mid-fetch: the first waiter to wake leads again, the others
        // join it (leading registers the flight before any await).
        if (outcome.abandoned === true) return this.#fetch(key, req, fetchOrigin, stale, fwd)
        // Uncacheable or another variant: this request fetches on its own, without coalescing.
        return this.#lead(key, req, fetchOrigin, stale, fwd, 'solo')
      }
    }
    return this.#lead(key, req, fetchOrigin, stale, fwd, 'leader')
  }

  /** The request the origin sees on a cache fill: GET, no client conditionals/Range, normalised Accept-Encoding. */
  #fillRequest(req: CacheRequest): CacheRequest {
    const headers: CacheRequest['headers'] = { ...req.headers }
    for (const h of CLIENT_CONDITIONALS) delete headers[h]
    const ae = normalizeAcceptEncoding(headerList(req.headers, 'accept-encoding'))
    if (ae === 'br') headers['accept-encoding'] = 'br, gzip'
    else if (ae === 'gzip') headers['accept-encoding'] = 'gzip'
    else delete headers['accept-encoding']
    return { ...req, method: 'GET', headers }
  }

  /**
   * Fetches from the origin for the cache. `leader` registers the flight waiters join; `solo` does
   * not; `background` is a grace refresh with no client. Streams the body to the client while
   * storing it, unless the client needs the whole entry first (HEAD, Range, conditionals).
   */
  async #lead(key: string, req: CacheRequest, fetchOrigin: OriginFetch, stale: CacheEntry | undefined, fwd: string, mode: 'leader' | 'solo' | 'background'): Promise<CacheResult> {
    const settle = mode === 'solo' ? undefined : this.#ctx.flights.lead(key)
    const done = (o: FlightOutcome) => settle?.(o)
    const cfg = this.#config
    const fill = this.#fillRequest(req)
    const extra: Record<string, string> = {}
    if (stale?.etag !== undefined) extra['if-none-match'] = stale.etag
    if (stale?.lastModified !== undefined) extra['if-modified-since'] = stale.lastModified
    const validating = Object.keys(extra).length > 0
    const requestTime = this.#clock.now()
    let res: OriginResponse
    try {
      res = await fetchOrigin(fill, validating ? extra : undefined)
    } catch (err) {
      if (req.signal?.aborted === true) done({ abandoned: true })
      else done({ error: err instanceof Error ? err : new StrataError('STRATA_UPSTREAM_RESPONSE', String(err)) })
      const now = this.#clock.now()
      if (this.#canServeStaleIfError(stale, now)) {
        this.#s.staleHits++
        this.#log.debug({ err, key }, 'origin failed; serving stale-if-error')
        return deliver(stale, req, 'STALE', now, `fwd=${fwd}; detail=stale-if-error`)
      }
      throw err
    }
    const responseTime = this.#clock.now()
    const status = res.statusCode
    if (status >= 500 && this.#canServeStaleIfError(stale, responseTime)) {
      res.body.resume()
      done({ error: upstreamFailed(status) })
      this.#s.staleHits++
      return deliver(stale, req, 'STALE', responseTime, `fwd=${fwd}; fwd-status=${status}; detail=stale-if-error`)
    }
    if (status === 304 && stale !== undefined && validating) {
      res.body.resume()
      if (notModifiedMatches(stale, res.headers)) return this.#freshen(key, stale, req, res, requestTime, responseTime, done, fwd)
      // The 304 is about another representation: fetch the full response without validators.
      done({})
      return this.#lead(key, req, fetchOrigin, undefined, fwd, 'solo')
    }
    const path = fill.url
    const rule = cfg.rules.length > 0 ? cfg.rules.find((r) => path.startsWith(r.prefix)) : undefined
    const stripCookie = rule?.stripSetCookie === true && res.headers['set-cookie'] !== undefined
    const decision = cfg.maxObjectBytes > 0
      ? storageDecision({ method: 'GET', reqHeaders: fill.headers, status, resHeaders: res.headers, path, rules: cfg.rules, defaultTtl: cfg.defaultTtl })
      : { storable: false as const, reason: 'status' as const, ttl: 0 }
    const clientHeaders = forwardHeaders(res.headers, { dropCookie: stripCookie })
    const wantsWhole = req.method === 'HEAD' || mode === 'background' || req.headers['range'] !== undefined
      || req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined
    const upstream = res.upstreamId !== undefined ? { upstreamId: res.upstreamId } : {}

    if (!decision.storable) {
      if (decision.reason !== undefined && HFP_REASONS.has(decision.reason) && cfg.hitForPass > 0 && status < 500) {
        // A 5xx is transient: no hit-for-pass, the next request may be cacheable.
        this.#ctx.hitForPass.set(key, responseTime + cfg.hitForPass * 1000)
      }
      done(status >= 500 ? { error: upstreamFailed(status) } : {})
      this.#s.misses++
      clientHeaders['x-cache'] = 'MISS'
      clientHeaders['cache-status'] = cacheStatusValue(`fwd=${fwd}; fwd-status=${status}; detail=${decision.reason ?? 'uncacheable'}`)
      let body: Readable | null = res.body
      if (req.method === 'HEAD' || mode === 'background') {
        discardBody(res.body)
        body = null
      }
      return { statusCode: status, headers: clientHeaders, body: this.#decode(body, clientHeaders, req), cacheStatus: 'MISS', ...upstream }
    }

    const headers = stripCookie ? { ...res.headers, 'set-cookie': undefined } : res.headers
    const vary = varyFields(headers)
    const variant = variantKey(vary, fill.headers)
    const tee = new BodyTee(res.body, cfg.maxObjectBytes, !wantsWhole)
    const stored = tee.stored.then((body) => {
      if (body === null) {
        done(tee.failed ? { error: new StrataError('STRATA_UPSTREAM_RESPONSE', 'the upstream response broke off mid-body') } : {})
        return undefined
      }
      const entry = createEntry({
        key, variant, vary, status, headers, body, requestTime, responseTime,
        ttl: decision.ttl, policy: decision.policy, grace: cfg.grace, staleIfError: cfg.staleIfError, keepMs: this.#keepMs,
      })
      this.#store(entry)
      done({ entry })
      return entry
    })
    this.#s.misses++
    if (wantsWhole) {
      const entry = await stored
      if (entry !== undefined) return { ...deliver(entry, req, 'MISS', this.#clock.now(), `fwd=${fwd}; fwd-status=${status}; stored`), ...upstream }
      // Too big to store: give the client the response as it streams.
      clientHeaders['x-cache'] = 'MISS'
      clientHeaders['cache-status'] = cacheStatusValue(`fwd=${fwd}; fwd-status=${status}; detail=too-big`)
      let body: Readable | null = null
      if (req.method === 'HEAD' || mode === 'background') tee.discard()
      else body = tee.client()
      return { statusCode: status, headers: clientHeaders, body: this.#decode(body, clientHeaders, req), cacheStatus: 'MISS', ...upstream }
    }
    clientHeaders['x-cache'] = 'MISS'
    clientHeaders['cache-status'] = cacheStatusValue(`fwd=${fwd}; fwd-status=${status}; stored`)
    return { statusCode: status, headers: clientHeaders, body: this.#decode(tee.client(), clientHeaders, req), cacheStatus: 'MISS', ...upstream }
  }

  /** A gzip body for a client that does not accept gzip is decompressed on the way out. */
  #decode(body: Readable | null, headers: Record<string, string | string[]>, req: CacheRequest): Readable | null {
    const enc = headerValue(headers, 'content-encoding')?.trim().toLowerCase()
    if (enc !== 'gzip' || acceptsEncoding(headerList(req.headers, 'accept-encoding'), 'gzip')) return body
    delete headers['content-encoding']
    delete headers['content-length']
    return body === null ? null : through(body, createGunzip())
  }

  /** RFC 9111 §4.3.4: a 304 freshens the stored response's headers and freshness. */
  #freshen(
    key: string,
    stale: CacheEntry,
    req: CacheRequest,
    res: OriginResponse,
    requestTime: number,
    responseTime: number,
    done: (o: FlightOutcome) => void,
    fwd: string,
  ): CacheResult {
    const cfg = this.#config
    const merged: Record<string, string | string[] | undefined> = { ...freshenHeaders(stale.headers, res.headers) }
    // The 304's Age counts for the new initial age (§4.2.3); storedHeaders drops it from the copy.
    merged['age'] = res.headers['age']
    const decision = storageDecision({ method: 'GET', reqHeaders: this.#fillRequest(req).headers, status: stale.status, resHeaders: merged, path: this.#fillRequest(req).url, rules: cfg.rules, defaultTtl: cfg.defaultTtl })
    const entry = createEntry({
      key, variant: stale.variant, vary: stale.vary, status: stale.status, headers: merged, body: stale.body, requestTime, responseTime,
      ttl: decision.storable ? decision.ttl : 0, policy: decision.policy, grace: cfg.grace, staleIfError: cfg.staleIfError, keepMs: this.#keepMs,
    })
    if (decision.storable) this.#store(entry)
    else void this.#invalidation.invalidateKeys([key])
    done(decision.storable ? { entry } : {})
    this.#s.revalidated++
    return { ...deliver(entry, req, 'REVALIDATED', this.#clock.now(), `fwd=${fwd}; fwd-status=304${decision.storable ? '; stored' : ''}`), ...(res.upstreamId !== undefined ? { upstreamId: res.upstreamId } : {}) }
  }

  #storeL1(entry: CacheEntry): void {
    if (this.#prepare !== undefined && entry.prepared === undefined) {
      try {
        entry.prepared = this.#prepare(entry)
      } catch (err) {
        this.#log.warn({ err, key: entry.key }, 'prepare hook failed; entry stored without it')
      }
    }
    this.#l1.set(entry)
  }

  #store(entry: CacheEntry): void {
    this.#ctx.hitForPass.delete(entry.key)
    this.#storeL1(entry)
    this.#ctx.l2?.set(entry, this.#clock.now())
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

/** What coalesced waiters get when the leader's origin answered a 5xx nobody could store. */
function upstreamFailed(status: number): StrataError {
  return new StrataError(status === 504 ? 'STRATA_UPSTREAM_TIMEOUT' : 'STRATA_UPSTREAM_RESPONSE', `the upstream answered ${status}`)
}
