import type { FastifyInstance } from 'fastify'
import type { PageCache } from '../page-cache/page-cache.js'
import type { Balancer } from '../balancer/index.js'

/**
 * Invalidation and statistics. POST /purge takes exactly one of
 * `{ urls } | { prefix } | { pattern } | { tags } | { all: true }`, optionally with `"soft": true`;
 * the page cache validates it (a bad body is a 400 naming the problem) and answers how many
 * entries were affected. With Redis, the purge reaches every strata node through the bus.
 */
export function cacheRoutes(cache: PageCache, balancer: Balancer): (app: FastifyInstance) => void {
  return (app) => {
    app.post('/purge', async (request) => {
      const result = await cache.purge(request.body)
      return result
    })

    app.get('/stats', async () => {
      const upstreams = balancer.list()
      return {
        cache: await cache.fullStats(),
        upstreams: upstreams.map((u) => ({ id: u.id, state: u.state, health: u.health, active: u.active, failures: u.failures, latencyEwmaMs: u.latencyEwmaMs })),
        process: { uptimeSeconds: Math.round(process.uptime()), rssBytes: process.memoryUsage.rss(), heapUsedBytes: process.memoryUsage().heapUsed },
      }
    })
  }
}
