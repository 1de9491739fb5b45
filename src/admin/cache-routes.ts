import type { FastifyInstance } from 'fastify'
import type { PageCache } from '../page-cache/page-cache.js'
import type { UpstreamSnapshot } from '../balancer/index.js'
import type { MetricsSummary } from '../observability/metrics.js'
import { DEFAULT_POOL, type PoolsView } from './pools-view.js'

/** How many purges GET /purges remembers. */
const RECENT_PURGES = 20

/** What the routes report to, and read from, the metrics. */
export interface CacheRouteMetrics {
  purged(cmd: unknown): void
  summary(): Promise<MetricsSummary>
}

/** What the routes report to, and read from, ESI delivery (absent when esi.enabled is false). */
export interface CacheRouteEsi {
  /** After a purge through this API (a purge of everything drops the kept assembled pages). */
  purged(cmd: unknown): void
  /** The `esi` section of /stats. */
  stats(): object
}

/** An upstream's line in /stats: what the dashboard needs each second, not the whole snapshot. */
const statsLine = (u: UpstreamSnapshot) => ({ id: u.id, state: u.state, health: u.health, active: u.active, failures: u.failures, latencyEwmaMs: u.latencyEwmaMs })

/**
 * Invalidation and statistics. POST /purge takes exactly one of
 * `{ urls } | { prefix } | { pattern } | { tags } | { all: true }`, optionally with `"soft": true`;
 * the page cache validates it (a bad body is a 400 naming the problem) and answers how many
 * entries were affected. With Redis, the purge reaches every strata node through the bus.
 * GET /stats keeps the default pool's upstreams at the top level (as before pools) and groups every
 * pool's under `pools`, each with its upstream attempts since start; with ESI on, `esi` holds the
 * kept assembled pages' counters (`esi.assembledPages`).
 */
export function cacheRoutes(cache: PageCache, pools: PoolsView, metrics?: CacheRouteMetrics, esi?: CacheRouteEsi): (app: FastifyInstance) => void {
  /** The last purges through this API, newest first, for the dashboard. */
  const recent: Array<{ at: string; command: unknown; purged: number }> = []
  return (app) => {
    app.post('/purge', async (request) => {
      const result = await cache.purge(request.body)
      metrics?.purged(request.body)
      esi?.purged(request.body)
      recent.unshift({ at: new Date().toISOString(), command: request.body, purged: result.purged })
      if (recent.length > RECENT_PURGES) recent.length = RECENT_PURGES
      return result
    })

    app.get('/purges', async () => ({ purges: recent }))

    app.get('/stats', async () => {
      const { poolRequests = {}, ...summary } = metrics === undefined ? {} : await metrics.summary()
      // fromEntries defines own keys, so no pool name (even `__proto__`) can reach the prototype.
      const byPool = Object.fromEntries(pools.list().map((p) => [p.name, { upstreams: p.balancer.list().map(statsLine), requests: Object.hasOwn(poolRequests, p.name) ? poolRequests[p.name]! : 0 }]))
      return {
        cache: await cache.fullStats(),
        ...(esi === undefined ? {} : { esi: esi.stats() }),
        ...summary,
        upstreams: byPool[DEFAULT_POOL]?.upstreams ?? [],
        pools: byPool,
        process: { uptimeSeconds: Math.round(process.uptime()), rssBytes: process.memoryUsage.rss(), heapUsedBytes: process.memoryUsage().heapUsed },
      }
    })
  }
}
