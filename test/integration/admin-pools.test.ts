import { describe, expect, it, onTestFinished } from 'vitest'
import { request } from 'undici'
import { pino } from 'pino'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Balancer } from '../../src/balancer/index.js'
import { resolveConfig } from '../../src/config/load.js'
import { PageCache } from '../../src/page-cache/index.js'
import { StrataMetrics } from '../../src/observability/metrics.js'
import { createAdminServer } from '../../src/admin/server.js'
import { upstreamRoutes } from '../../src/admin/upstream-routes.js'
import { cacheRoutes } from '../../src/admin/cache-routes.js'
import { poolsOf, type PoolView } from '../../src/admin/pools-view.js'
import { startBehind, TEST_TOKEN } from '../helpers/strata.js'

/**
 * The admin API per pool: GET /pools, /pools/:pool/upstreams… (today's /upstreams… meaning the
 * default pool, through the same handlers), /stats grouped by pool. Two real balancers behind the
 * real admin server (fastify inject) for the pool shapes; a running strata on real origins for
 * what traffic shows (the default pool, until routes send requests to others).
 */

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }
const silent = pino({ level: 'silent' })

function twoPools() {
  const config = resolveConfig({
    admin: { token: TEST_TOKEN },
    upstreams: [{ id: 'b1', url: 'http://127.0.0.1:1' }, { id: 'b2', url: 'http://127.0.0.1:2' }],
    log: { level: 'silent' },
  })
  const apiPool = resolveConfig({
    upstreams: [{ id: 'api1', url: 'http://127.0.0.1:3' }],
    balancer: { algorithm: 'least-connections', sticky: { mode: 'insert', cookie: 'strata_srv_api' }, healthCheck: { path: '/health' } },
  })
  const apiConfig = apiPool.balancer
  const main = new Balancer({ upstreams: config.upstreams, config: config.balancer, logger: silent })
  const api = new Balancer({ upstreams: apiPool.upstreams, config: apiConfig, logger: silent })
  const pools: PoolView[] = [
    { name: 'default', balancer: main, config: config.balancer },
    { name: 'api', balancer: api, config: apiConfig, discovered: () => ({ web: ['web@127.0.0.5'] }) },
  ]
  const view = poolsOf(pools)
  const cache = new PageCache({ config: config.cache, logger: silent })
  const metrics = new StrataMetrics({ defaultMetrics: false })
  const app = createAdminServer({ config, logger: silent, version: 'test', routes: [upstreamRoutes(view), cacheRoutes(cache, view, metrics)] })
  onTestFinished(async () => {
    await app.close()
    await Promise.all([main.close(), api.close(), cache.close()])
  })
  const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown) => {
    const res = await app.inject({ method, url, headers: AUTH, ...(body === undefined ? {} : { payload: body as object }) })
    return { status: res.statusCode, json: res.json() as Record<string, any> }
  }
  return { app, call, main, api, metrics }
}

describe('admin API per pool', () => {
  it('GET /pools lists every pool, default first, with its policy and upstreams; GET /pools/:pool one', async () => {
    const { call, app } = twoPools()
    expect((await app.inject({ method: 'GET', url: '/pools' })).statusCode).toBe(401)
    const { status, json } = await call('GET', '/pools')
    expect(status).toBe(200)
    expect(json.pools.map((p: { name: string }) => p.name)).toEqual(['default', 'api'])
    expect(json.pools[0]).toMatchObject({ name: 'default', algorithm: 'round-robin', sticky: null, healthCheck: false })
    expect(json.pools[0].upstreams.map((u: { id: string }) => u.id)).toEqual(['b1', 'b2'])
    // Only a pool with discovery has `discovered`.
    expect(json.pools[0]).not.toHaveProperty('discovered')
    expect(json.pools[1]).toMatchObject({ name: 'api', algorithm: 'least-connections', sticky: 'insert', healthCheck: true, discovered: { web: ['web@127.0.0.5'] } })
    expect(json.pools[1].upstreams[0]).toMatchObject({ id: 'api1', url: 'http://127.0.0.1:3', state: expect.any(String), weight: 1, active: 0 })

    const one = await call('GET', '/pools/api')
    expect(one.status).toBe(200)
    expect(one.json).toEqual(json.pools[1])
    const missing = await call('GET', '/pools/nope')
    expect(missing.status).toBe(404)
    expect(missing.json).toEqual({ error: 'STRATA_ADMIN_NOT_FOUND', message: 'no pool "nope" (pools: default, api)' })
  })

  it('/pools/:pool/upstreams lists, adds, drains, enables and removes in that pool only', async () => {
    const { call, main, api } = twoPools()
    expect((await call('GET', '/pools/api/upstreams')).json).toEqual({ upstreams: api.list() })
    expect((await call('GET', '/pools/default/upstreams')).json).toEqual({ upstreams: main.list() })
    // Today's route is the default pool.
    expect((await call('GET', '/upstreams')).json).toEqual({ upstreams: main.list() })

    const added = await call('POST', '/pools/api/upstreams', { id: 'api2', url: 'http://127.0.0.1:4', weight: 3 })
    expect(added.status).toBe(201)
    expect(added.json.upstream).toMatchObject({ id: 'api2', weight: 3 })
    expect(api.get('api2')).toBeDefined()
    expect(main.get('api2')).toBeUndefined()

    const drained = await call('POST', '/pools/api/upstreams/api2/drain')
    expect(drained.status).toBe(200)
    expect(drained.json.upstream).toMatchObject({ id: 'api2', state: 'draining' })
    expect((await call('POST', '/pools/api/upstreams/api2/enable')).json.upstream.state).not.toBe('draining')
    expect(await call('DELETE', '/pools/api/upstreams/api2')).toEqual({ status: 200, json: { removed: 'api2' } })
    expect(api.get('api2')).toBeUndefined()

    // An id of another pool is not found in this one, and the message says where it looked.
    const wrongPool = await call('POST', '/pools/api/upstreams/b1/drain')
    expect(wrongPool.status).toBe(404)
    expect(wrongPool.json.message).toBe('no upstream "b1" in pool "api"')
    expect(main.list().find((u) => u.id === 'b1')?.state).not.toBe('draining')
    // Today's routes keep today's message.
    expect((await call('DELETE', '/upstreams/nope')).json.message).toBe('no upstream "nope"')
    expect((await call('GET', '/pools/nope/upstreams')).status).toBe(404)
    expect((await call('POST', '/pools/nope/upstreams', { id: 'n1', url: 'http://127.0.0.1:5' })).json.message).toBe('no pool "nope" (pools: default, api)')
    // A bad body is a 400 naming the field, as on /upstreams.
    const bad = await call('POST', '/pools/api/upstreams', { id: 'api9', url: 'ftp://x' })
    expect(bad.status).toBe(400)
    expect(bad.json.message).toContain('url')
  })

  it('an id held by any pool, or by a discovery entry, is a 409', async () => {
    const { call, main, api } = twoPools()
    const inDefault = await call('POST', '/pools/api/upstreams', { id: 'b1', url: 'http://127.0.0.1:6' })
    expect(inDefault.status).toBe(409)
    expect(inDefault.json).toEqual({ error: 'STRATA_ADMIN_CONFLICT', message: 'upstream "b1" already exists in pool "default" (ids are unique across pools)' })
    expect((await call('POST', '/upstreams', { id: 'api1', url: 'http://127.0.0.1:6' })).status).toBe(409)
    expect((await call('POST', '/pools/default/upstreams', { id: 'web', url: 'http://127.0.0.1:6' })).status).toBe(409)
    expect((await call('POST', '/pools/api/upstreams', { id: 'api1', url: 'http://127.0.0.1:6' })).status).toBe(409)
    expect(api.list().map((u) => u.id)).toEqual(['api1'])
    expect(main.list().map((u) => u.id)).toEqual(['b1', 'b2'])
  })

  it('/stats keeps the default pool at the top level and groups every pool with its upstream attempts', async () => {
    const { call, metrics, api } = twoPools()
    metrics.upstreamAttempt('default', 'b1', { ok: true, statusCode: 200, durationMs: 2 })
    metrics.upstreamAttempt('api', 'api1', { ok: true, statusCode: 200, durationMs: 2 })
    metrics.upstreamAttempt('api', 'api1', { ok: false, durationMs: 2 })
    // An aborted attempt (the client went away) is not counted, as before.
    metrics.upstreamAttempt('api', 'api1', { ok: false, aborted: true, durationMs: 2 })
    api.drain('api1')
    const { json } = await call('GET', '/stats')
    expect(json.upstreams.map((u: { id: string }) => u.id)).toEqual(['b1', 'b2'])
    expect(Object.keys(json.upstreams[0]).sort()).toEqual(['active', 'failures', 'health', 'id', 'latencyEwmaMs', 'state'])
    expect(json.pools.default).toEqual({ upstreams: json.upstreams, requests: 1 })
    expect(json.pools.api.requests).toBe(2)
    expect(json.pools.api.upstreams).toEqual([{ id: 'api1', state: 'draining', health: api.list()[0]!.health, active: 0, failures: 0, latencyEwmaMs: null }])
    expect(json.upstreamRequests).toEqual({ b1: 1, api1: 2 })
    // The pool totals are not repeated at the top level.
    expect(json).not.toHaveProperty('poolRequests')
  })
})

const site = (req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' })
  res.end(`ok ${req.url}`)
}

describe('admin API per pool on a running strata', () => {
  it('the default pool through /pools/default/…: real traffic counted per pool, a drain there stops it', async () => {
    const b = await startBehind([site, site], { log: { level: 'warn', access: false } })
    onTestFinished(() => b.close())
    const [o1, o2] = b.origins as [(typeof b.origins)[0], (typeof b.origins)[0]]
    const admin = async (method: 'GET' | 'POST', path: string) => {
      const res = await request(`${b.s.adminUrl}${path}`, { method, headers: AUTH })
      return { status: res.statusCode, json: (await res.body.json()) as Record<string, any> }
    }
    const pools = await admin('GET', '/pools')
    expect(pools.json.pools).toHaveLength(1)
    expect(pools.json.pools[0]).toMatchObject({ name: 'default', algorithm: 'round-robin', sticky: null, healthCheck: false })
    expect(pools.json.pools[0].upstreams.map((u: { url: string }) => u.url)).toEqual([o1.url, o2.url])

    for (let i = 0; i < 6; i++) await (await request(`${b.s.url}/r${i}`)).body.dump()
    expect(o1.hits() + o2.hits()).toBe(6)
    const stats = (await admin('GET', '/stats')).json
    expect(stats.pools.default.requests).toBe(6)
    expect(stats.pools.default.upstreams).toEqual(stats.upstreams)
    expect(stats.upstreamRequests).toEqual({ b1: o1.hits(), b2: o2.hits() })

    const drained = await admin('POST', '/pools/default/upstreams/b2/drain')
    expect(drained.json.upstream).toMatchObject({ id: 'b2', state: 'draining' })
    // The same upstream seen through today's route.
    expect((await admin('GET', '/upstreams')).json.upstreams.find((u: { id: string }) => u.id === 'b2').state).toBe('draining')
    const before = o2.hits()
    for (let i = 0; i < 4; i++) await (await request(`${b.s.url}/after${i}`)).body.dump()
    expect(o2.hits()).toBe(before)
    expect((await admin('GET', '/stats')).json.pools.default.requests).toBe(10)
  })
})
