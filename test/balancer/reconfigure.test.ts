import { afterEach, describe, expect, it } from 'vitest'
import type { ServerResponse } from 'node:http'
import { Balancer } from '../../src/balancer/index.js'
import { ManualClock } from '../../src/core/clock.js'
import { StrataError } from '../../src/core/errors.js'
import { startOrigin } from '../helpers/origin.js'
import { waitFor } from '../helpers/ports.js'
import { balancerConfig, counts, req, upstreams } from './fixtures.js'

/**
 * Balancer.reconfigure / setUpstreams: what a config reload changes while requests keep coming.
 * The picking policy is swapped between two picks; upstream state survives a weight change.
 */

const SECRET = 'a-long-enough-test-secret'
const picks = (b: Balancer, n: number, r = req()) => Array.from({ length: n }, () => b.pick(r)!.upstream.id)

describe('reconfigure: the picking policy', () => {
  it('swaps the algorithm between picks: round-robin → weighted → consistent-hash → round-robin', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 3, b: 1 }), config: balancerConfig() })
    expect(counts(picks(b, 8))).toEqual({ a: 4, b: 4 })

    b.reconfigure(balancerConfig({ algorithm: 'weighted' }))
    expect(counts(picks(b, 8))).toEqual({ a: 6, b: 2 })

    b.reconfigure(balancerConfig({ algorithm: 'consistent-hash', hashOn: 'header:x-user' }))
    for (const user of ['u1', 'u2', 'u3', 'u4', 'u5']) {
      const r = req({ headers: { 'x-user': user } })
      expect(new Set(picks(b, 5, r)).size).toBe(1)
    }
    const spread = new Set(Array.from({ length: 40 }, (_, i) => b.pick(req({ headers: { 'x-user': `user-${i}` } }))!.upstream.id))
    expect(spread).toEqual(new Set(['a', 'b']))

    b.reconfigure(balancerConfig())
    expect(counts(picks(b, 8, req({ headers: { 'x-user': 'u1' } })))).toEqual({ a: 4, b: 4 })
  })

  it('refuses a hashOn it cannot parse and keeps the old policy whole', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 3, b: 1 }), config: balancerConfig({ algorithm: 'weighted' }) })
    expect(() => b.reconfigure(balancerConfig({ algorithm: 'consistent-hash', hashOn: 'header:' }))).toThrow(StrataError)
    expect(counts(picks(b, 8))).toEqual({ a: 6, b: 2 })
  })

  it('applies passive.statuses at once', () => {
    const clock = new ManualClock()
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ passive: { failures: 1, cooldownMs: 1000, maxCooldownMs: 1000, statuses: [] } }), clock })
    const a = b.get('a')!
    b.begin(a)({ ok: true, statusCode: 503, durationMs: 1 })
    expect(b.list().find((u) => u.id === 'a')!.state).toBe('up')
    b.reconfigure(balancerConfig({ passive: { failures: 1, cooldownMs: 1000, maxCooldownMs: 1000, statuses: [503] } }))
    b.begin(a)({ ok: true, statusCode: 503, durationMs: 1 })
    expect(b.list().find((u) => u.id === 'a')!.state).toBe('ejected')
  })
})

describe('reconfigure: sticky sessions', () => {
  const insert = (sticky: Record<string, unknown> = {}) => balancerConfig({ sticky: { mode: 'insert', cookie: 'srv', secret: SECRET, ...sticky } })
  const cookieOf = (setCookie: string | undefined) => setCookie!.slice(0, setCookie!.indexOf(';'))

  it('a new cookie name: the old cookie no longer sticks, new cookies carry the new name', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: insert() })
    const first = b.pick(req())!
    const jar = cookieOf(first.setCookie)
    expect(jar.startsWith('srv=')).toBe(true)
    for (let i = 0; i < 4; i++) expect(b.pick(req({ headers: { cookie: jar } }))!.upstream.id).toBe(first.upstream.id)

    b.reconfigure(insert({ cookie: 'srv2' }))
    const after = Array.from({ length: 6 }, () => b.pick(req({ headers: { cookie: jar } }))!)
    expect(new Set(after.map((r) => r.upstream.id)).size).toBe(3)
    for (const r of after) expect(r.setCookie).toMatch(/^srv2=/)
    // The new cookie sticks.
    const renamed = cookieOf(after[0]!.setCookie)
    for (let i = 0; i < 4; i++) expect(b.pick(req({ headers: { cookie: renamed } }))!.upstream.id).toBe(after[0]!.upstream.id)
    // The proxy now strips the new name from what the application sees, and leaves the old one.
    expect(b.stripStickyCookie(`${renamed}; ${jar}`)).toBe(jar)
  })

  it('a new secret: cookies signed with the old one (already verified once) stop matching', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: insert() })
    const first = b.pick(req())!
    const jar = cookieOf(first.setCookie)
    expect(b.pick(req({ headers: { cookie: jar } }))!.setCookie).toBeUndefined()
    b.reconfigure(insert({ secret: 'another-secret-of-16+' }))
    const r = b.pick(req({ headers: { cookie: jar } }))!
    // Balanced afresh and re-issued, rather than trusted from the verified-token cache.
    expect(r.setCookie).toMatch(/^srv=/)
    expect(cookieOf(r.setCookie)).not.toBe(jar)
  })

  it('an unset secret stays the same random secret across a reload that changes other sticky keys', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: insert({ secret: undefined }) })
    const first = b.pick(req())!
    const token = cookieOf(first.setCookie).slice('srv='.length)
    b.reconfigure(insert({ secret: undefined, cookie: 'srv2' }))
    for (let i = 0; i < 4; i++) expect(b.pick(req({ headers: { cookie: `srv2=${token}` } }))!.upstream.id).toBe(first.upstream.id)
  })

  it('turns sticky sessions on (learn mode) and off', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: balancerConfig() })
    const withSid = req({ headers: { cookie: 'sid=s1' } })
    expect(new Set(picks(b, 3, withSid)).size).toBe(3)
    b.reconfigure(balancerConfig({ sticky: { mode: 'learn', cookie: 'sid', ttlMs: 60_000 } }))
    const first = b.pick(req())!
    b.learnFromResponse(first.upstream, 'sid=s1; Path=/')
    expect(new Set(picks(b, 5, withSid))).toEqual(new Set([first.upstream.id]))
    b.reconfigure(balancerConfig())
    expect(new Set(picks(b, 3, withSid)).size).toBe(3)
  })
})

describe('setUpstreams: a reloaded upstream list', () => {
  it('a weight change keeps the upstream: health, ejection count, latency average, active requests; no slow start', () => {
    const clock = new ManualClock()
    const cfg = balancerConfig({ algorithm: 'weighted', slowStartMs: 10_000, passive: { failures: 1, cooldownMs: 1000, maxCooldownMs: 1000, statuses: [] } })
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: cfg, clock })
    const a = b.get('a')!
    b.begin(a)({ ok: true, statusCode: 200, durationMs: 40 })
    b.begin(a)({ ok: false, connectError: true, durationMs: 1 }) // ejected for 1 s
    clock.advance(1000 + 10_000) // back, and past its slow-start ramp
    const inFlight = b.begin(a)
    const before = b.list().find((u) => u.id === 'a')!
    expect(before).toMatchObject({ state: 'up', active: 1, ejections: 1, latencyEwmaMs: 40 })

    const next = upstreams({ a: 3, b: 1 })
    b.setUpstreams(next)
    expect(b.get('a')).toBe(a)
    expect(b.list().find((u) => u.id === 'a')).toEqual({ ...before, weight: 3, effectiveWeight: 3 })
    expect(counts(picks(b, 8))).toEqual({ a: 6, b: 2 })
    inFlight({ ok: true, statusCode: 200, durationMs: 40 })
    expect(b.list().find((u) => u.id === 'a')!.active).toBe(0)
  })

  it('a url change is another server (removed, added, ramping up); new ids are added, missing ones removed', () => {
    const clock = new ManualClock()
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: balancerConfig({ slowStartMs: 10_000 }), clock })
    const removed: string[] = []
    const added: string[] = []
    b.on('removed', (u) => removed.push(u.id)).on('added', (u) => added.push(u.id))
    const oldB = b.get('b')!
    const [a, bb] = upstreams({ a: 1, b: 1 })
    b.setUpstreams([a!, { ...bb!, url: 'http://127.0.0.1:20002' }, { id: 'd', url: 'http://127.0.0.1:20004', weight: 1, backup: false }])
    expect(removed.sort()).toEqual(['b', 'c'])
    expect(added.sort()).toEqual(['b', 'd'])
    expect(b.get('b')).not.toBe(oldB)
    expect(b.list().map((u) => [u.id, u.state])).toEqual([
      ['a', 'up'],
      ['b', 'slow-start'],
      ['d', 'slow-start'],
    ])
  })

  it('validates the whole list first: a bad entry changes nothing', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig() })
    expect(() => b.setUpstreams([{ id: 'a', url: 'http://127.0.0.1:10001', weight: 5, backup: false }, { id: 'x', url: 'gopher://x', weight: 1, backup: false }])).toThrow(StrataError)
    expect(b.list().map((u) => [u.id, u.weight])).toEqual([
      ['a', 1],
      ['b', 1],
    ])
  })

  it('a weight change on a consistent-hash ring takes effect (the ring is rebuilt)', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ algorithm: 'consistent-hash', hashOn: 'path' }) })
    const share = () => counts(Array.from({ length: 2000 }, (_, i) => b.pick(req({ path: `/p/${i}` }))!.upstream.id))
    const even = share()
    b.setUpstreams(upstreams({ a: 9, b: 1 }))
    const skewed = share()
    expect(skewed['a']!).toBeGreaterThan(even['a']! + 500)
  })
})

describe('reconfigure: active health checks (real origins)', () => {
  const cleanup: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c()
  })

  const hc = (path: string, extra: Record<string, number> = {}) => ({ path, intervalMs: 30, timeoutMs: 500, expectStatus: 200, rise: 1, fall: 1, ...extra })

  it('new settings restart the checker: the new path is checked, the old one no longer', async () => {
    const o = await startOrigin((req, res: ServerResponse) => {
      res.statusCode = req.url === '/ready' ? 200 : 503
      res.end()
    })
    cleanup.push(() => o.close())
    const b = new Balancer({ upstreams: [{ id: 'a', url: o.url, weight: 1, backup: false }], config: balancerConfig({ healthCheck: hc('/health') }) })
    cleanup.push(() => b.close())
    b.start()
    await waitFor(() => b.list()[0]!.health === 'down')

    b.reconfigure(balancerConfig({ healthCheck: hc('/ready') }))
    await waitFor(() => b.list()[0]!.health === 'up')
    // Once the old checker is gone, /health is never asked again.
    await waitFor(() => o.hits('/ready') >= 3)
    const oldChecks = o.hits('/health')
    await waitFor(() => o.hits('/ready') >= 6)
    expect(o.hits('/health')).toBe(oldChecks)
    expect(b.retryAfterSeconds()).toBe(1)
  })

  it('turning checks off brings a down server back; turning them on checks again', async () => {
    const o = await startOrigin((_req, res: ServerResponse) => {
      res.statusCode = 500
      res.end()
    })
    cleanup.push(() => o.close())
    const b = new Balancer({ upstreams: [{ id: 'a', url: o.url, weight: 1, backup: false }, { id: 'b', url: 'http://127.0.0.1:1', weight: 1, backup: false }], config: balancerConfig({ healthCheck: hc('/health') }) })
    cleanup.push(() => b.close())
    b.start()
    await waitFor(() => b.list().every((u) => u.health === 'down'))

    b.reconfigure(balancerConfig())
    expect(b.list().map((u) => u.health)).toEqual(['unchecked', 'unchecked'])
    expect(new Set(picks(b, 4))).toEqual(new Set(['a', 'b']))
    const checks = o.hits('/health')

    b.reconfigure(balancerConfig({ healthCheck: hc('/health') }))
    // Optimistic start, as at startup; then the checks take the servers out again.
    expect(b.list().map((u) => u.health)).toEqual(['up', 'up'])
    await waitFor(() => b.list().every((u) => u.health === 'down'))
    expect(o.hits('/health')).toBeGreaterThan(checks)
  })
})
