import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import autocannon from 'autocannon'
import { startOrigin, type Handler, type Origin } from '../helpers/origin.js'
import { startBehind, startStrata, type RunningStrata } from '../helpers/strata.js'
import { sleep } from '../helpers/ports.js'

const answerAs = (name: string): Handler => (req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': name, 'x-saw-cookie': req.headers.cookie ?? '' })
  res.end(name)
}
const named = (name: string) => startOrigin(answerAs(name))

let cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})
async function setup(n: number, overrides: Record<string, unknown> = {}): Promise<{ origins: Origin[]; s: RunningStrata }> {
  const running = await startBehind(Array.from({ length: n }, (_, i) => answerAs(`b${i + 1}`)), overrides)
  cleanup.push(running.close)
  return running
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers })
  const body = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body }
}

describe('balancer behind the proxy', () => {
  it('uses the configured algorithm (weighted 3:1)', async () => {
    const origins = await Promise.all([named('b1'), named('b2')])
    const s = await startStrata([], {
      upstreams: [
        { id: 'b1', url: origins[0]!.url, weight: 3 },
        { id: 'b2', url: origins[1]!.url, weight: 1 },
      ],
      balancer: { algorithm: 'weighted' },
    })
    cleanup.push(async () => {
      await s.close()
      await Promise.all(origins.map((o) => o.close()))
    })
    const counts: Record<string, number> = {}
    for (let i = 0; i < 40; i++) {
      const r = await get(`${s.url}/w`)
      counts[r.body] = (counts[r.body] ?? 0) + 1
    }
    expect(counts).toEqual({ b1: 30, b2: 10 })
  })

  it('sticky insert: first visit gets a signed cookie, repeats stick, the cookie never reaches the app, failover reissues', async () => {
    const { origins, s } = await setup(3, { balancer: { sticky: { mode: 'insert', secret: 'sticky-secret-0123456789' }, retries: 2 } })
    const first = await get(`${s.url}/`, { cookie: 'app=1' })
    const setCookie = String(first.headers['set-cookie'])
    expect(setCookie).toMatch(/^strata_srv=[^;]+; Path=\/; HttpOnly; SameSite=Lax/)
    expect(setCookie).not.toContain('127.0.0.1')
    const token = setCookie.split(';')[0]!
    for (let i = 0; i < 6; i++) {
      const r = await get(`${s.url}/`, { cookie: `app=1; ${token}` })
      expect(r.body).toBe(first.body)
      expect(r.headers['x-saw-cookie']).toBe('app=1')
    }
    // Tampered token: ignored and replaced.
    const tampered = await get(`${s.url}/`, { cookie: `${token.slice(0, -2)}xx` })
    expect(String(tampered.headers['set-cookie'])).toMatch(/^strata_srv=/)
    // Its server goes away: the next request goes elsewhere, with a new cookie.
    const idx = Number(first.body.slice(1)) - 1
    await origins[idx]!.close()
    const moved = await get(`${s.url}/`, { cookie: token })
    expect(moved.status).toBe(200)
    expect(moved.body).not.toBe(first.body)
    expect(String(moved.headers['set-cookie'])).toMatch(/^strata_srv=/)
  })

  it('admin: list, add, drain, enable and remove upstreams at runtime', async () => {
    const { s } = await setup(1)
    const extra = await named('b9')
    cleanup.push(() => extra.close())
    const auth = { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' }
    const list = await request(`${s.adminUrl}/upstreams`, { headers: auth })
    const listed = (await list.body.json()) as { upstreams: { id: string; state: string }[] }
    expect(listed.upstreams.map((u) => u.id)).toEqual(['b1'])

    const bad = await request(`${s.adminUrl}/upstreams`, { method: 'POST', headers: auth, body: JSON.stringify({ id: 'b9', url: 'ftp://x' }) })
    expect(bad.statusCode).toBe(400)
    expect(((await bad.body.json()) as { message: string }).message).toContain('url: must be an http(s) URL')
    const dup = await request(`${s.adminUrl}/upstreams`, { method: 'POST', headers: auth, body: JSON.stringify({ id: 'b1', url: extra.url }) })
    expect(dup.statusCode).toBe(409)
    await dup.body.text()

    const added = await request(`${s.adminUrl}/upstreams`, { method: 'POST', headers: auth, body: JSON.stringify({ id: 'b9', url: extra.url }) })
    expect(added.statusCode).toBe(201)
    await added.body.text()
    const seen = new Set<string>()
    for (let i = 0; i < 6; i++) seen.add((await get(`${s.url}/`)).body)
    expect([...seen].sort()).toEqual(['b1', 'b9'])

    const drain = await request(`${s.adminUrl}/upstreams/b1/drain`, { method: 'POST', headers: { authorization: auth.authorization } })
    expect(drain.statusCode).toBe(200)
    await drain.body.text()
    for (let i = 0; i < 4; i++) expect((await get(`${s.url}/`)).body).toBe('b9')
    const enable = await request(`${s.adminUrl}/upstreams/b1/enable`, { method: 'POST', headers: { authorization: auth.authorization } })
    expect(enable.statusCode).toBe(200)
    await enable.body.text()

    const del = await request(`${s.adminUrl}/upstreams/b9`, { method: 'DELETE', headers: { authorization: auth.authorization } })
    expect(del.statusCode).toBe(200)
    await del.body.text()
    for (let i = 0; i < 4; i++) expect((await get(`${s.url}/`)).body).toBe('b1')
    const missing = await request(`${s.adminUrl}/upstreams/nope/drain`, { method: 'POST', headers: { authorization: auth.authorization } })
    expect(missing.statusCode).toBe(404)
    await missing.body.text()
  })

  it('all servers down: the last one is never ejected, so it is tried again and serves when it returns', async () => {
    const { origins, s } = await setup(2, { balancer: { retries: 2, passive: { failures: 1, cooldownMs: 60_000 } } })
    const port2 = Number(new URL(origins[1]!.url).port)
    await Promise.all(origins.map((o) => o.close()))
    for (let i = 0; i < 3; i++) expect((await get(`${s.url}/`)).status).toBe(502)
    const { upstreams: rows } = (await (await fetch(`${s.adminUrl}/upstreams`, { headers: { authorization: `Bearer ${s.token}` } })).json()) as { upstreams: { id: string; state: string }[] }
    expect(rows.map((r) => [r.id, r.state])).toEqual([['b1', 'ejected'], ['b2', 'up']])
    const back = await startOrigin(answerAs('back'), { port: port2 })
    cleanup.push(() => back.close())
    // Whichever one is still in is b2 (b1 was ejected first, when b2 could take its traffic).
    const r = await get(`${s.url}/`)
    expect(r.status).toBe(200)
    expect(r.body).toBe('back')
  })

  it('all drained: 503 with Retry-After', async () => {
    const { s } = await setup(1)
    const drained = await fetch(`${s.adminUrl}/upstreams/b1/drain`, { method: 'POST', headers: { authorization: `Bearer ${s.token}` } })
    expect(drained.status).toBe(200)
    const r = await get(`${s.url}/`)
    expect(r.status).toBe(503)
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1)
  })

  it('a sole origin answering 500 three times, then 200, keeps being reached (issue #10 item 7)', async () => {
    for (const statuses of [[], [500, 502, 503, 504]]) {
      let n = 0
      const { origins, s, close } = await startBehind(
        [
          (_req, res) => {
            res.writeHead(n++ < 3 ? 500 : 200, { 'cache-control': 'no-store' })
            res.end(`answer ${n}`)
          },
        ],
        { balancer: { passive: { failures: 3, cooldownMs: 60_000, statuses } } },
      )
      cleanup.push(close)
      const got = []
      for (let i = 0; i < 5; i++) got.push((await get(`${s.url}/page`)).status)
      expect(got).toEqual([500, 500, 500, 200, 200])
      expect(origins[0]!.hits('/page')).toBe(5)
    }
  })

  it('a sole origin dropping connections three times is still tried, and serves when it recovers', async () => {
    let n = 0
    const { origins, s } = await startBehind([
      (req, res) => {
        if (n++ < 3) return req.socket.destroy()
        res.writeHead(200, { 'cache-control': 'no-store' })
        res.end('ok')
      },
    ], { balancer: { retries: 0, passive: { failures: 3, cooldownMs: 60_000 } } }).then((r) => (cleanup.push(r.close), r))
    const got = []
    for (let i = 0; i < 4; i++) got.push((await get(`${s.url}/drop`)).status)
    expect(got).toEqual([502, 502, 502, 200])
    expect(origins[0]!.hits('/drop')).toBe(4)
  })

  it('one of two servers killed under load: zero failed GETs', async () => {
    const { origins, s } = await setup(2, { balancer: { retries: 2, passive: { failures: 1, cooldownMs: 10_000 } } })
    const run = autocannon({ url: `${s.url}/load`, connections: 20, duration: 3 })
    await sleep(1000)
    await origins[1]!.close()
    const result = await run
    expect(result.requests.total).toBeGreaterThan(200)
    expect(result.errors).toBe(0)
    expect(result.non2xx).toBe(0)
    expect(origins[0]!.hits()).toBeGreaterThan(origins[1]!.hits())
  })
})

describe('learn-mode sticky sessions across two strata nodes', () => {
  it('a session learned on node 1 sticks on node 2 through the shared redis-server', async () => {
    const { startRedis } = await import('../helpers/redis.js')
    const redis = await startRedis()
    const origins = await Promise.all(
      ['b1', 'b2'].map((name) =>
        startOrigin((req, res) => {
          const headers: Record<string, string> = { 'content-type': 'text/plain', 'cache-control': 'no-store' }
          if (req.url === '/login') headers['set-cookie'] = `sid=session-${name}; Path=/; HttpOnly`
          res.writeHead(200, headers)
          res.end(name)
        }),
      ),
    )
    const overrides = { cache: { redis: redis.url }, balancer: { sticky: { mode: 'learn', cookie: 'sid' } } }
    const n1 = await startStrata(origins.map((o) => o.url), overrides)
    const n2 = await startStrata(origins.map((o) => o.url), overrides)
    cleanup.push(async () => {
      await n1.close()
      await n2.close()
      await Promise.all(origins.map((o) => o.close()))
      await redis.stop()
    })
    const login = await get(`${n1.url}/login`)
    const sid = String(login.headers['set-cookie']).split(';')[0]!
    expect(sid).toBe(`sid=session-${login.body}`)
    // Node 2 never saw this session: it finds it in Redis, for every request.
    for (let i = 0; i < 6; i++) expect((await get(`${n2.url}/page`, { cookie: sid })).body).toBe(login.body)
  })
})
