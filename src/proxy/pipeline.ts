import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Readable } from 'node:stream'
import type { StrataConfig } from '../config/schema.js'
import type { Balancer, PickRequest } from '../balancer/index.js'
import type { PageCache } from '../page-cache/page-cache.js'
import type { CacheRequest, CacheResult, OriginFetch, OriginResponse } from '../page-cache/types.js'
import { upstreamRequestHeaders, type Forwarder } from './forward.js'

/**
 * The request pipeline: page-cache lookup → (on a miss) balancer pick → forward → store.
 * A cache hit never touches the balancer, so it costs one key computation and one map lookup.
 */
export class EdgePipeline {
  readonly #cache: PageCache
  readonly #forwarder: Forwarder
  readonly #balancer: Balancer
  readonly #extraUpstreamHeaders: Readonly<Record<string, string>>

  constructor(opts: { config: StrataConfig; cache: PageCache; forwarder: Forwarder; balancer: Balancer; extraUpstreamHeaders?: Record<string, string> }) {
    this.#cache = opts.cache
    this.#forwarder = opts.forwarder
    this.#balancer = opts.balancer
    this.#extraUpstreamHeaders = opts.extraUpstreamHeaders ?? {}
  }

  /** Handles one client request; resolves once the response has been handed to fastify. */
  handle(request: FastifyRequest, reply: FastifyReply): FastifyReply | Promise<FastifyReply> {
    const creq: CacheRequest = {
      method: request.method,
      scheme: 'http',
      host: request.headers.host ?? '',
      url: request.url,
      headers: request.headers,
    }
    const ctx = new OriginContext(this, request)
    const result = this.#cache.handle(creq, ctx.fetch)
    if (result instanceof Promise) return result.then((r) => this.#send(request, reply, r, ctx))
    return this.#send(request, reply, result, ctx)
  }

  #send(request: FastifyRequest, reply: FastifyReply, result: CacheResult, ctx: OriginContext): FastifyReply {
    request.strata.cache = result.cacheStatus
    if (result.upstreamId !== undefined) request.strata.upstream = result.upstreamId
    const headers = result.headers
    // The sticky cookie is added per response and never stored: a hit carries none.
    if (ctx.setCookie !== undefined && result.cacheStatus !== 'HIT') appendSetCookie(headers, ctx.setCookie)
    reply.code(result.statusCode).headers(headers)
    return reply.send(result.body)
  }

  /** Sends one request upstream on behalf of the page cache (also for background refreshes). */
  async forward(request: FastifyRequest, req: CacheRequest, extra: Record<string, string> | undefined): Promise<OriginResponse & { setCookie?: string }> {
    const headers = upstreamRequestHeaders(req.headers, { ip: request.ip, proto: 'http' })
    stripSticky(headers, this.#balancer)
    Object.assign(headers, this.#extraUpstreamHeaders)
    if (extra !== undefined) Object.assign(headers, extra)
    const bodyAllowed = req.method !== 'GET' && req.method !== 'HEAD'
    const res = await this.#forwarder.forward({
      method: req.method,
      url: req.url,
      headers,
      body: bodyAllowed && request.body != null ? (request.body as Readable) : null,
      pick: pickRequest(request),
    })
    const out: OriginResponse & { setCookie?: string } = { statusCode: res.statusCode, headers: res.headers, body: res.body, upstreamId: res.upstreamId }
    if (res.setCookie !== undefined) out.setCookie = res.setCookie
    return out
  }
}

/** Per-request state shared between the page cache's origin fetches and the response. */
class OriginContext {
  setCookie: string | undefined
  readonly fetch: OriginFetch
  constructor(pipeline: EdgePipeline, request: FastifyRequest) {
    this.fetch = async (req, extra) => {
      const res = await pipeline.forward(request, req, extra)
      if (res.setCookie !== undefined) this.setCookie = res.setCookie
      return res
    }
  }
}

export function pickRequest(request: FastifyRequest): PickRequest {
  const url = request.url
  const q = url.indexOf('?')
  // Cookies are parsed by the balancer only when its mode needs them.
  return { ip: request.ip, path: q === -1 ? url : url.slice(0, q), headers: request.headers }
}

/** The sticky cookie is strata's, not the application's: it never goes upstream. */
function stripSticky(headers: Record<string, string | string[]>, balancer: Balancer): void {
  const cookie = headers['cookie']
  if (typeof cookie !== 'string') return
  const kept = balancer.stripStickyCookie(cookie)
  if (kept === cookie) return
  if (kept === undefined) delete headers['cookie']
  else headers['cookie'] = kept
}

export function appendSetCookie(headers: Record<string, string | string[]>, cookie: string): void {
  const cur = headers['set-cookie']
  headers['set-cookie'] = cur === undefined ? cookie : Array.isArray(cur) ? [...cur, cookie] : [cur, cookie]
}
