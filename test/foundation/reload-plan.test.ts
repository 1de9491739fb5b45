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
})
