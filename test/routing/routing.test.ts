import { describe, expect, it, onTestFinished } from 'vitest'
import { request } from 'undici'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { startStrata, TEST_TOKEN, type RunningStrata } from '../helpers/strata.js'

/**
 * Pools and routes, end to end on real origins: each request reaches the pool its route names,
 * with the route's path rewrite, cache lifetimes and ESI setting; purges reach every pool.
 */

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }

/** An origin that answers `<name> <method> <url>`, cacheable when `cc` is given, counting requests. */
async function origin(name: string, opts: { cc?: string; extra?: Record<string, string>; body?: (url: string) => string } = {}): Promise<Origin & { hits: string[]; cookies: string[] }> {
  const hits: string[] = []
  const cookies: string[] = []
  const o = await startOrigin((req, res) => {
    hits.push(`${req.method} ${req.url}`)
    if (req.headers.cookie !== undefined) cookies.push(req.headers.cookie)
    res.writeHead(200, { 'content-type': 'text/html', ...(opts.cc === undefined ? {} : { 'cache-control': opts.cc }), ...opts.extra })
    res.end(opts.body?.(req.url ?? '') ?? `${name} ${req.method} ${req.url}`)
  })
  onTestFinished(() => o.close())
  return Object.assign(o, { hits, cookies })
}

async function start(upstreams: string[], overrides: Record<string, unknown>): Promise<RunningStrata> {
  const s = await startStrata(upstreams, { log: { level: 'warn', access: false }, ...overrides })
  onTestFinished(() => s.close())
  return s
}

async function get(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const res = await request(url, { method: (init.method ?? 'GET') as 'GET', headers: init.headers ?? {}, ...(init.body === undefined ? {} : { body: init.body }) })
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers }
}

describe('routes send each request to its pool', () => {
  it('matches host (exact and wildcard), path prefix, method and header; first match wins; the rest go to default', async () => {
    const [web, api, stat, writer, beta] = await Promise.all([origin('web'), origin('api'), origin('static'), origin('writer'), origin('beta')])
    const s = await start([web.url], {
      pools: {
        api: { upstreams: [{ id: 'api1', url: api.url }], balancer: { algorithm: 'least-connections' } },
        static: { upstreams: [{ id: 's1', url: stat.url }] },
        writer: { upstreams: [{ id: 'w1', url: writer.url }] },
        beta: { upstreams: [{ id: 'beta1', url: beta.url }] },
      },
      routes: [
        { match: { host: 'api.example.com' }, pool: 'api' },
        { match: { host: '*.static.example.com' }, pool: 'static' },
        { match: { pathPrefix: '/static/' }, pool: 'static' },
        { match: { methods: ['POST', 'PUT', 'PATCH', 'DELETE'] }, pool: 'writer' },
        { match: { pathPrefix: '/app/', header: { name: 'x-beta', value: '1' } }, pool: 'beta' },
        { match: { header: { name: 'x-any-beta' } }, pool: 'beta' },
      ],
    })
    expect((await get(`${s.url}/x`, { headers: { host: 'api.example.com:8080' } })).body).toBe('api GET /x')
    expect((await get(`${s.url}/x`, { headers: { host: 'a.b.static.example.com' } })).body).toBe('static GET /x')
    // The bare domain is not a subdomain.
    expect((await get(`${s.url}/x`, { headers: { host: 'static.example.com' } })).body).toBe('web GET /x')
    expect((await get(`${s.url}/static/app.css`)).body).toBe('static GET /static/app.css')
    expect((await get(`${s.url}/static/app.css`, { method: 'POST', body: 'x' })).body).toBe('static POST /static/app.css')
    expect((await get(`${s.url}/articles/1`, { method: 'POST', body: 'x' })).body).toBe('writer POST /articles/1')
    expect((await get(`${s.url}/app/home`, { headers: { 'x-beta': '1' } })).body).toBe('beta GET /app/home')
    expect((await get(`${s.url}/app/home`, { headers: { 'x-beta': '2' } })).body).toBe('web GET /app/home')
    expect((await get(`${s.url}/other`, { headers: { 'x-any-beta': '' } })).body).toBe('beta GET /other')
    expect((await get(`${s.url}/`)).body).toBe('web GET /')
  })

  it('strips and adds path prefixes on the way upstream, while the cache keys on the client path', async () => {
    const api = await origin('api', { cc: 'max-age=60' })
    const web = await origin('web', { cc: 'max-age=60' })
    const s = await start([web.url], {
      pools: { api: { upstreams: [{ id: 'api1', url: api.url }] } },
      routes: [
        { match: { pathPrefix: '/api/' }, pool: 'api', stripPrefix: '/api' },
        { match: { pathPrefix: '/v1/' }, pool: 'api', stripPrefix: '/v1', addPrefix: '/internal' },
      ],
    })
    expect((await get(`${s.url}/api/users?page=2`)).body).toBe('api GET /users?page=2')
    expect((await get(`${s.url}/v1/users`)).body).toBe('api GET /internal/users')
    // A hit, under the client's path: the origin saw one request.
    const again = await get(`${s.url}/api/users?page=2`)
    expect(again.headers['x-cache']).toBe('HIT')
    expect(api.hits.filter((h) => h === 'GET /users?page=2')).toHaveLength(1)
    // /apix is not under /api/: the default pool, unchanged.
    expect((await get(`${s.url}/apix`)).body).toBe('web GET /apix')
  })

  it('applies per-route cache lifetimes and cache off, and unsafe requests still invalidate', async () => {
    const web = await origin('web') // no Cache-Control: stored only with a default TTL
    const s = await start([web.url], {
      cache: { defaultTtl: 0 },
      routes: [
        { match: { pathPrefix: '/static/' }, cache: { defaultTtl: 3600 } },
        { match: { pathPrefix: '/live/' }, cache: { enabled: false } },
        { match: { methods: ['POST'] }, cache: { enabled: false } },
      ],
    })
    await get(`${s.url}/static/a.js`)
    const hit = await get(`${s.url}/static/a.js`)
    expect(hit.headers['x-cache']).toBe('HIT')
    expect(hit.headers['cache-status']).toMatch(/ttl=3[56]\d\d/)
    // The same origin answer under the default TTL (0) is not stored.
    await get(`${s.url}/page`)
    expect((await get(`${s.url}/page`)).headers['x-cache']).not.toBe('HIT')
    // A route with the cache off never stores, whatever the origin says.
    const live = await origin('live', { cc: 'max-age=600' })
    const s2 = await start([live.url], { routes: [{ match: { pathPrefix: '/live/' }, cache: { enabled: false } }, { match: { methods: ['POST'] }, cache: { enabled: false } }] })
    await get(`${s2.url}/live/score`)
    const second = await get(`${s2.url}/live/score`)
    expect(second.headers['cache-status']).toMatch(/fwd=bypass/)
    expect(live.hits.filter((h) => h === 'GET /live/score')).toHaveLength(2)
    // A POST on a cache-off route still invalidates what another route stored (RFC 9111 §4.4).
    await get(`${s2.url}/article`)
    expect((await get(`${s2.url}/article`)).headers['x-cache']).toBe('HIT')
    await get(`${s2.url}/article`, { method: 'POST', body: 'edit' })
    expect((await get(`${s2.url}/article`)).headers['x-cache']).toBe('MISS')
  })

  it('turns ESI off per route: the template passes through as written', async () => {
    const template = '<html><esi:include src="/frag"/></html>'
    const web = await origin('web', {
      cc: 'max-age=60',
      extra: { 'surrogate-control': 'content="ESI/1.0"' },
      body: (url) => (url === '/frag' ? 'FRAGMENT' : template),
    })
    const s = await start([web.url], { routes: [{ match: { pathPrefix: '/raw/' }, esi: { enabled: false } }] })
    expect((await get(`${s.url}/page`)).body).toBe('<html>FRAGMENT</html>')
    expect((await get(`${s.url}/raw/page`)).body).toBe(template)
    // Also from the cache (a hit of a stored template).
    const hit = await get(`${s.url}/raw/page`)
    expect(hit.body).toBe(template)
    expect(hit.headers['x-cache']).toBe('HIT')
  })

  it('gives each pool its own balancer and sticky cookie', async () => {
    const [a1, a2, b1, b2] = await Promise.all([origin('a1'), origin('a2'), origin('b1'), origin('b2')])
    const s = await start([a1.url, a2.url], {
      balancer: { sticky: { mode: 'insert', secret: 'x'.repeat(32) } },
      pools: { shop: { upstreams: [{ id: 'shop1', url: b1.url }, { id: 'shop2', url: b2.url }] } },
      routes: [{ match: { pathPrefix: '/shop/' }, pool: 'shop' }],
    })
    const first = await get(`${s.url}/`)
    const shop = await get(`${s.url}/shop/`)
    const cookieOf = (h: string | string[] | undefined) => String(Array.isArray(h) ? h[0] : h).split(';')[0]!
    const c1 = cookieOf(first.headers['set-cookie'])
    const c2 = cookieOf(shop.headers['set-cookie'])
    expect(c1.startsWith('strata_srv=')).toBe(true)
    expect(c2.startsWith('strata_srv_shop=')).toBe(true)
    const cookie = `${c1}; ${c2}`
    const home = first.body.split(' ')[0]
    const store = shop.body.split(' ')[0]
    for (let i = 0; i < 6; i++) {
      expect((await get(`${s.url}/`, { headers: { cookie } })).body.split(' ')[0]).toBe(home)
      expect((await get(`${s.url}/shop/`, { headers: { cookie } })).body.split(' ')[0]).toBe(store)
    }
    // Neither pool's sticky cookie reaches an origin.
    const sent = [a1, a2, b1, b2].flatMap((o) => o.cookies)
    expect(sent.filter((c) => c.includes('strata_srv'))).toEqual([])
  })

  it('purges reach entries stored through every pool', async () => {
    const [web, api] = await Promise.all([origin('web', { cc: 'max-age=600' }), origin('api', { cc: 'max-age=600' })])
    const s = await start([web.url], {
      pools: { api: { upstreams: [{ id: 'api1', url: api.url }] } },
      routes: [{ match: { pathPrefix: '/api/' }, pool: 'api' }],
    })
    await get(`${s.url}/api/a`)
    await get(`${s.url}/b`)
    expect((await get(`${s.url}/api/a`)).headers['x-cache']).toBe('HIT')
    expect((await get(`${s.url}/b`)).headers['x-cache']).toBe('HIT')
    const purge = await request(`${s.adminUrl}/purge`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ all: true }) })
    expect(purge.statusCode).toBeLessThan(300)
    await purge.body.dump()
    expect((await get(`${s.url}/api/a`)).headers['x-cache']).toBe('MISS')
    expect((await get(`${s.url}/b`)).headers['x-cache']).toBe('MISS')
  })
})
