import { fastify, type FastifyInstance } from 'fastify'
import type { StrataConfig } from '../config/schema.js'
import type { Logger } from '../observability/logger.js'
import { StrataError, isStrataError } from '../core/errors.js'
import { createTokenCheck } from './auth.js'

export interface AdminServerOptions {
  config: StrataConfig
  logger: Logger
  version: string
  /** Routes contributed by the tiers (purge, stats, upstreams…), registered behind the token. */
  routes?: ReadonlyArray<(app: FastifyInstance) => void>
  /** The config in force for GET /status (changes with a reload); default: `config`. */
  currentConfig?: () => StrataConfig
  /** The Prometheus exposition for GET /metrics (absent: no such route). */
  metrics?: { text(): Promise<{ contentType: string; body: string }> }
}

/**
 * Paths served without a token: liveness, and the dashboard page (a static page that asks for the
 * token itself and sends it with every API call; it contains nothing about the cache or upstreams).
 */
const PUBLIC_PATHS = new Set(['/health', '/'])

/**
 * The admin API: a second fastify instance bound to admin.host (loopback by default); every route
 * but /health needs `Authorization: Bearer <token>`. Errors are JSON `{ error, message }`.
 */
export function createAdminServer(opts: AdminServerOptions): FastifyInstance {
  const { config, logger } = opts
  const log = logger.child({ module: 'admin' })
  const app = fastify({ logger: false, bodyLimit: 1024 * 1024, forceCloseConnections: true })
  const authorized = createTokenCheck(config.admin.token)
  const startedAt = Date.now()
  const publicPaths = config.admin.publicMetrics ? new Set([...PUBLIC_PATHS, '/metrics']) : PUBLIC_PATHS

  app.addHook('onRequest', (request, reply, done) => {
    const path = request.url.split('?', 1)[0]!
    if (publicPaths.has(path) || authorized(request.headers.authorization)) return done()
    reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="strata-admin"')
      .send({ error: 'STRATA_ADMIN_UNAUTHORIZED', message: 'a valid admin bearer token is required' })
  })

  app.addHook('onResponse', (request, reply, done) => {
    // Reads (the dashboard polls every second, Prometheus scrapes) go to debug; changes to info.
    if (request.url === '/health') return done()
    const line = { method: request.method, url: request.url, status: reply.statusCode }
    if (request.method === 'GET' && reply.statusCode < 400) log.debug(line, 'admin request')
    else log.info(line, 'admin request')
    done()
  })

  app.setErrorHandler((err: unknown, _request, reply) => {
    if (isStrataError(err)) return reply.code(err.statusCode).send({ error: err.code, message: err.message })
    const e = err as { statusCode?: number; code?: string; message?: string }
    const status = typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 600 ? e.statusCode : 500
    if (status >= 500) log.error({ err }, 'admin error')
    return reply.code(status).send({ error: e.code ?? 'STRATA_ADMIN_ERROR', message: status >= 500 ? 'internal error' : (e.message ?? 'bad request') })
  })

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: 'STRATA_ADMIN_NOT_FOUND', message: `no admin route ${request.method} ${request.url.split('?', 1)[0]}` })
  })

  app.get('/health', async () => ({ ok: true }))

  app.get('/status', async () => ({
    name: 'strata',
    version: opts.version,
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    node: process.version,
    config: summarize(opts.currentConfig?.() ?? config),
  }))

  const metrics = opts.metrics
  if (metrics !== undefined) {
    app.get('/metrics', async (_request, reply) => {
      const { contentType, body } = await metrics.text()
      return reply.header('content-type', contentType).send(body)
    })
  }

  for (const register of opts.routes ?? []) register(app)
  return app
}

/** The config without secrets: the admin token and sticky secret never leave the process. */
export function summarize(config: StrataConfig): unknown {
  const { admin, balancer, ...rest } = config
  const sticky = balancer.sticky
  return {
    ...rest,
    admin: { enabled: admin.enabled, host: admin.host, port: admin.port },
    balancer: { ...balancer, sticky: sticky === null ? null : { ...sticky, ...('secret' in sticky && sticky.secret !== undefined ? { secret: '[redacted]' } : {}) } },
  }
}

/** Throws a 400 StrataError naming the problem; admin routes use it to validate bodies. */
export function badBody(message: string): never {
  throw new StrataError('STRATA_ADMIN_BAD_BODY', message)
}
