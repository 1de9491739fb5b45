import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { StrataConfig } from './config/schema.js'
import { createLogger, type Logger } from './observability/logger.js'
import { UpstreamPools } from './proxy/upstream-pools.js'
import { Forwarder } from './proxy/forward.js'
import { Balancer } from './balancer/index.js'
import { createRedisClient, type RedisClient } from './core/redis.js'
import { createProxyServer } from './proxy/server.js'
import { EdgePipeline } from './proxy/pipeline.js'
import { PageCache, type CacheEntry } from './page-cache/index.js'
import { EsiDelivery } from './proxy/esi-delivery.js'
import { SURROGATE_CAPABILITY } from './esi/index.js'
import { createAdminServer } from './admin/server.js'
import { upstreamRoutes } from './admin/upstream-routes.js'
import { cacheRoutes } from './admin/cache-routes.js'
import { dashboardRoutes } from './admin/dashboard.js'
import { VERSION } from './version.js'
import { StrataMetrics } from './observability/metrics.js'

export interface StrataAddresses {
  proxy: { host: string; port: number; url: string }
  admin: { host: string; port: number; url: string } | null
}

export interface Strata {
  readonly config: StrataConfig
  readonly proxy: FastifyInstance
  readonly admin: FastifyInstance | null
  /** The Prometheus registry and the request instruments (served at the admin's /metrics). */
  readonly metrics: StrataMetrics
  listen(): Promise<StrataAddresses>
  /** Stop accepting, let in-flight requests finish (bounded by timeouts.shutdownMs), release pools. */
  close(): Promise<void>
}

export interface CreateStrataOptions {
  logger?: Logger
  /** A buffered writer for access-log lines (the CLI passes one on stdout); default: the logger. */
  accessLines?: { write(line: string): unknown }
}

function urlOf(app: FastifyInstance): { host: string; port: number; url: string } {
  const addr = app.server.address() as AddressInfo
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  return { host: addr.address, port: addr.port, url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${addr.port}` }
}

/**
 * The only place that wires modules together: config → pools, balancer, caches → proxy and admin
 * servers. Nothing listens until listen() is called.
 */
export function createStrata(config: StrataConfig, opts: CreateStrataOptions = {}): Strata {
  const logger = opts.logger ?? createLogger(config.log.level)
  const pools = new UpstreamPools(config.timeouts)
  const sticky = config.balancer.sticky
  // Learn-mode sessions are shared through Redis when the cluster has one, so every node agrees.
  const learnRedis: RedisClient | undefined = sticky?.mode === 'learn' && config.cache.redis !== null ? createRedisClient(config.cache.redis) : undefined
  const balancer = new Balancer({
    upstreams: config.upstreams,
    config: config.balancer,
    logger,
    ...(learnRedis === undefined ? {} : { redis: learnRedis }),
    redisTimeoutMs: config.cache.redisTimeoutMs,
  })
  balancer.on('removed', (u) => void pools.remove(u.id))
  // The page cache and balancer are created below; the collectors read them at scrape time.
  let cacheRef: PageCache | undefined
  const metrics = new StrataMetrics({ sources: { cache: () => cacheRef!.stats(), upstreams: () => balancer.list() } })
  const forwarder = new Forwarder({
    pools,
    balancer,
    asyncPick: learnRedis !== undefined,
    retries: config.balancer.retries,
    retryOn: config.balancer.retryOn,
    onAttempt: (id, o) => metrics.upstreamAttempt(id, o),
  })

  // The page cache calls esi.prepare when a template enters memory; esi needs the cache to fetch
  // fragments through it, so the hook is bound late.
  let esi: EsiDelivery | undefined
  const cache = new PageCache({ config: config.cache, logger, ...(config.esi.enabled ? { prepare: (e: CacheEntry) => esi?.prepare(e) } : {}) })
  cacheRef = cache
  if (config.esi.enabled) esi = new EsiDelivery({ config: config.esi, cache, logger, maxBodyBytes: config.cache.maxObjectBytes, metrics })
  const pipeline = new EdgePipeline({
    logger,
    cache,
    forwarder,
    balancer,
    pools,
    serverTiming: config.serverTiming,
    ...(esi === undefined ? {} : { esi, extraUpstreamHeaders: { 'surrogate-capability': SURROGATE_CAPABILITY } }),
  })
  const proxy = createProxyServer({ config, logger, pipeline, metrics, ...(opts.accessLines === undefined ? {} : { accessLines: opts.accessLines }) })
  const admin = config.admin.enabled
    ? createAdminServer({ config, logger, version: VERSION, metrics, routes: [upstreamRoutes(balancer), cacheRoutes(cache, balancer, metrics), dashboardRoutes()] })
    : null

  let closing: Promise<void> | undefined
  return {
    config,
    proxy,
    admin,
    metrics,
    async listen() {
      balancer.start()
      await cache.ready()
      await proxy.listen({ host: config.listen.host, port: config.listen.port })
      if (admin) await admin.listen({ host: config.admin.host, port: config.admin.port })
      const addresses: StrataAddresses = { proxy: urlOf(proxy), admin: admin ? urlOf(admin) : null }
      logger.info({ listening: addresses, version: VERSION, upstreams: config.upstreams.map((u) => u.id) }, 'strata listening')
      return addresses
    },
    close() {
      closing ??= (async () => {
        let timer: NodeJS.Timeout | undefined
        const deadline = new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), config.timeouts.shutdownMs)
        })
        pipeline.fastPath = false
        const graceful = Promise.all([proxy.close(), admin?.close()]).then(() => true)
        // server.close() only drops connections idle at that moment; keep-alive connections of
        // requests that finish later must be closed as they turn idle.
        const reaper = setInterval(() => {
          proxy.server.closeIdleConnections()
          admin?.server.closeIdleConnections()
        }, 50)
        const clean = await Promise.race([graceful, deadline])
        clearTimeout(timer)
        clearInterval(reaper)
        if (!clean) {
          // Past the deadline, drop whatever is still open rather than hang the shutdown.
          proxy.server.closeAllConnections()
          admin?.server.closeAllConnections()
        }
        await balancer.close()
        await cache.close()
        await pools.close(!clean)
        if (learnRedis) await learnRedis.quit().catch(() => learnRedis.disconnect())
      })()
      return closing
    },
  }
}
