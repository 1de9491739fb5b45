import { Server, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { fastify, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from '../observability/logger.js'
import { createAccessLog, type AccessLog } from '../observability/access-log.js'
import { ensureRequestId } from '../observability/request-id.js'
import type { StrataConfig } from '../config/schema.js'
import { StrataError, isStrataError } from '../core/errors.js'
import { rejectReason } from './request-guard.js'
import { errorResponse } from './raw-response.js'
import type { EdgePipeline } from './pipeline.js'

/**
 * Per-request facts the access log reports, and the access log's trigger. Buffered responses
 * (every cache hit) are logged as soon as they are handed to the socket (`ended`); everything
 * else when the response closes (`whenFinished`, set up for every request that reaches fastify).
 * Fastify's onResponse hook would add two listeners and a hook run to every request, which cost
 * more than the cache hit itself.
 */
export class RequestFacts {
  cache = 'PASS'
  upstream: string | undefined = undefined
  /** X-Request-Id (already in the request's headers when the fast path saw the request first). */
  readonly id: string
  readonly #start = performance.now()
  readonly #request: FastifyRequest
  #log: AccessLog | undefined

  constructor(request: FastifyRequest, log: AccessLog | undefined) {
    this.#request = request
    this.#log = log
    this.id = ensureRequestId(request.headers)
  }

  /** The whole response was written: log it now (once). */
  ended(status: number): void {
    const log = this.#log
    if (log === undefined) return
    this.#log = undefined
    log({
      method: this.#request.method,
      url: this.#request.url,
      status,
      ms: performance.now() - this.#start,
      upstream: this.upstream,
      cache: this.cache,
      id: this.id,
    })
  }

  /** The response is streamed: log when it closes (finished or aborted). */
  whenFinished(res: ServerResponse): void {
    // 499 (nginx's "client closed request"): the client left before any answer was sent.
    if (this.#log !== undefined) res.once('close', () => this.ended(res.headersSent ? res.statusCode : 499))
  }
}

/**
 * The edge's HTTP server. Node's `closeIdleConnections` (which fastify's close and strata's
 * shutdown reaper call) leaves alone a connection that has not sent a request yet, such as a
 * browser's pre-connect, so one of those held a graceful shutdown until `shutdownMs`; here they
 * are closed as well.
 */
/** Why EdgeServer refused a request, for the route that answers it (the guard runs once). */
const refusals = new WeakMap<IncomingMessage, string>()

class EdgeServer extends Server {
  readonly #unused = new Set<Socket>()
  /**
   * Connections on which a request was refused (400, `Connection: close`). Node still hands over
   * the requests pipelined behind the refused one; they are never acted on, since where one
   * request ends is exactly what a smuggling attempt makes ambiguous. The connection closes once
   * the 400 is written.
   */
  readonly #refused = new WeakSet<Socket>()

  constructor(listener: RequestListener, refuse: RequestListener) {
    super((req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket
      this.#unused.delete(socket)
      if (this.#refused.has(socket)) return
      const reason = rejectReason(req)
      if (reason !== undefined) {
        this.#refused.add(socket)
        refusals.set(req, reason)
        refuse(req, res)
        return
      }
      listener(req, res)
    })
    this.on('connection', (socket: Socket) => {
      this.#unused.add(socket)
      socket.once('close', () => this.#unused.delete(socket))
    })
  }

  override closeIdleConnections(): void {
    super.closeIdleConnections()
    for (const socket of this.#unused) socket.destroy()
    this.#unused.clear()
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    strata: RequestFacts
  }
}

export interface ProxyServerOptions {
  config: StrataConfig
  logger: Logger
  pipeline: EdgePipeline
  /** Where access-log lines go; default: the logger's own stream. */
  accessLines?: { write(line: string): unknown }
  /** Counts every finished request (requests by cache status, durations). */
  metrics?: { recorder(log: AccessLog | undefined): AccessLog }
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'] as const

/**
 * The edge: one catch-all route that hands every request to the pipeline. Request bodies are not
 * parsed: the raw stream goes upstream as it arrives (no buffering of uploads).
 */
export function createProxyServer(opts: ProxyServerOptions): FastifyInstance {
  const { config, logger, pipeline } = opts
  const lines = config.log.access ? createAccessLog(logger, opts.accessLines) : undefined
  // The request metrics ride on the access record: one record per request, built anyway.
  const accessLog = opts.metrics === undefined ? lines : opts.metrics.recorder(lines)
  const app = fastify({
    // Fresh cache hits and known pass-throughs are answered before fastify sees the request (see
    // EdgePipeline.serveEarly); everything else, and anything they hand back, goes through fastify.
    serverFactory: (handler) => {
      const server = new EdgeServer((req, res) => {
        if (!pipeline.serveEarly(req, res, accessLog, handler)) handler(req, res)
      }, handler)
      server.keepAliveTimeout = 72_000
      return server
    },
    // Access logging is ours (one line per request, with cache status); fastify's per-request
    // child loggers would only add cost.
    logger: false,
    requestIdHeader: false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // The upstream, not strata, decides how large an upload may be; bodies are streamed.
    bodyLimit: Number.MAX_SAFE_INTEGER,
  })

  app.decorateRequest('strata', null as unknown as RequestFacts)

  // Pass request bodies through untouched: the payload stream becomes request.body.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload))

  app.setErrorHandler((err: unknown, request, reply) => {
    const e = isStrataError(err) ? err : toStrataError(err)
    if (e.statusCode >= 500) logger.warn({ err: { code: e.code, message: e.message }, method: request.method, url: request.url, upstream: request.strata?.upstream }, 'proxy error')
    if (reply.sent || reply.raw.headersSent) return
    const answer = errorResponse(e)
    return reply.code(answer.status).headers(answer.headers).send(answer.body)
  })

  app.route({
    method: [...METHODS],
    url: '*',
    // EdgeServer runs the request guard on every request and sends the refused ones straight
    // here; the answer (and its access line) is written here rather than in an onRequest hook:
    // one hook less on every request, and the body parser only hands over the stream.
    handler: (request: FastifyRequest, reply: FastifyReply) => {
      const facts = (request.strata = new RequestFacts(request, accessLog))
      // Logged when the response closes, whatever happens first (a client gone while the upstream
      // is still thinking is logged too); buffered answers log themselves at once with `ended`.
      facts.whenFinished(reply.raw)
      const reason = refusals.get(request.raw)
      if (reason === undefined) return pipeline.handle(request, reply)
      reply.code(400).header('content-type', 'application/json; charset=utf-8').header('connection', 'close')
      return reply.send(`{"error":"STRATA_BAD_REQUEST","message":${JSON.stringify(reason)}}\n`)
    },
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
