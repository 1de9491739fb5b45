import { fastify, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Readable } from 'node:stream'
import type { Logger } from '../observability/logger.js'
import type { StrataConfig } from '../config/schema.js'
import { StrataError, isStrataError } from '../core/errors.js'
import { rejectReason } from './request-guard.js'
import { clientResponseHeaders, upstreamRequestHeaders, type Forwarder } from './forward.js'
import type { Balancer, PickRequest } from '../balancer/index.js'

/** Per-request facts the access log reports. */
export interface RequestFacts {
  cache: string
  upstream: string | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    strata: RequestFacts
  }
}

export interface ProxyServerOptions {
  config: StrataConfig
  logger: Logger
  forwarder: Forwarder
  balancer: Balancer
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'] as const

/**
 * The edge: one catch-all route that hands every request to the pipeline. Request bodies are not
 * parsed: the raw stream goes upstream as it arrives (no buffering of uploads).
 */
export function createProxyServer(opts: ProxyServerOptions): FastifyInstance {
  const { config, logger, forwarder, balancer } = opts
  const app = fastify({
    // Access logging is ours (one line per request, with cache status); fastify's per-request
    // child loggers would only add cost.
    logger: false,
    requestIdHeader: false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    keepAliveTimeout: 72_000,
    // The upstream, not strata, decides how large an upload may be; bodies are streamed.
    bodyLimit: Number.MAX_SAFE_INTEGER,
  })

  app.decorateRequest('strata', null as unknown as RequestFacts)
  app.addHook('onRequest', (request, reply, done) => {
    request.strata = { cache: 'PASS', upstream: undefined }
    const reason = rejectReason(request.raw)
    if (reason === undefined) return done()
    reply.code(400).header('content-type', 'application/json; charset=utf-8').header('connection', 'close')
    reply.send(`{"error":"STRATA_BAD_REQUEST","message":${JSON.stringify(reason)}}\n`)
  })

  // Pass request bodies through untouched: the payload stream becomes request.body.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload))

  const accessLog = config.log.access
  app.addHook('onResponse', (request, reply, done) => {
    if (accessLog) {
      logger.info(
        {
          method: request.method,
          url: request.url,
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 100) / 100,
          upstream: request.strata.upstream,
          cache: request.strata.cache,
        },
        'request',
      )
    }
    done()
  })

  app.setErrorHandler((err: unknown, request, reply) => {
    const e = isStrataError(err) ? err : toStrataError(err)
    if (e.statusCode >= 500) logger.warn({ err: { code: e.code, message: e.message }, method: request.method, url: request.url, upstream: request.strata?.upstream }, 'proxy error')
    if (reply.sent || reply.raw.headersSent) return
    reply.code(e.statusCode).header('content-type', 'application/json; charset=utf-8')
    if (e.code === 'STRATA_NO_UPSTREAM') reply.header('retry-after', String(e.retryAfter ?? 1))
    return reply.send(`{"error":"${e.code}","message":${JSON.stringify(e.message)}}\n`)
  })

  app.route({
    method: [...METHODS],
    url: '*',
    handler: (request: FastifyRequest, reply: FastifyReply) => proxyRequest(request, reply, forwarder, balancer),
  })

  return app
}

function toStrataError(err: unknown): StrataError {
  const status = (err as { statusCode?: number } | null)?.statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new StrataError('STRATA_BAD_REQUEST', (err as Error).message, { cause: err })
  }
  return new StrataError('STRATA_UPSTREAM_RESPONSE', (err as Error)?.message ?? 'internal error', { cause: err })
}

export function pickContext(request: FastifyRequest): PickRequest {
  const url = request.url
  const q = url.indexOf('?')
  // Cookies are parsed by the balancer only when its mode needs them.
  return { ip: request.ip, path: q === -1 ? url : url.slice(0, q), headers: request.headers }
}

async function proxyRequest(request: FastifyRequest, reply: FastifyReply, forwarder: Forwarder, balancer: Balancer): Promise<FastifyReply> {
  const headers = upstreamRequestHeaders(request.headers, { ip: request.ip, proto: 'http' })
  stripSticky(headers, balancer)
  const hasBody = request.body !== undefined && request.body !== null
  const res = await forwarder.forward({
    method: request.method,
    url: request.url,
    headers,
    body: hasBody ? (request.body as Readable) : null,
    pick: pickContext(request),
  })
  request.strata.upstream = res.upstreamId
  const out = clientResponseHeaders(res.headers)
  if (res.setCookie !== undefined) appendSetCookie(out, res.setCookie)
  reply.code(res.statusCode).headers(out)
  return reply.send(res.body)
}

export function appendSetCookie(headers: Record<string, string | string[]>, cookie: string): void {
  const cur = headers['set-cookie']
  headers['set-cookie'] = cur === undefined ? cookie : Array.isArray(cur) ? [...cur, cookie] : [cur, cookie]
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
