import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { PageCache } from '../../src/page-cache/page-cache.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/ports.js'
import { bodyOf, originFetch } from './fetch-origin.js'
import { cacheConfig, creq } from './helpers.js'

const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...Array.from({ length: 5000 }, (_, i) => (i * 7 + 3) % 256)])

let redis: RedisServer
let origin: Origin
let admin: Redis
let node1: PageCache
let node2: PageCache
const fetchOrigin = originFetch(() => origin.url)

beforeEach(async () => {
  redis = await startRedis()
  admin = new Redis(redis.url, { lazyConnect: false, retryStrategy: () => 100, enableOfflineQueue: true })
  admin.on('error', () => {})
  origin = await startOrigin((q, s) => {
    if (q.url === '/img.png') {
      s.writeHead(200, { 'content-type': 'image/png', 'cache-control': 'max-age=60', 'surrogate-key': 'img' })
      s.end(png)
      return
    }
    s.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' })
    s.end(`${q.url} @${origin.hits()}`)
  })
  const config = cacheConfig({ redis: redis.url, redisTimeoutMs: 100 })
  node1 = new PageCache({ config, nodeId: 'node-1', breaker: { failureThreshold: 2, cooldownMs: 300 } })
  node2 = new PageCache({ config, nodeId: 'node-2', breaker: { failureThreshold: 2, cooldownMs: 300 } })
  await Promise.all([node1.ready(), node2.ready()])
})
afterEach(async () => {
  await node1.close()
  await node2.close()
  admin.disconnect()
  await origin.close()
  await redis.stop()
})

async function get(node: PageCache, url: string) {
  const t0 = Date.now()
  const r = await node.handle(creq(url), fetchOrigin)
  const raw = await bodyOf(r.body)
  return { ...r, raw, text: raw.toString(), ms: Date.now() - t0 }
}
const inL2 = (url: string) => admin.exists(`strata:pc:e:http://example.test${url}`).then((n) => n === 1)

describe('two strata nodes on one redis-server', () => {
  it('a page cached via node 1 is an L2 hit on node 2 (origin count unchanged), binary-exact, with the remaining freshness', async () => {
    const m = await get(node1, '/img.png')
    expect(m.cacheStatus).toBe('MISS')
    await waitFor(() => inL2('/img.png'))
    const h = await get(node2, '/img.png')
    expect(h.cacheStatus).toBe('HIT')
    expect(h.headers['cache-status']).toContain('detail=l2')
    expect(h.raw.equals(png)).toBe(true)
    expect(origin.hits()).toBe(1)
    const e1 = node1.peek('http://example.test/img.png')![0]!
    const e2 = node2.peek('http://example.test/img.png')![0]!
    expect(e2.staleAt).toBe(e1.staleAt)
    expect(e2.storedAt).toBe(e1.storedAt)
    // Now in node 2's L1: the next hit is synchronous.
    expect(node2.handle(creq('/img.png'), fetchOrigin)).not.toBeInstanceOf(Promise)
    expect(node2.stats().l2).toMatchObject({ enabled: true, hits: 1, breaker: 'closed' })
  })

  it('a purge on node 2 removes the page from node 1 L1 and from L2', async () => {
    await get(node1, '/news/1')
    await waitFor(() => inL2('/news/1'))
    expect(node1.peek('http://example.test/news/1')).toBeDefined()
    const res = await node2.purge({ urls: ['/news/1'] })
    expect(res).toMatchObject({ l2: 1, purged: 1 })
    await waitFor(() => node1.peek('http://example.test/news/1') === undefined)
    expect(await inL2('/news/1')).toBe(false)
    const again = await get(node1, '/news/1')
    expect(again.cacheStatus).toBe('MISS')
    expect(origin.hits()).toBe(2)
  })

  it('a tag purge on node 1 reaches node 2 L1 (both got it from L2)', async () => {
    await get(node1, '/img.png')
    await waitFor(() => inL2('/img.png'))
    await get(node2, '/img.png')
    expect(await node1.purge({ tags: ['img'] })).toMatchObject({ l1: 1, l2: 1 })
    await waitFor(() => node2.peek('http://example.test/img.png') === undefined)
  })

  it('keeps serving with redis-server killed, and uses L2 again after a restart', async () => {
    await get(node1, '/a')
    await waitFor(() => inL2('/a'))
    await redis.kill()
    // L1 hits and origin misses keep working, fast.
    for (let i = 0; i < 5; i++) {
      const hit = await get(node1, '/a')
      expect(hit.cacheStatus).toBe('HIT')
      const miss = await get(node1, `/down/${i}`)
      expect(miss.statusCode).toBe(200)
      expect(miss.ms).toBeLessThan(500)
      const other = await get(node2, `/down2/${i}`)
      expect(other.statusCode).toBe(200)
    }
    expect(node2.stats().l2).toMatchObject({ breaker: 'open' })
    // A purge with Redis down still purges locally and answers.
    expect(await node1.purge({ urls: ['/down/0'] })).toMatchObject({ l1: 1, l2: 0 })

    await redis.restart()
    await waitFor(async () => (await admin.ping()) === 'PONG', 5000)
    // After the breaker's cooldown, writes reach L2 again and node 2 reads them.
    await waitFor(async () => {
      await get(node1, `/after/${Date.now()}`)
      return (await admin.dbsize()) > 0
    }, 5000, 100)
    // Node 2's breaker closes after its own cooldown and a successful trial: until then it skips
    // L2. Poll with fresh keys written by node 1 until node 2 answers one from L2.
    let n = 0
    await waitFor(async () => {
      const path = `/back/${n++}`
      await get(node1, path)
      await waitFor(() => inL2(path), 5000)
      const before = origin.hits()
      const h = await get(node2, path)
      return h.cacheStatus === 'HIT' && origin.hits() === before
    }, 8000, 200)
    await get(node1, '/back')
    expect(node1.peek('http://example.test/back')).toBeDefined()
    // The bus resubscribed after the restart: a purge on node 2 reaches node 1's L1 again.
    await waitFor(async () => {
      await node2.purge({ urls: ['/back'] })
      return node1.peek('http://example.test/back') === undefined
    }, 5000, 100)
  })
})
