// The page cache's L2 over the other forms of `cache.redis`: a real 3-master Redis Cluster and a
// real Sentinel. The store passes the same contract as on one redis-server, and two nodes share
// pages and purges through it (the bus rides on the cluster's pub/sub).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, Redis } from 'ioredis'
import { ManualClock } from '../../src/core/clock.js'
import { PageCache } from '../../src/page-cache/page-cache.js'
import { RedisStore } from '../../src/page-cache/redis-store.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { startRedisCluster, startRedisSentinel, type RedisCluster, type RedisSentinel } from '../helpers/redis.js'
import { waitFor } from '../helpers/ports.js'
import { bodyOf, originFetch } from './fetch-origin.js'
import { cacheConfig, creq } from './helpers.js'
import { runStoreContract } from './store-contract.js'

let cluster: RedisCluster
let sentinel: RedisSentinel
let origin: Origin

beforeAll(async () => {
  ;[cluster, sentinel] = await Promise.all([startRedisCluster(3), startRedisSentinel('strata-pages')])
  origin = await startOrigin((q, s) => {
    s.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', 'surrogate-key': 'pages' })
    s.end(`${q.url} @${origin.hits()}`)
  })
}, 60_000)

afterAll(async () => {
  await origin?.close()
  await Promise.all([cluster?.stop(), sentinel?.stop()])
})

runStoreContract('redis cluster (3 masters)', async () => {
  const clock = new ManualClock()
  await Promise.all(cluster.urls.map(async (url) => {
    const node = new Redis(url)
    await node.flushall()
    node.disconnect()
  }))
  const store = new RedisStore({ redis: { cluster: [...cluster.urls] }, timeoutMs: 1000, clock })
  await store.ready(5000)
  return { store, clock, close: () => store.close() }
})

const fetchOrigin = originFetch(() => origin.url)
async function get(node: PageCache, url: string) {
  const r = await node.handle(creq(url), fetchOrigin)
  return { ...r, text: (await bodyOf(r.body)).toString() }
}

describe.each([
  ['a Redis Cluster', () => ({ cluster: [...cluster.urls] }), () => new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })))],
  ['a Sentinel-managed master', () => sentinel.option, () => new Redis(sentinel.master.url)],
])('two page-cache nodes over %s', (_name, option, rawClient) => {
  it('share pages through L2 and purges through the bus', async () => {
    const config = cacheConfig({ redis: option(), redisTimeoutMs: 500 })
    const node1 = new PageCache({ config, nodeId: 'node-1' })
    const node2 = new PageCache({ config, nodeId: 'node-2' })
    const raw = rawClient()
    try {
      await Promise.all([node1.ready(), node2.ready()])
      const paths = Array.from({ length: 12 }, (_, i) => `/forms/${Date.now()}/${i}`)
      for (const p of paths) expect((await get(node1, p)).cacheStatus).toBe('MISS')
      const hitsBefore = origin.hits()
      // Keys land on every master of the cluster; node 2 finds each in L2.
      await waitFor(async () => {
        for (const p of paths) if ((await get(node2, p)).cacheStatus !== 'HIT') return false
        return true
      }, 5000, 50)
      expect(origin.hits()).toBe(hitsBefore)
      expect(node2.stats().l2).toMatchObject({ enabled: true, breaker: 'closed' })

      // L2 writes are behind the response: wait until the tag index has every page.
      const indexed = async () => (await Promise.all(paths.map((p) => raw.sismember('strata:pc:t:pages', `http://example.test${p}`)))).every((n) => n === 1)
      await waitFor(indexed, 5000, 20)
      // A tag purge on node 2 reaches node 1's L1 and removes the L2 copies once.
      const purged = await node2.purge({ tags: ['pages'] })
      expect(purged.l2).toBeGreaterThanOrEqual(paths.length)
      await waitFor(() => paths.every((p) => node1.peek(`http://example.test${p}`) === undefined), 5000, 20)
      const again = await get(node1, paths[0]!)
      expect(again.cacheStatus).toBe('MISS')
    } finally {
      raw.disconnect()
      await Promise.all([node1.close(), node2.close()])
    }
  })
})

describe('prefix purge on a cluster', () => {
  it('scans every master', async () => {
    const config = cacheConfig({ redis: { cluster: [...cluster.urls] }, redisTimeoutMs: 500 })
    const node = new PageCache({ config, nodeId: 'node-p' })
    const raw = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })))
    try {
      await node.ready()
      const prefix = `/scan/${Date.now()}/`
      const paths = Array.from({ length: 20 }, (_, i) => `${prefix}${i}`)
      for (const p of paths) await get(node, p)
      const inL2 = async () => (await Promise.all(paths.map((p) => raw.exists(`strata:pc:e:http://example.test${p}`)))).reduce((a, b) => a + b, 0)
      await waitFor(async () => (await inL2()) === paths.length, 5000, 20)
      const perMaster = await Promise.all(raw.nodes('master').map((n) => n.dbsize()))
      expect(perMaster.filter((n) => n > 0).length).toBeGreaterThan(1)
      expect((await node.purge({ prefix })).l2).toBe(paths.length)
      expect(await inL2()).toBe(0)
    } finally {
      raw.disconnect()
      await node.close()
    }
  })
})
