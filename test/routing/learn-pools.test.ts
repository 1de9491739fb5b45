import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { Redis } from 'ioredis'
import { request } from 'undici'
import { startOrigin } from '../helpers/origin.js'
import { startStrata } from '../helpers/strata.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/ports.js'

/**
 * Learn-mode sticky sessions in two pools that follow the same application cookie, shared through
 * a real redis-server: each pool learns under its own keys, so one user's session sticks to one
 * server in each pool, and neither pool's answer overwrites the other's.
 */

let server: RedisServer
beforeAll(async () => {
  server = await startRedis()
})
afterAll(async () => {
  await server.stop()
})

async function app(name: string) {
  const o = await startOrigin((req, res) => {
    // Logging in sets the session cookie the balancer learns from.
    const headers: Record<string, string> = { 'content-type': 'text/plain', 'cache-control': 'no-store' }
    if (req.url?.endsWith('/login')) headers['set-cookie'] = 'sid=u1; Path=/'
    res.writeHead(200, headers)
    res.end(name)
  })
  onTestFinished(() => o.close())
  return o
}

describe('learn-mode sticky sessions per pool', () => {
  it('keeps one session on one server in each pool, under per-pool Redis keys', async () => {
    const [a1, a2, b1, b2] = await Promise.all([app('a1'), app('a2'), app('b1'), app('b2')])
    const s = await startStrata([a1.url, a2.url], {
      log: { level: 'warn', access: false },
      cache: { redis: server.url },
      balancer: { sticky: { mode: 'learn', cookie: 'sid' } },
      pools: { shop: { upstreams: [{ id: 'shop1', url: b1.url }, { id: 'shop2', url: b2.url }] } },
      routes: [{ match: { pathPrefix: '/shop/' }, pool: 'shop' }],
    })
    onTestFinished(() => s.close())
    const get = async (path: string, cookie?: string) => (await (await request(`${s.url}${path}`, { headers: cookie === undefined ? {} : { cookie } })).body.text())
    const home = await get('/login')
    const shop = await get('/shop/login')
    const redis = new Redis(server.url)
    onTestFinished(() => redis.disconnect())
    // Each pool wrote its own key (the write does not hold the response up); the default pool
    // keeps today's. The default pool's upstreams are b1 (origin a1) and b2 (origin a2).
    await waitFor(async () => (await redis.keys('strata:learn:*')).length === 2)
    // Keys end in a hash of the session id (a secret of the application's), the same in both.
    const [shopKey, homeKey] = (await redis.keys('strata:learn:*')).sort()
    expect(homeKey).toMatch(/^strata:learn:sid:[\w-]+$/)
    expect(shopKey).toBe(`strata:learn:shop:${homeKey!.slice('strata:learn:'.length)}`)
    expect(await redis.get(homeKey!)).toBe(home === 'a1' ? 'b1' : 'b2')
    expect(await redis.get(shopKey!)).toBe(shop === 'b1' ? 'shop1' : 'shop2')
    for (let i = 0; i < 6; i++) {
      expect(await get('/', 'sid=u1')).toBe(home)
      expect(await get('/shop/cart', 'sid=u1')).toBe(shop)
    }
  })
})
