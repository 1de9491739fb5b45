import { describe, expect, it } from 'vitest'
import { configProblems, validConfig } from '../helpers/config.js'
import { availableParallelism } from 'node:os'
import { resolveConfig } from '../../src/config/load.js'

const valid = validConfig
const problems = configProblems

describe('config', () => {
  it('applies every default in one place and freezes the result', () => {
    const cfg = resolveConfig(valid)
    expect(cfg.listen).toEqual({ host: '0.0.0.0', port: 2001 })
    expect(cfg.admin.host).toBe('127.0.0.1')
    expect(cfg.admin.port).toBe(4001)
    expect(cfg.admin.token.length).toBeGreaterThan(16)
    expect(cfg.upstreams[0]).toEqual({ id: 'b1', url: 'http://127.0.0.1:3001', weight: 1, backup: false })
    expect(cfg.timeouts).toMatchObject({ connectMs: 3000, responseMs: 30000 })
    expect(cfg.balancer.algorithm).toBe('round-robin')
    expect(cfg.balancer.passive).toEqual({ failures: 3, cooldownMs: 5000, maxCooldownMs: 60000, statuses: [] })
    expect(cfg.cache).toMatchObject({ maxBytes: 268435456, redis: null, defaultTtl: 0 })
    expect(cfg.esi).toMatchObject({ enabled: true, maxDepth: 5 })
    expect(Object.isFrozen(cfg)).toBe(true)
    expect(Object.isFrozen(cfg.upstreams[0])).toBe(true)
  })

  it('accepts the documented core shape as is', () => {
    const cfg = resolveConfig({
      listen: { host: '0.0.0.0', port: 2001 },
      admin: { host: '127.0.0.1', port: 4001, token: 'change-me' },
      upstreams: [
        { id: 'b1', url: 'http://127.0.0.1:3001', weight: 1 },
        { id: 'b2', url: 'https://127.0.0.1:3002', weight: 1 },
      ],
      timeouts: { connectMs: 3000, responseMs: 30000 },
      balancer: { algorithm: 'round-robin' },
      cache: { maxBytes: 268435456, redis: null },
      esi: { enabled: true },
    })
    expect(cfg.upstreams).toHaveLength(2)
  })

  it('applies defaults inside nullable objects (health check, sticky)', () => {
    const cfg = resolveConfig({ ...valid, balancer: { healthCheck: {}, sticky: { mode: 'insert' } } })
    expect(cfg.balancer.healthCheck).toEqual({ path: '/health', intervalMs: 2000, timeoutMs: 1000, expectStatus: 200, rise: 2, fall: 3 })
    expect(cfg.balancer.sticky).toEqual({ mode: 'insert', cookie: 'strata_srv' })
    const learn = resolveConfig({ ...valid, balancer: { sticky: { mode: 'learn', cookie: 'sid' } } })
    expect(learn.balancer.sticky).toEqual({ mode: 'learn', cookie: 'sid', ttlMs: 3600000 })
  })

  it('checks sticky options per mode', () => {
    expect(problems({ ...valid, balancer: { sticky: { mode: 'learn' } } })).toContain(
      "balancer.sticky.cookie: is required in mode \"learn\" (the application's session cookie)",
    )
    expect(problems({ ...valid, balancer: { sticky: { mode: 'learn', cookie: 'sid', secret: 'x'.repeat(20) } } })).toContain('balancer.sticky.secret: only for mode "insert"')
    expect(problems({ ...valid, balancer: { sticky: { mode: 'sometimes' } } }).some((p) => p.startsWith('balancer.sticky.mode'))).toBe(true)
  })

  it('keeps zero values (ttl 0 means something)', () => {
    const cfg = resolveConfig({ ...valid, listen: { port: 0 }, cache: { maxBytes: 0, grace: 0 } })
    expect(cfg.listen.port).toBe(0)
    expect(cfg.cache.maxBytes).toBe(0)
  })

  it('does not mutate the caller object', () => {
    const input = { upstreams: [{ id: 'b1', url: 'http://127.0.0.1:3001' }] }
    resolveConfig(input)
    expect(input).toEqual({ upstreams: [{ id: 'b1', url: 'http://127.0.0.1:3001' }] })
  })

  it.each([
    [{ upstreams: [{ id: 'b1', url: 'http://a' }, { id: 'b2', url: 'ftp://x' }] }, 'upstreams[1].url: must be an http(s) URL'],
    [{ upstreams: [{ id: 'b1', url: 'not a url' }] }, 'upstreams[0].url: must be an http(s) URL'],
    [{ upstreams: [{ id: 'b1', url: 'http://u:p@a' }] }, 'upstreams[0].url: must not contain credentials'],
    [{ upstreams: [{ id: 'b1', url: 'http://a' }, { id: 'b1', url: 'http://b' }] }, 'upstreams[1].id: duplicate id "b1"'],
    [{ upstreams: [] }, 'upstreams: must NOT have fewer than 1 items'],
    [{}, 'upstreams: is required'],
    [{ ...valid, listen: { port: 70000 } }, 'listen.port: must be <= 65535'],
    [{ ...valid, listen: { port: '2001' } }, 'listen.port: must be integer'],
    [{ ...valid, colour: 'blue' }, 'colour: unknown key'],
    [{ ...valid, cache: { maxBytes: 1, ttl: 5 } }, 'cache.ttl: unknown key'],
    [{ ...valid, balancer: { algorithm: 'fastest' } }, 'balancer.algorithm: must be one of "round-robin", "weighted", "least-connections", "random", "p2c", "consistent-hash"'],
    [{ ...valid, timeouts: { connectMs: -1 } }, 'timeouts.connectMs: must be >= 1'],
    [{ ...valid, esi: { allowedHosts: ['http://evil'] } }, 'esi.allowedHosts[0]: must be "host" or "host:port"'],
    [{ ...valid, esi: { credentialHosts: ['ok.test', 'https://evil'] } }, 'esi.credentialHosts[1]: must be "host" or "host:port"'],
    [{ upstreams: [{ id: 'b1', url: 'http://a', backup: true }] }, 'upstreams: at least one upstream must not be a backup'],
    [{ ...valid, cache: { redis: 'http://nope' } }, 'cache.redis'],
  ])('names the bad field: %j', (input, expected) => {
    const list = problems(input)
    expect(list.some((p) => p.startsWith(expected))).toBe(true)
  })

  it('reports every problem at once', () => {
    const list = problems({ upstreams: [{ id: 'b1', url: 'ftp://x' }], listen: { port: -1 }, bogus: true })
    expect(list.length).toBeGreaterThanOrEqual(3)
  })

  it('workers: 1 by default, a number, or "auto" resolved to the cores this process may use', () => {
    expect(resolveConfig(valid).workers).toBe(1)
    expect(resolveConfig({ ...valid, workers: 4 }).workers).toBe(4)
    expect(resolveConfig({ ...valid, workers: 'auto' }).workers).toBe(availableParallelism())
    expect(resolveConfig(valid).timeouts.workerCallMs).toBe(5000)
    for (const bad of [0, -1, 1.5, 257, 'many', '2', null]) {
      expect(problems({ ...valid, workers: bad }).join('\n'), String(bad)).toMatch(/^workers: /m)
    }
    // Both branches of the union are named, not only the literal.
    expect(problems({ ...valid, workers: 0 })).toEqual(['workers: must be one of "auto", or a value that must be >= 1'])
    expect(problems({ ...valid, workers: 'many' })).toEqual(['workers: must be one of "auto", or a value that must be integer'])
  })
})

