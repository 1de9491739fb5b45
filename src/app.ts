import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { StrataConfig } from './config/schema.js'
import { createLogger, type Logger } from './observability/logger.js'
import { UpstreamPools } from './proxy/upstream-pools.js'
import { Forwarder } from './proxy/forward.js'
import { PoolSet } from './routing/pools.js'
import type { Resolver } from './balancer/discovery.js'
import { Router } from './routing/router.js'
import { poolConfigs } from './config/pools.js'
import { createRedisClient, type RedisClient } from './core/redis.js'
import { compileTrustProxy } from './core/trust-proxy.js'
import { createProxyServer } from './proxy/server.js'
import { EdgePipeline } from './proxy/pipeline.js'
import { PageCache, type CacheEntry } from './page-cache/index.js'
import { EsiDelivery } from './proxy/esi-delivery.js'
import { SURROGATE_CAPABILITY } from './esi/index.js'
import { createAdminServer } from './admin/server.js'
import { upstreamRoutes } from './admin/upstream-routes.js'
import { upstreamSamples } from './admin/pools-view.js'
import { cacheRoutes } from './admin/cache-routes.js'
import { dashboardRoutes } from './admin/dashboard.js'
import { VERSION } from './version.js'
import { StrataMetrics } from './observability/metrics.js'
import { clusterRoutes, type WorkerFanout } from './admin/cluster-routes.js'
import { planReload } from './config/reload.js'
import { ConfigError, loadConfigFile } from './config/load.js'
import { StrataError } from './core/errors.js'
import { configRoutes } from './admin/config-routes.js'

export interface StrataAddresses {
  proxy: { host: string; port: number; url: string }
  admin: { host: string; port: number; url: string } | null
}

export interface Strata {
  /** The config in force (changes with a reload). */
  readonly config: StrataConfig
  readonly proxy: FastifyInstance
  readonly admin: FastifyInstance | null
  /** The Prometheus registry and the request instruments (served at the admin's /metrics). */
  readonly metrics: StrataMetrics
  listen(): Promise<StrataAddresses>
  /** Stop accepting, let in-flight requests finish (bounded by timeouts.shutdownMs), release pools. */
  close(): Promise<void>
  /**
   * Re-reads the config file (`configFile`) and applies what can change at runtime (see
   * config/reload.ts); the rest is listed in `restartRequired` and left as it was. Throws a
   * ConfigError naming every problem (the old config stays in force), or STRATA_ADMIN_CONFLICT when
   * strata was not started from a file.
   */
  reload(): Promise<{ changed: string[]; restartRequired: string[] }>
}

export interface CreateStrataOptions {
  logger?: Logger
  /** A buffered writer for access-log lines (the CLI passes one on stdout); default: the logger. */
  accessLines?: { write(line: string): unknown }
  /**
   * Listen on admin.port (default true). A worker of a multi-process strata keeps its admin routes
   * in-process (the primary calls them with inject) and leaves the port to the primary.
   */
  adminListen?: boolean
  /** The sticky-cookie secret when `balancer.sticky.secret` is unset (the workers of one strata share one). */
  stickySecret?: Buffer
  /** The file `config` came from: `reload()` (SIGHUP, POST /config/reload) reads it again. */
  configFile?: string
  /** DNS discovery's resolver for `resolve: true` upstreams (tests inject one); default `dns.promises.lookup`. */
  resolver?: Resolver
}

export function urlOf(app: FastifyInstance): { host: string; port: number; url: string } {
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
  // pino children copy their level when created; a reloaded log.level must reach the module
  // loggers too, so they are remembered (weakly) as they are made.
  const children = new Set<WeakRef<Logger>>()
  const parentOnChild = logger.onChild
  logger.onChild = (child) => {
    children.add(new WeakRef(child))
    parentOnChild?.(child)
  }
  const setLevel = (level: string): void => {
    logger.level = level
    for (const ref of children) {
      const child = ref.deref()
      if (child === undefined) children.delete(ref)
      else child.level = level
    }
  }
  const pools = new UpstreamPools(config.timeouts)
  // Learn-mode sessions are shared through Redis when the cluster has one, so every node agrees.
  const learns = poolConfigs(config).some((p) => p.balancer.sticky?.mode === 'learn')
  const learnRedis: RedisClient | undefined = learns && config.cache.redis !== null ? createRedisClient(config.cache.redis) : undefined
  // Every pool: `default` (top-level upstreams and balancer) and config `pools`. An upstream that
  // leaves any of them (removed, replaced, a discovered member gone) closes its connections gracefully.
  const poolSet = new PoolSet(config, {
    logger,
    learnRedis,
    redisTimeoutMs: config.cache.redisTimeoutMs,
    stickySecret: opts.stickySecret,
    ...(opts.resolver === undefined ? {} : { resolver: opts.resolver }),
    onRemoved: (u) => void pools.remove(u.id),
  })
  /** The config in force: `config`, then each reload's effective config. */
  let current = config
  // The page cache is created below; the collectors read it and the pools at scrape time.
  let cacheRef: PageCache | undefined
  const metrics = new StrataMetrics({ sources: { cache: () => cacheRef!.stats(), upstreams: () => upstreamSamples(poolSet) } })
  const forwarder = new Forwarder({ pools, onAttempt: (pool, id, o) => metrics.upstreamAttempt(pool, id, o) })

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
    poolSet,
    router: Router.compile(config.routes),
    pools,
    trustProxy: compileTrustProxy(config.trustProxy),
    serverTiming: config.serverTiming,
    ...(esi === undefined ? {} : { esi, extraUpstreamHeaders: { 'surrogate-capability': SURROGATE_CAPABILITY } }),
  })
  const proxy = createProxyServer({ config, logger, pipeline, metrics, ...(opts.accessLines === undefined ? {} : { accessLines: opts.accessLines }) })
  // A worker (adminListen: false) always has its in-process admin routes: they are how the primary
  // controls it, even when no admin port is served.
  const admin = config.admin.enabled || opts.adminListen === false
    ? createAdminServer({ config, currentConfig: () => current, logger, version: VERSION, metrics, routes: [upstreamRoutes(poolSet), cacheRoutes(cache, poolSet, metrics, esi), dashboardRoutes(), configRoutes(() => reloadOnce())] })
    : null

  let reloading: Promise<unknown> = Promise.resolve()
  const reload = async (): Promise<{ changed: string[]; restartRequired: string[] }> => {
    if (opts.configFile === undefined) throw new StrataError('STRATA_ADMIN_CONFLICT', 'strata was not started from a config file, so there is nothing to reload')
    let next: StrataConfig
    try {
      next = loadConfigFile(opts.configFile, { admin: { token: current.admin.token } })
    } catch (err) {
      if (err instanceof ConfigError) logger.error({ file: opts.configFile, problems: err.problems }, 'config reload rejected; the old config stays in force')
      throw err
    }
    const plan = planReload(current, next)
    await applyReload(plan.changed, plan.effective)
    current = plan.effective
    logger.info({ file: opts.configFile, changed: plan.changed, restartRequired: plan.restartRequired }, 'config reloaded')
    // Last, so the line above is written at the level the operator had until now.
    if (plan.changed.includes('log.level')) setLevel(plan.effective.log.level)
    return { changed: plan.changed, restartRequired: plan.restartRequired }
  }
  /** Applies the runtime keys of a reload to the running parts. */
  const applyReload = async (changed: readonly string[], next: StrataConfig): Promise<void> => {
    // Pools: balancer settings, then upstreams (so added ones follow the new health checks); new
    // pools start, retired ones finish their in-flight requests. Routes swap after the pools
    // exist, so no request is routed to a pool not yet built.
    const poolsChanged = changed.some((k) => k === 'upstreams' || k === 'pools' || k.startsWith('pools.') || k.startsWith('balancer.'))
    const applied = poolsChanged ? poolSet.apply(next) : undefined
    if (applied !== undefined) {
      // A new pool's first DNS round is done before any route can send it a request.
      await applied.started.catch((err: unknown) => logger.error({ err }, 'a pool added by the reload failed to start'))
      // The Redis client for shared learn-mode sessions is made at startup only.
      if (learnRedis === undefined && config.cache.redis !== null && poolConfigs(next).some((p) => p.balancer.sticky?.mode === 'learn')) {
        logger.warn('sticky learn mode was turned on by a reload: its sessions stay local to this node until a restart shares them through Redis')
      }
    }
    if (changed.includes('routes')) pipeline.setRouter(Router.compile(next.routes))
    // Pools no route names any more leave last; their in-flight requests finish.
    if (applied !== undefined) void applied.retire().catch((err: unknown) => logger.error({ err }, 'a pool retired by the reload failed to close'))
    if (changed.some((k) => k.startsWith('cache.'))) cache.reconfigure(next.cache)
    if (changed.some((k) => k.startsWith('esi.'))) esi?.reconfigure(next.esi)
  }
  const reloadOnce = (): Promise<{ changed: string[]; restartRequired: string[] }> => {
    // One reload at a time: a second SIGHUP waits for the first to finish.
    const run = reloading.then(reload, reload)
    reloading = run.catch(() => undefined)
    return run
  }

  let closing: Promise<void> | undefined
  return {
    get config() {
      return current
    },
    reload: reloadOnce,
    proxy,
    admin,
    metrics,
    async listen() {
      await poolSet.start()
      await cache.ready()
      await proxy.listen({ host: config.listen.host, port: config.listen.port })
      const adminListens = admin !== null && opts.adminListen !== false
      if (adminListens) await admin.listen({ host: config.admin.host, port: config.admin.port })
      else if (admin) await admin.ready()
      const addresses: StrataAddresses = { proxy: urlOf(proxy), admin: adminListens ? urlOf(admin) : null }
      // A worker's line is not the one operators (and tools) wait for: the primary logs that one
      // once every worker and the admin API listen.
      if (opts.adminListen === false) logger.debug({ proxy: addresses.proxy }, 'worker listening')
      else logger.info({ listening: addresses, version: VERSION, upstreams: config.upstreams.map((u) => u.id) }, 'strata listening')
      return addresses
    },
    close() {
      closing ??= (async () => {
        let timer: NodeJS.Timeout | undefined
        const started = performance.now()
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
        await poolSet.close()
        await cache.close()
        // Upstream requests still running have no client left to answer (it went away, or it was
        // a background refresh): they get what remains of shutdownMs, then are aborted, so an
        // upstream that never answers cannot hold the shutdown up to its response timeout.
        await pools.close(clean ? Math.max(0, config.timeouts.shutdownMs - (performance.now() - started)) : 0)
        if (learnRedis) await learnRedis.quit().catch(() => learnRedis.disconnect())
      })()
      return closing
    },
  }
}

/**
 * The admin API of the primary process when `workers` > 1: the same server (token, /health,
 * /status, the dashboard), with every other route answered by the workers (see clusterRoutes) and
 * /metrics merged from theirs.
 */
export function createClusterAdmin(
  config: StrataConfig,
  opts: {
    logger: Logger
    workers: WorkerFanout
    metrics: { text(): Promise<{ contentType: string; body: string }> }
    /** Reloads the config in every worker (POST /config/reload, as SIGHUP). */
    reload: () => Promise<{ changed: string[]; restartRequired: string[] }>
    currentConfig: () => StrataConfig
  },
): FastifyInstance {
  return createAdminServer({
    config,
    currentConfig: opts.currentConfig,
    logger: opts.logger,
    version: VERSION,
    metrics: opts.metrics,
    routes: [dashboardRoutes(), configRoutes(opts.reload), clusterRoutes(opts.workers)],
  })
}
