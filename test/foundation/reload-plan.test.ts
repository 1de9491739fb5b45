import { describe, expect, it } from 'vitest'
import { resolveConfig } from '../../src/config/load.js'
import { configDiff, planReload } from '../../src/config/reload.js'

const cfg = (extra: Record<string, unknown> = {}) =>
  resolveConfig({ admin: { token: 't' }, upstreams: [{ id: 'b1', url: 'http://127.0.0.1:3001' }], ...extra })

describe('planReload', () => {
  it('finds nothing to do for the same file', () => {
    expect(configDiff(cfg(), cfg())).toEqual([])
    expect(planReload(cfg(), cfg())).toMatchObject({ changed: [], restartRequired: [] })
  })

  it('applies runtime keys and keeps restart-only keys at their old values', () => {
    const old = cfg()
    const next = cfg({
      upstreams: [{ id: 'b1', url: 'http://127.0.0.1:3001', weight: 5 }],
      listen: { port: 9999 },
      admin: { token: 't', port: 9998 },
      balancer: { algorithm: 'least-connections', retries: 3, drainMs: 5 },
      cache: { grace: 30, maxBytes: 1024 },
      esi: { maxDepth: 2, enabled: false },
      log: { level: 'debug', access: false },
      serverTiming: true,
    })
    const plan = planReload(old, next)
    expect(plan.changed.sort()).toEqual(['balancer.algorithm', 'balancer.drainMs', 'balancer.retries', 'cache.grace', 'esi.maxDepth', 'log.level', 'upstreams'])
    expect(plan.restartRequired.sort()).toEqual(['admin.port', 'cache.maxBytes', 'esi.enabled', 'listen.port', 'log.access', 'serverTiming'])
    expect(plan.effective.upstreams[0]!.weight).toBe(5)
    expect(plan.effective.cache.grace).toBe(30)
    expect(plan.effective.cache.maxBytes).toBe(old.cache.maxBytes)
    expect(plan.effective.listen.port).toBe(old.listen.port)
    expect(plan.effective.balancer.algorithm).toBe('least-connections')
    expect(plan.effective.balancer.retries).toBe(3)
    expect(plan.effective.esi.enabled).toBe(true)
    expect(plan.effective.log).toEqual({ level: 'debug', access: true })
    expect(Object.isFrozen(plan.effective.cache)).toBe(true)
    // The old config is untouched.
    expect(old.cache.grace).toBe(0)
  })

  it('applies every balancer key at runtime; listen and admin addresses stay restart-only', () => {
    const old = cfg({ balancer: { sticky: { mode: 'insert', secret: 'a-secret-of-16-chars' } } })
    const next = cfg({
      listen: { host: '127.0.0.2' },
      admin: { token: 't', host: '127.0.0.3' },
      balancer: {
        algorithm: 'consistent-hash',
        hashOn: 'header:x-user',
        sticky: { mode: 'insert', cookie: 'srv2', secret: 'another-secret-16ch' },
        healthCheck: { path: '/ready', intervalMs: 500, rise: 1, fall: 1 },
        passive: { failures: 9, statuses: [503] },
        slowStartMs: 100,
        retries: 2,
        retryOn: ['connect', '503'],
        drainMs: 7,
      },
    })
    const plan = planReload(old, next)
    expect(plan.changed.sort()).toEqual([
      'balancer.algorithm',
      'balancer.drainMs',
      'balancer.hashOn',
      'balancer.healthCheck',
      'balancer.passive',
      'balancer.retries',
      'balancer.retryOn',
      'balancer.slowStartMs',
      'balancer.sticky',
    ])
    expect(plan.restartRequired.sort()).toEqual(['admin.host', 'listen.host'])
    expect(plan.effective.balancer).toEqual(next.balancer)
    expect(plan.effective.listen.host).toBe(old.listen.host)
  })

  it('applies routes and each named pool at runtime, pool by pool', () => {
    const pool = (id: string, extra: Record<string, unknown> = {}) => ({ upstreams: [{ id, url: `http://${id}:8080` }], ...extra })
    const old = cfg({
      pools: { api: pool('a1'), 'api.v2': pool('v2'), gone: pool('g1'), same: pool('s1', { balancer: { algorithm: 'p2c' } }) },
      routes: [{ match: { pathPrefix: '/api/' }, pool: 'api' }],
    })
    const next = cfg({
      pools: { api: pool('a1', { balancer: { retries: 4 } }), 'api.v2': pool('v2b'), same: pool('s1', { balancer: { algorithm: 'p2c' } }), fresh: pool('f1') },
      routes: [{ match: { host: 'api.example.com' }, pool: 'api' }, { match: { pathPrefix: '/api/' }, pool: 'api.v2' }],
    })
    const plan = planReload(old, next)
    expect(plan.changed.sort()).toEqual(['pools.api', 'pools.api.v2', 'pools.fresh', 'pools.gone', 'routes'])
    expect(plan.restartRequired).toEqual([])
    expect(plan.effective.routes).toEqual(next.routes)
    expect(plan.effective.pools).toEqual(next.pools)
    expect(Object.keys(plan.effective.pools)).not.toContain('gone')
    expect(Object.isFrozen(plan.effective.pools['fresh']!.upstreams[0])).toBe(true)
    expect(Object.keys(old.pools)).toContain('gone')
  })

  it('reports a pool whose inherited balancer changed with the top-level balancer', () => {
    const old = cfg({ pools: { api: { upstreams: [{ id: 'a1', url: 'http://a1' }] }, own: { upstreams: [{ id: 'o1', url: 'http://o1' }], balancer: { algorithm: 'p2c' } } } })
    const next = cfg({ balancer: { retries: 2, algorithm: 'p2c' }, pools: { api: { upstreams: [{ id: 'a1', url: 'http://a1' }] }, own: { upstreams: [{ id: 'o1', url: 'http://o1' }], balancer: { algorithm: 'p2c' } } } })
    const plan = planReload(old, next)
    expect(plan.changed.sort()).toEqual(['balancer.algorithm', 'balancer.retries', 'pools.api', 'pools.own'])
    expect(plan.effective.pools['api']!.balancer.retries).toBe(2)
    expect(plan.effective.pools['own']!.balancer).toMatchObject({ algorithm: 'p2c', retries: 2 })
  })
})
