import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { AccessLog } from '../observability/access-log.js'
import { appendSetCookie, clientRequestHeaders } from '../core/headers.js'
import type { TrustProxy } from '../core/trust-proxy.js'
import { writeChunkedPage, writeStored } from './raw-response.js'
import { Readable } from 'node:stream'
import { drainBody } from '../core/streams.js'
import type { Dispatcher } from 'undici'
import { Router, type Route } from '../routing/router.js'
import type { Pool, PoolSet } from '../routing/pools.js'
import { canonicalHost, canonicalTarget, plainHit, type PageCache, type CacheRequest, type CacheResult, type OriginFetch, type OriginResponse } from '../page-cache/index.js'
import { classifyUpstreamError, upstreamRequestHeaders, type Forwarder } from './forward.js'
import { PassToClient, type PassHooks } from './pass-through.js'
import { relayInterim } from './interim.js'
import type { UpstreamPools } from './upstream-pools.js'
import type { EsiDelivery, FragmentOriginFetch } from './esi-delivery.js'
import type { EsiProgram } from '../esi/index.js'
import { LRUCache } from 'lru-cache'
import type { Logger } from '../observability/logger.js'
import { ensureRequestId, REQUEST_ID_HEADER } from '../observability/request-id.js'
import { serverTiming } from '../observability/server-timing.js'

export interface EdgePipelineOptions {
  cache: PageCache
  forwarder: Forwarder
  /** The upstream pools requests are routed to (`default` and config `pools`). */
  poolSet: PoolSet
  /** Config `routes`, compiled; default: none (every request goes to the default pool). */
  router?: Router
  pools: UpstreamPools
  /** ESI assembly; absent when esi.enabled is false. */
  esi?: EsiDelivery
  /** Added to every upstream request (e.g. Surrogate-Capability). */
  extraUpstreamHeaders?: Record<string, string>
  /** The peers whose Forwarded / X-Forwarded-* are kept (config `trustProxy`); default: none. */
  trustProxy?: TrustProxy
  logger: Logger
  /** Add Server-Timing (cache, upstream, esi durations) to responses. */
  serverTiming?: boolean
}

type OriginResponseWithCookie = OriginResponse & { setCookie?: string }

/**
 * The request pipeline: page-cache lookup → (on a miss) balancer pick → forward → store →
 * (for ESI templates) assemble. A cache hit of a plain page never touches the balancer or the
 * ESI engine: one key computation, one map lookup, and the stored bytes.
 */
export class EdgePipeline {
  readonly #cache: PageCache
  readonly #forwarder: Forwarder
  /** Config `routes`, compiled; a reload swaps it (after the pool set has taken the new pools). */
  #router: Router
  /** The pools routes name; a reload changes the set in place (see PoolSet.apply). */
  readonly #poolSet: PoolSet
  readonly #pools: UpstreamPools
  readonly #esi: EsiDelivery | undefined
  readonly #extraUpstreamHeaders: Readonly<Record<string, string>>
  readonly #log: Logger
  readonly #trust: TrustProxy | undefined
  readonly #serverTiming: boolean
  /** Host + URL of passes that answered with an ESI template: they take the full path. */
  readonly #templatePasses = new LRUCache<string, true>({ max: 10_000 })

  constructor(opts: EdgePipelineOptions) {
    this.#log = opts.logger
    this.#serverTiming = opts.serverTiming ?? false
    this.#cache = opts.cache
    this.#forwarder = opts.forwarder
    this.#router = opts.router ?? Router.compile([])
    this.#poolSet = opts.poolSet
    this.#pools = opts.pools
    this.#esi = opts.esi
    this.#extraUpstreamHeaders = opts.extraUpstreamHeaders ?? {}
    this.#trust = opts.trustProxy
  }

  /** Whether the peer is a trusted proxy (`trustProxy`): the last answer is cached. */
  trusts(peer: string | undefined): boolean {
    return this.#trust?.trusts(peer) ?? false
  }

  /** A reload's routes. */
  setRouter(router: Router): void {
    this.#router = router
  }

  /**
   * The route of a client request, its cache settings put on the request for the page cache. A
   * fresh hit matches once; a request the fast path hands to fastify is matched again there
   * (cheaper than carrying the answer on Node's request object).
   */
  #route(creq: CacheRequest): Route {
    const route = this.#router.match(creq.method, creq.host, creq.url, creq.headers)
    if (route.cache !== undefined) creq.policy = route.cache
    return route
  }

  /** The pool a route names (a reload may have retired it since: then the default pool). */
  #pool(route: Route): Pool {
    return this.#poolSet.get(route.pool) ?? this.#poolSet.default
  }

  /** Off while shutting down, so draining connections get fastify's 503 + Connection: close. */
  fastPath = true

  /**
   * The fast paths, on the raw Node request and response, before fastify. A GET or HEAD whose
   * answer is a fresh stored response needing no processing (no gunzip; for a template, every
   * fragment fresh in memory) is written here: one key computation, one map lookup, one corked
   * write. A GET or HEAD the cache already knows it will pass (hit-for-pass, cache off) is
   * forwarded here, the upstream's bytes going straight from undici's parser to the socket.
   * Returns false, having touched nothing, for everything else, which then goes through fastify
   * and `handle`; `fallback` hands over a pass that turned out to need more (an ESI template).
   */
  serveEarly(req: IncomingMessage, res: ServerResponse, log: AccessLog | undefined, fallback: (req: IncomingMessage, res: ServerResponse) => void): boolean {
    if (!this.fastPath) return false
    // The request guard already ran (EdgeServer): refused requests never get here.
    const timing = this.#serverTiming
    const start = log === undefined && !timing ? 0 : performance.now()
    const method = req.method ?? 'GET'
    const url = req.url ?? '/'
    const headers = req.headers
    const id = ensureRequestId(headers)
    if (url === '*') {
      // OPTIONS * (the only asterisk-form the guard lets through) asks about the server, which for
      // the client is strata (RFC 9110 §9.3.7); it has no path to forward.
      res.writeHead(200, { allow: ALLOWED_METHODS, 'content-length': '0' })
      res.end()
      log?.({ method, url, status: 200, ms: performance.now() - start, upstream: undefined, cache: 'PASS', id })
      return true
    }
    const creq = clientCacheRequest(method, url, headers)
    const route = this.#route(creq)
    if (method !== 'GET' && method !== 'HEAD') return this.#passEarly(req, res, creq, route, log, start, fallback)
    const cache = this.#cache
    const now = cache.now()
    const entry = cache.freshLookup(creq, now)
    if (entry === undefined) return this.#passEarly(req, res, creq, route, log, start, fallback)
    const foundMs = timing ? performance.now() - start : 0
    // A route with ESI off serves a template as the origin wrote it.
    const program = route.esi === false ? undefined : (entry.prepared as EsiProgram | undefined)
    let status: number
    let kept: ReturnType<EsiDelivery['keptHit']>
    const plain = program === undefined ? plainHit(entry, creq, now) : undefined
    if (plain !== undefined) {
      status = plain.status
      if (timing) plain.headers.push('server-timing', serverTiming({ cache: performance.now() - start }))
      res.writeHead(status, plain.headers)
      if (plain.body === null) res.end()
      else res.end(plain.body)
    } else if (program !== undefined && (kept = this.#esi?.keptHit(entry, { url, headers }, now)) !== undefined) {
      // A template whose assembled page is kept whole, every part still the same fresh entry.
      status = kept.status
      if (timing) kept.headers.push('server-timing', serverTiming({ cache: foundMs, esi: performance.now() - start - foundMs }))
      writeChunkedPage(res, status, kept.headers, kept.page)
    } else {
      const result = cache.freshResult(entry, creq, now)
      if (result === undefined) return false
      status = result.statusCode
      const lookupMs = timing ? performance.now() - start : 0
      if (program !== undefined) {
        // A template: served here only if every include is a fresh fragment in memory.
        const page = this.#esi?.assembleFromMemory(result, program, { url, headers }, now)
        if (page === undefined) return false
        if (timing) page.headers['server-timing'] = serverTiming({ cache: lookupMs, esi: performance.now() - start - lookupMs })
        writeChunkedPage(res, page.status, page.headers, page.page)
      } else {
        if (timing) result.headers['server-timing'] = serverTiming({ cache: lookupMs })
        writeStored(res, status, result.headers, result.body as Buffer | null)
      }
    }
    cache.countHit()
    log?.({ method, url, status, ms: performance.now() - start, upstream: undefined, cache: 'HIT', id })
    return true
  }

  #passEarly(req: IncomingMessage, res: ServerResponse, creq: CacheRequest, route: Route, log: AccessLog | undefined, start: number, fallback: (req: IncomingMessage, res: ServerResponse) => void): boolean {
    const pool = this.#pool(route)
    // URLs seen answering with a template need assembly.
    const esi = this.#esi !== undefined && route.esi !== false
    if (esi && this.#templatePasses.has(creq.host + creq.url)) return false
    const ip = req.socket.remoteAddress ?? ''
    const trusted = this.trusts(ip)
    // What strata acts on from here: the fields Connection names, and unkeyed or untrusted
    // forwarding fields, are gone (the fresh-hit lookup above used the client's headers as they
    // came, which can only select a variant some request legitimately stored).
    const cleaned = clientRequestHeaders(creq.headers, trusted)
    if (cleaned !== creq.headers) creq = { ...creq, headers: cleaned }
    const fwd = this.#cache.passFor(creq)
    if (fwd === undefined) return false
    const headers = upstreamRequestHeaders(creq.headers, { ip, proto: 'http', trusted })
    stripSticky(headers, this.#poolSet)
    if (esi) Object.assign(headers, this.#extraUpstreamHeaders)
    const sink = new PassToClient(esi ? this.#passHooks : this.#passHooksNoEsi, creq, req, res, fwd, log, start, fallback)
    // A request body streams upstream as it arrives (the raw request is the stream); GET and
    // HEAD bodies are not forwarded, as on the full path.
    const body = creq.method !== 'GET' && creq.method !== 'HEAD' && hasBody(creq.headers) ? req : null
    const onInterim = (status: number, h: Record<string, string | string[]>) => relayInterim(req, res, status, h)
    this.#forwarder.dispatch({ pool, method: creq.method, url: route.upstreamPath(creq.url), headers, body, pick: { ip, path: creq.url, headers: req.headers }, onInterim }, sink)
    return true
  }

  /** What a pass-through response asks of the pipeline (see PassToClient). */
  readonly #passHooks: PassHooks = {
    needsEsi: (host, url, headers) => {
      if (this.#esi === undefined || !this.#esi.isTemplate(headers, url)) return false
      this.#templatePasses.set(host + url, true)
      return true
    },
    failed: (e, method, url, upstream) => {
      if (e.statusCode >= 500) this.#log.warn({ err: { code: e.code, message: e.message }, method, url, upstream }, 'proxy error')
    },
    invalidate: (req, status, headers) => this.#cache.invalidateAfter(req, status, headers),
    timing: (start) => (this.#serverTiming ? serverTiming({ upstream: performance.now() - start }) : undefined),
  }

  /** The same, for a route with ESI off: a template passes through as the origin wrote it. */
  readonly #passHooksNoEsi: PassHooks = { ...this.#passHooks, needsEsi: () => false }

  /** Handles one client request; resolves once the response has been handed to fastify. */
  handle(request: FastifyRequest, reply: FastifyReply): FastifyReply | Promise<FastifyReply> {
    const trusted = this.trusts(request.ip)
    const creq = clientCacheRequest(request.method, request.url, clientRequestHeaders(request.headers, trusted))
    const route = this.#route(creq)
    const ctx = new OriginContext(this, request, creq, route, trusted, reply, this.#serverTiming)
    const result = this.#cache.handle(creq, ctx.fetch)
    if (result instanceof Promise) return result.then((r) => this.#send(request, reply, r, ctx))
    return this.#send(request, reply, result, ctx)
  }

  #send(request: FastifyRequest, reply: FastifyReply, result: CacheResult, ctx: OriginContext): FastifyReply | Promise<FastifyReply> {
    request.strata.cache = result.cacheStatus
    if (result.upstreamId !== undefined) request.strata.upstream = result.upstreamId
    const headers = result.headers
    if (ctx.timed !== undefined) headers['server-timing'] = ctx.serverTiming()
    // The sticky cookie is added per response and never stored: a hit carries none.
    if (ctx.setCookie !== undefined && result.cacheStatus !== 'HIT') appendSetCookie(headers, ctx.setCookie)
    const esi = this.#esi
    // Only a stored template (a compiled program) or a response that just streamed from the
    // origin can be ESI; a plain hit goes straight out. HEAD is assembled too, so its headers are
    // the ones GET would send (RFC 9110 §9.3.2), not the template's length and validators.
    if (esi !== undefined && ctx.route.esi !== false && (request.method === 'GET' || request.method === 'HEAD') && (result.entry?.prepared !== undefined || (result.statusCode !== 304 && ctx.originHeaders !== undefined && result.body instanceof Readable && esi.isTemplate(ctx.originHeaders, request.url)))) {
      return this.#sendEsi(esi, request, reply, result, ctx)
    }
    const body = result.body
    if (body === null || Buffer.isBuffer(body)) {
      // Stored bytes (or none): written straight to the raw response, one corked write of the
      // head and the body. Fastify's reply bookkeeping (header copies, onSend, length checks) costs
      // more than the whole cache lookup; its onResponse hooks, and so the access log, still run.
      reply.hijack()
      writeStored(reply.raw, result.statusCode, headers, body)
      request.strata.ended(result.statusCode)
      return reply
    }
    reply.code(result.statusCode).headers(headers)
    return reply.send(body)
  }

  async #sendEsi(esi: EsiDelivery, request: FastifyRequest, reply: FastifyReply, result: CacheResult, ctx: OriginContext): Promise<FastifyReply> {
    if (result.statusCode === 304) {
      // The edge matched the client's condition against the template's validators, but the
      // assembled page has none (its parts change on their own), so the condition cannot hold
      // (RFC 9110 §13.1.1): look the template up again without it and assemble.
      const headers = { ...ctx.creq.headers }
      delete headers['if-none-match']
      delete headers['if-modified-since']
      result = await this.#cache.handle({ ...ctx.creq, headers }, ctx.fetch)
      request.strata.cache = result.cacheStatus
    }
    const found = await esi.programFor(result, ctx.originHeaders, request.url)
    if (found === undefined) {
      reply.code(result.statusCode).headers(result.headers)
      return reply.send(result.body)
    }
    if (result.body instanceof Readable) drainBody(result.body)
    return esi.send(request, reply, result, found, this.#fragmentFetch(request), ctx.timed === undefined ? undefined : ctx.serverTiming())
  }

  /** Fragment requests: the site's own paths go through the balancer; allowed hosts are fetched directly. */
  #fragmentFetch(request: FastifyRequest): FragmentOriginFetch {
    return async (req, { sameSite, signal }) => {
      if (sameSite) return this.forward(request, req, undefined, undefined, false, signal)
      const origin = `${req.scheme}://${req.host}`
      const headers = upstreamRequestHeaders(req.headers, { ip: request.ip, proto: 'http' })
      Object.assign(headers, this.#extraUpstreamHeaders)
      headers[REQUEST_ID_HEADER] = ensureRequestId(request.headers)
      const id = `esi:${origin}`
      let res: Dispatcher.ResponseData
      try {
        res = await this.#pools.get(id, origin).request({ method: 'GET', path: req.url, headers, signal })
      } catch (err) {
        throw classifyUpstreamError(err, id)
      }
      return { statusCode: res.statusCode, headers: res.headers as Record<string, string | string[]>, body: res.body, upstreamId: id }
    }
  }

  /** Sends one request upstream on behalf of the page cache (also for background refreshes). */
  async forward(request: FastifyRequest, req: CacheRequest, extra: Record<string, string> | undefined, route: Route | undefined, trusted: boolean, signal?: AbortSignal, reply?: FastifyReply): Promise<OriginResponseWithCookie> {
    // An ESI fragment is routed by its own target (it may live in another pool).
    route ??= this.#router.match(req.method, req.host, req.url, request.headers)
    const pool = this.#pool(route)
    const headers = upstreamRequestHeaders(req.headers, { ip: request.ip, proto: 'http', trusted })
    stripSticky(headers, this.#poolSet)
    if (route.esi !== false) Object.assign(headers, this.#extraUpstreamHeaders)
    if (extra !== undefined) Object.assign(headers, extra)
    // The page's id, also on its ESI fragment requests (whose headers are only esi.forwardHeaders).
    headers[REQUEST_ID_HEADER] = ensureRequestId(request.headers)
    const bodyAllowed = req.method !== 'GET' && req.method !== 'HEAD'
    const res = await this.#forwarder.forward({
      pool,
      method: req.method,
      url: route.upstreamPath(req.url),
      headers,
      body: bodyAllowed && request.body != null ? (request.body as Readable) : null,
      // Routing sees the client's own headers (a sticky cookie, a hashOn header), whatever its
      // Connection header named, and the page's canonical path (also for its fragments).
      pick: { ip: request.ip, path: canonicalTarget(request.url), headers: request.headers },
      ...(signal === undefined ? {} : { signal }),
      // The client's own miss: its interim responses (103 Early Hints) go to it, never into the cache.
      ...(reply === undefined ? {} : { onInterim: (status: number, h: Record<string, string | string[]>) => relayInterim(request.raw, reply.raw, status, h) }),
    })
    const out: OriginResponseWithCookie = { statusCode: res.statusCode, headers: res.headers, body: res.body, upstreamId: res.upstreamId }
    if (res.setCookie !== undefined) out.setCookie = res.setCookie
    return out
  }
}

/** Per-request state shared between the page cache's origin fetches and the response. */
class OriginContext {
  setCookie: string | undefined
  /** Headers of the origin response fetched for this very request (not for a background refresh). */
  originHeaders: Record<string, string | string[]> | undefined
  readonly fetch: OriginFetch
  /** The request as the page cache sees it: canonical target and host, cleaned headers. */
  readonly creq: CacheRequest
  /** The request's route (its pool, path rewrite, cache and ESI settings). */
  readonly route: Route
  /** With Server-Timing on: when the request started, and the time spent waiting for upstreams. */
  readonly timed: { start: number; upstreamMs: number; upstream: boolean } | undefined
  constructor(pipeline: EdgePipeline, request: FastifyRequest, creq: CacheRequest, route: Route, trusted: boolean, reply: FastifyReply, timing: boolean) {
    this.creq = creq
    this.route = route
    const timed: OriginContext['timed'] = timing ? { start: performance.now(), upstreamMs: 0, upstream: false } : undefined
    this.timed = timed
    this.fetch = async (req, extra) => {
      const t = timed === undefined ? 0 : performance.now()
      const res = await pipeline.forward(request, req, extra, route, trusted, undefined, reply)
      if (timed !== undefined) {
        timed.upstreamMs += performance.now() - t
        timed.upstream = true
      }
      if (res.setCookie !== undefined) this.setCookie = res.setCookie
      this.originHeaders ??= res.headers
      return res
    }
  }

  /** `cache;dur=…[, upstream;dur=…]` so far: the lookup is the time not spent upstream. */
  serverTiming(): string {
    const t = this.timed!
    const total = performance.now() - t.start
    return t.upstream ? serverTiming({ cache: Math.max(0, total - t.upstreamMs), upstream: t.upstreamMs }) : serverTiming({ cache: total })
  }
}

/** The methods strata forwards, for `OPTIONS *`. */
const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE'

/**
 * What the page cache is asked for a client request (strata listens on plain HTTP): the target
 * and host in their canonical form, computed once here and used for the key, the upstream request,
 * purges and invalidation alike. An already canonical target (the common case) costs one scan.
 */
function clientCacheRequest(method: string, url: string, headers: CacheRequest['headers']): CacheRequest {
  return { method, scheme: 'http', host: canonicalHost((headers['host'] as string | undefined) ?? '', 'http'), url: canonicalTarget(url), headers }
}

/** The sticky cookies are strata's, not the application's: none goes upstream, whichever pool set it. */
function stripSticky(headers: Record<string, string | string[]>, pools: PoolSet): void {
  const cookie = headers['cookie']
  if (typeof cookie !== 'string') return
  let kept: string | undefined = cookie
  for (const pool of pools.list()) {
    kept = pool.balancer.stripStickyCookie(kept)
    if (kept === undefined) break
  }
  if (kept === cookie) return
  if (kept === undefined) delete headers['cookie']
  else headers['cookie'] = kept
}

/** Whether a request announces a body (RFC 9112 §6.3): a Transfer-Encoding, or a non-zero Content-Length. */
function hasBody(headers: CacheRequest['headers']): boolean {
  if (headers['transfer-encoding'] !== undefined) return true
  const cl = headers['content-length']
  return cl !== undefined && cl !== '0'
}
