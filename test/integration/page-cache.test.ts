import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { Redis } from 'ioredis'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { startStrata, type RunningStrata } from '../helpers/strata.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/ports.js'

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers })
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

const origin = (name = 'o') =>
  startOrigin((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!
    if (path.startsWith('/news/')) {
      res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'public, max-age=60', 'surrogate-key': `news ${path.slice(1).replace('/', '-')}` })
      return res.end(`${name}:${path}:${Date.now()}`)
    }
    if (path === '/private') {
      res.writeHead(200, { 'cache-control': 'private, max-age=60' })
      return res.end('mine')
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=60' })
    res.end(`${name}:${path}`)
  })

describe('page cache behind the proxy', () => {
  let o: Origin
  let s: RunningStrata
  beforeAll(async () => {
    o = await origin()
    s = await startStrata([o.url], { balancer: { sticky: { mode: 'insert', secret: 'sticky-secret-0123456789' } } })
  })
  afterAll(async () => {
    await s.close()
    await o.close()
  })
  const admin = (path: string, body?: unknown) =>
    request(`${s.adminUrl}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }).then(async (r) => ({ status: r.statusCode, json: (await r.body.json()) as Record<string, any> }))

  it('serves the second request from cache, with X-Cache, Cache-Status and Age, and logs the status', async () => {
    const a = await get(`${s.url}/page`)
    expect(a.headers['x-cache']).toBe('MISS')
    const b = await get(`${s.url}/page`)
    expect(b.headers['x-cache']).toBe('HIT')
    expect(String(b.headers['cache-status'])).toMatch(/^strata; hit; ttl=\d+/)
    expect(b.headers['age']).toBeDefined()
    expect(b.body).toBe(a.body)
    expect(o.hits('/page')).toBe(1)
    await waitFor(() => s.logs.some((l) => l['url'] === '/page' && l['cache'] === 'HIT'))
  })

  it('never stores the sticky Set-Cookie: a hit carries none', async () => {
    const miss = await get(`${s.url}/sticky-page`)
    expect(String(miss.headers['set-cookie'])).toMatch(/^strata_srv=/)
    const hit = await get(`${s.url}/sticky-page`)
    expect(hit.headers['x-cache']).toBe('HIT')
    expect(hit.headers['set-cookie']).toBeUndefined()
  })

  it('purges by tag through the admin API, and the next request goes to the origin', async () => {
    await get(`${s.url}/news/1`)
    await get(`${s.url}/news/2`)
    expect((await get(`${s.url}/news/1`)).headers['x-cache']).toBe('HIT')
    expect((await get(`${s.url}/news/1`)).headers['surrogate-key']).toBeUndefined()
    const r = await admin('/purge', { tags: ['news-1'] })
    expect(r.status).toBe(200)
    expect(r.json['purged']).toBe(1)
    expect((await get(`${s.url}/news/1`)).headers['x-cache']).toBe('MISS')
    expect((await get(`${s.url}/news/2`)).headers['x-cache']).toBe('HIT')
  })

  it('purges by prefix and answers a bad body with a 400 naming the problem', async () => {
    await get(`${s.url}/news/3`)
    const r = await admin('/purge', { prefix: '/news/' })
    expect(r.json['purged']).toBeGreaterThanOrEqual(1)
    expect((await get(`${s.url}/news/3`)).headers['x-cache']).toBe('MISS')
    const bad = await admin('/purge', { colour: 'red' })
    expect(bad.status).toBe(400)
    expect(bad.json['error']).toBe('STRATA_ADMIN_BAD_BODY')
    expect(bad.json['message']).toContain('colour')
    const badPattern = await admin('/purge', { pattern: '(a+)+$' })
    expect(badPattern.status).toBe(400)
  })

  it('does not store private responses', async () => {
    await get(`${s.url}/private`)
    const again = await get(`${s.url}/private`)
    expect(again.headers['x-cache']).not.toBe('HIT')
    expect(o.hits('/private')).toBe(2)
  })

  it('reports stats', async () => {
    const r = await admin('/stats')
    expect(r.status).toBe(200)
    expect(r.json['cache'].hits).toBeGreaterThan(0)
    expect(r.json['cache'].misses).toBeGreaterThan(0)
    expect(r.json['upstreams'][0].id).toBe('b1')
  })
})

describe('two strata nodes sharing one redis-server', () => {
  let redis: RedisServer
  let o: Origin
  let n1: RunningStrata
  let n2: RunningStrata
  beforeAll(async () => {
    redis = await startRedis()
    o = await origin()
    n1 = await startStrata([o.url], { cache: { redis: redis.url } })
    n2 = await startStrata([o.url], { cache: { redis: redis.url } })
  })
  afterAll(async () => {
    await n1.close()
    await n2.close()
    await o.close()
    await redis.stop()
  })

  it('a page cached via node 1 is an L2 hit on node 2; a purge on node 2 clears node 1', async () => {
    // Both nodes serve one site: the cache key includes Host, so clients send the same one.
    const site = { host: 'shop.example' }
    const first = await get(`${n1.url}/news/9`, site)
    expect(first.headers['x-cache']).toBe('MISS')
    // The L2 write happens once the body is complete; wait until redis holds it.
    const probe = new Redis(redis.url)
    try {
      await waitFor(async () => (await probe.dbsize()) > 0)
    } finally {
      probe.disconnect()
    }
    expect((await get(`${n2.url}/news/9`, site)).headers['x-cache']).toBe('HIT')
    expect(o.hits('/news/9')).toBe(1)
    const purge = await request(`${n2.adminUrl}/purge`, {
      method: 'POST',
      headers: { authorization: `Bearer ${n2.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ urls: ['/news/9'] }),
    })
    expect(purge.statusCode).toBe(200)
    await purge.body.text()
    await waitFor(async () => (await get(`${n1.url}/news/9`, site)).headers['x-cache'] === 'MISS')
  })
})
