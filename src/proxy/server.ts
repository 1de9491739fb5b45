import { fastify, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from '../observability/logger.js'
import type { StrataConfig } from '../config/schema.js'
import { StrataError, isStrataError } from '../core/errors.js'
import { rejectReason } from './request-guard.js'
import type { EdgePipeline } from './pipeline.js'

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
  pipeline: EdgePipeline
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'] as const

/**
 * The edge: one catch-all route that hands every request to the pipeline. Request bodies are not
 * parsed: the raw stream goes upstream as it arrives (no buffering of uploads).
 */
export function createProxyServer(opts: ProxyServerOptions): FastifyInstance {
  const { config, logger, pipeline } = opts
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
          upstream: request.strata?.upstream,
          cache: request.strata?.cache ?? 'PASS',
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
    // The request guard runs here rather than in an onRequest hook: one hook less on every request,
    // and the body parser only hands over the stream, so nothing was read yet.
    handler: (request: FastifyRequest, reply: FastifyReply) => {
      request.strata = { cache: 'PASS', upstream: undefined }
      const reason = rejectReason(request.raw)
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
