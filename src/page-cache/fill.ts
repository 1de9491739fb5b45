/**
 * Filling the cache from the origin: coalescing (one fetch per key, waiters share its outcome),
 * hit-for-pass, grace refreshes, revalidation (RFC 9111 §4.3), stale-if-error, the storage
 * decision, streaming the body to the client while storing it, and gunzip for clients that
 * do not accept gzip.
 */
import { createGunzip } from 'node:zlib'
import type { Readable } from 'node:stream'
import type { LRUCache } from 'lru-cache'
import type { Clock } from '../core/clock.js'
import { StrataError } from '../core/errors.js'
import { headerList, headerValue } from '../core/headers.js'
import { discardBody, drainBody, through } from '../core/streams.js'
import type { Logger } from '../observability/logger.js'
import type { Flights, FlightOutcome } from './coalesce.js'
import type { PageCacheContext } from './context.js'
import { createEntry } from './entry.js'
import type { Invalidation } from './invalidation.js'
import type { MemoryStore } from './memory-store.js'
import { pass } from './pass.js'
import {
  acceptsEncoding,
  freshenHeaders,
  normalizeAcceptEncoding,
  notModifiedMatches,
  storageDecision,
  variantKey,
  varyFields,
  type NotStorableReason,
} from './policy.js'
import { cacheStatusValue, deliver, forwardHeaders, selectVariant } from './respond.js'
import type { Counters } from './stats.js'
import { BodyTee } from './tee.js'
import type { CacheEntry, CacheRequest, CacheResult, OriginFetch, OriginResponse } from './types.js'

/** Request fields that must not reach the origin on a cache fill: the cache answers them itself. */
const CLIENT_CONDITIONALS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range']

/** Reasons worth remembering as hit-for-pass: the next requests would not be cacheable either. */
const HFP_REASONS: ReadonlySet<NotStorableReason> = new Set(['no-store', 'private', 'set-cookie', 'vary-star', 'no-ttl'])

export interface FillOptions {
  /** Called once when an entry enters L1; the result is kept as `entry.prepared` (memory only). */
  prepare: ((entry: CacheEntry) => unknown) | undefined
  /** How long a stale entry with validators is kept for revalidation, ms. */
  keepMs: number
}

export class Fill {
  readonly #ctx: PageCacheContext
  readonly #invalidation: Invalidation
  readonly #clock: Clock
  readonly #log: Logger
  readonly #l1: MemoryStore
  readonly #hitForPass: LRUCache<string, number>
  readonly #flights: Flights
  readonly #s: Counters
  readonly #prepare: ((entry: CacheEntry) => unknown) | undefined
  readonly #keepMs: number

  /** `invalidation` drops an entry a 304 made uncacheable. */
  constructor(ctx: PageCacheContext, invalidation: Invalidation, opts: FillOptions) {
    this.#ctx = ctx
    this.#invalidation = invalidation
    this.#clock = ctx.clock
    this.#log = ctx.log
    this.#l1 = ctx.l1
    this.#hitForPass = ctx.hitForPass
    this.#flights = ctx.flights
    this.#s = ctx.counters
    this.#prepare = opts.prepare
    this.#keepMs = opts.keepMs
  }

  #canServeStaleIfError(entry: CacheEntry | undefined, now: number): entry is CacheEntry {
    return entry !== undefined && !entry.mustRevalidate && now - entry.staleAt < entry.staleIfErrorMs
  }

  /** One background refresh per key (the flight map doubles as the "already refreshing" flag). */
  refresh(key: string, entry: CacheEntry, req: CacheRequest, fetchOrigin: OriginFetch): void {
    if (this.#flights.has(key)) return
    const bg: CacheRequest = { ...req, method: 'GET' }
    this.#lead(key, bg, fetchOrigin, entry, 'stale', 'background')
      .then((r) => {
        if (r.body !== null && !Buffer.isBuffer(r.body)) discardBody(r.body)
      })
      .catch((err) => this.#log.warn({ err, key }, 'background refresh failed'))
  }

  /** Miss or revalidation: join a running fetch for the key, or lead one. */
  async fetch(key: string, req: CacheRequest, fetchOrigin: OriginFetch, stale: CacheEntry | undefined, fwd: string): Promise<CacheResult> {
    const now = this.#clock.now()
    if (stale === undefined) {
      const until = this.#hitForPass.get(key)
      if (until !== undefined && until > now) return pass(this.#s, req, fetchOrigin, 'bypass; detail=hit-for-pass')
    }
    const c = this.#ctx.config.coalesce
    if (c.enabled) {
      const waiting = this.#flights.join(key, c.maxWaiters)
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
        if (outcome.abandoned === true) return this.fetch(key, req, fetchOrigin, stale, fwd)
        // Uncacheable or another variant: this request fetches on its own, without coalescing.
        return this.#lead(key, req, fetchOrigin, stale, fwd, 'solo')
      }
    }
    return this.#lead(key, req, fetchOrigin, stale, fwd, 'leader')
  }

  /** The lifetimes for a request's entry: its route's (`routes[].cache`) where given, else `cache.*`. */
  #lifetimes(req: CacheRequest): { defaultTtl: number; grace: number; staleIfError: number } {
    const cfg = this.#ctx.config
    const p = req.policy
    return p === undefined ? cfg : { defaultTtl: p.defaultTtl ?? cfg.defaultTtl, grace: p.grace ?? cfg.grace, staleIfError: p.staleIfError ?? cfg.staleIfError }
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
    const settle = mode === 'solo' ? undefined : this.#flights.lead(key)
    const done = (o: FlightOutcome) => settle?.(o)
    const cfg = this.#ctx.config
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
      drainBody(res.body)
      done({ error: upstreamFailed(status) })
      this.#s.staleHits++
      return deliver(stale, req, 'STALE', responseTime, `fwd=${fwd}; fwd-status=${status}; detail=stale-if-error`)
    }
    if (status === 304 && stale !== undefined && validating) {
      drainBody(res.body)
      if (notModifiedMatches(stale, res.headers)) return this.#freshen(key, stale, req, res, requestTime, responseTime, done, fwd)
      // The 304 is about another representation: fetch the full response without validators.
      done({})
      return this.#lead(key, req, fetchOrigin, undefined, fwd, 'solo')
    }
    const path = fill.url
    const rule = cfg.rules.length > 0 ? cfg.rules.find((r) => path.startsWith(r.prefix)) : undefined
    const stripCookie = rule?.stripSetCookie === true && res.headers['set-cookie'] !== undefined
    const life = this.#lifetimes(req)
    const decision = cfg.maxObjectBytes > 0
      ? storageDecision({ method: 'GET', reqHeaders: fill.headers, status, resHeaders: res.headers, path, rules: cfg.rules, defaultTtl: life.defaultTtl })
      : { storable: false as const, reason: 'status' as const, ttl: 0 }
    const clientHeaders = forwardHeaders(res.headers, { dropCookie: stripCookie })
    const wantsWhole = req.method === 'HEAD' || mode === 'background' || req.headers['range'] !== undefined
      || req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined
    const upstream = res.upstreamId !== undefined ? { upstreamId: res.upstreamId } : {}

    if (!decision.storable) {
      if (decision.reason !== undefined && HFP_REASONS.has(decision.reason) && cfg.hitForPass > 0 && status < 500) {
        // A 5xx is transient: no hit-for-pass, the next request may be cacheable.
        this.#hitForPass.set(key, responseTime + cfg.hitForPass * 1000)
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
        ttl: decision.ttl, policy: decision.policy, grace: life.grace, staleIfError: life.staleIfError, keepMs: this.#keepMs,
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
    const cfg = this.#ctx.config
    const merged: Record<string, string | string[] | undefined> = { ...freshenHeaders(stale.headers, res.headers) }
    // The 304's Age counts for the new initial age (§4.2.3); storedHeaders drops it from the copy.
    merged['age'] = res.headers['age']
    const fill = this.#fillRequest(req)
    const life = this.#lifetimes(req)
    const decision = storageDecision({ method: 'GET', reqHeaders: fill.headers, status: stale.status, resHeaders: merged, path: fill.url, rules: cfg.rules, defaultTtl: life.defaultTtl })
    const entry = createEntry({
      key, variant: stale.variant, vary: stale.vary, status: stale.status, headers: merged, body: stale.body, requestTime, responseTime,
      ttl: decision.storable ? decision.ttl : 0, policy: decision.policy, grace: life.grace, staleIfError: life.staleIfError, keepMs: this.#keepMs,
    })
    if (decision.storable) this.#store(entry)
    else void this.#invalidation.invalidateKeys([key])
    done(decision.storable ? { entry } : {})
    this.#s.revalidated++
    return { ...deliver(entry, req, 'REVALIDATED', this.#clock.now(), `fwd=${fwd}; fwd-status=304${decision.storable ? '; stored' : ''}`), ...(res.upstreamId !== undefined ? { upstreamId: res.upstreamId } : {}) }
  }

  /** Into L1 only, through the `prepare` hook (also how L2 hits reach L1). */
  storeL1(entry: CacheEntry): void {
    if (this.#prepare !== undefined && entry.prepared === undefined) {
      try {
        entry.prepared = this.#prepare(entry)
      } catch (err) {
        this.#log.warn({ err, key: entry.key }, 'prepare hook failed; entry stored without it')
      }
    }
    this.#l1.set(entry)
  }

  /** Into L1 and L2; a stored response ends any hit-for-pass for its key. */
  #store(entry: CacheEntry): void {
    this.#hitForPass.delete(entry.key)
    this.storeL1(entry)
    this.#ctx.l2?.set(entry, this.#clock.now())
  }
}

/** What coalesced waiters get when the leader's origin answered a 5xx nobody could store. */
function upstreamFailed(status: number): StrataError {
  return new StrataError(status === 504 ? 'STRATA_UPSTREAM_TIMEOUT' : 'STRATA_UPSTREAM_RESPONSE', `the upstream answered ${status}`)
}
