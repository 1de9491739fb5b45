import { describe, expect, it } from 'vitest'
import { Balancer, type Upstream } from '../../src/balancer/index.js'
import { ManualClock } from '../../src/core/clock.js'
import { isStrataError } from '../../src/core/errors.js'
import { balancerConfig, counts, req, upstreams } from './fixtures.js'

const passive = { failures: 3, cooldownMs: 1000, maxCooldownMs: 5000, statuses: [500, 503] }

function fail(b: Balancer, u: Upstream, n: number, outcome: Parameters<ReturnType<Balancer['begin']>>[0] = { ok: false, connectError: true, durationMs: 1 }) {
  for (let i = 0; i < n; i++) b.begin(u)(outcome)
}
const row = (b: Balancer, id: string) => b.list().find((s) => s.id === id)!

describe('passive ejection', () => {
  it('ejects after consecutive failures, with a cooldown that doubles on repeat up to the max', () => {
    const clock = new ManualClock()
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ passive }), clock })
    const a = b.get('a')!
    fail(b, a, 2)
    expect(row(b, 'a').state).toBe('up')
    expect(row(b, 'a').failures).toBe(2)
    fail(b, a, 1)
    expect(row(b, 'a')).toMatchObject({ state: 'ejected', ejections: 1, ejectedUntil: clock.now() + 1000 })
    expect(new Set(Array.from({ length: 6 }, () => b.pick(req())!.upstream.id))).toEqual(new Set(['b']))

    const cooldowns: number[] = []
    for (let i = 0; i < 4; i++) {
      const until = row(b, 'a').ejectedUntil!
      cooldowns.push(until - clock.now())
      clock.set(until)
      expect(row(b, 'a').state).toBe('up')
      fail(b, a, 3)
    }
    expect(cooldowns).toEqual([1000, 2000, 4000, 5000])
  })

  it('listed 5xx answers count, successes reset the count, and a calm period resets the streak', () => {
    const clock = new ManualClock()
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ passive }), clock })
    const a = b.get('a')!
    fail(b, a, 2, { ok: true, statusCode: 503, durationMs: 5 })
    b.begin(a)({ ok: true, statusCode: 200, durationMs: 5 })
    fail(b, a, 2, { ok: true, statusCode: 500, durationMs: 5 })
    expect(row(b, 'a').state).toBe('up')
    b.begin(a)({ ok: true, statusCode: 404, durationMs: 5 }) // a 4xx is the client's problem
    expect(row(b, 'a').failures).toBe(0)
    fail(b, a, 5, { ok: true, statusCode: 502, durationMs: 5 }) // answered, and not in passive.statuses
    expect(row(b, 'a')).toMatchObject({ state: 'up', failures: 0 })
    fail(b, a, 3, { ok: false, durationMs: 5 }) // a reset or timeout
    expect(row(b, 'a').state).toBe('ejected')
    clock.set(row(b, 'a').ejectedUntil!)
    fail(b, a, 3)
    expect(row(b, 'a').ejectedUntil! - clock.now()).toBe(2000)
    // Stay in longer than maxCooldownMs: the next ejection starts from cooldownMs again.
    clock.advance(2000 + 5001)
    fail(b, a, 3)
    expect(row(b, 'a').ejectedUntil! - clock.now()).toBe(1000)
  })

  it('a request cancelled because its client left neither counts as a failure nor resets the count', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ passive }), clock: new ManualClock() })
    const a = b.get('a')!
    fail(b, a, 2)
    fail(b, a, 5, { ok: false, aborted: true, durationMs: 1 })
    expect(row(b, 'a')).toMatchObject({ state: 'up', failures: 2, active: 0 })
    fail(b, a, 1)
    expect(row(b, 'a').state).toBe('ejected')
  })

  it('requests that were in flight when it was ejected do not eject it again', () => {
    const clock = new ManualClock()
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ passive }), clock })
    const a = b.get('a')!
    const inflight = Array.from({ length: 5 }, () => b.begin(a))
    fail(b, a, 3)
    for (const done of inflight) done({ ok: false, connectError: true, durationMs: 1 })
    expect(row(b, 'a')).toMatchObject({ ejections: 1, active: 0 })
    expect(row(b, 'a').ejectedUntil! - clock.now()).toBe(1000)
  })

  it('an answered 5xx is not a failure by default (passive.statuses = [])', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ passive: { ...passive, statuses: [] } }), clock: new ManualClock() })
    const a = b.get('a')!
    fail(b, a, 10, { ok: true, statusCode: 500, durationMs: 5 })
    fail(b, a, 10, { ok: true, statusCode: 503, durationMs: 5 })
    expect(row(b, 'a')).toMatchObject({ state: 'up', failures: 0, ejections: 0 })
    fail(b, a, 3, { ok: false, durationMs: 5 }) // a timeout always counts
    expect(row(b, 'a').state).toBe('ejected')
  })

  it('never ejects the last available server: a sole upstream keeps taking requests', () => {
    const clock = new ManualClock()
    const b = new Balancer({ upstreams: upstreams({ a: 1 }), config: balancerConfig({ passive }), clock })
    const a = b.get('a')!
    fail(b, a, 10)
    fail(b, a, 10, { ok: true, statusCode: 500, durationMs: 5 })
    expect(row(b, 'a')).toMatchObject({ state: 'up', ejections: 0, failures: 20 })
    expect(b.pick(req())!.upstream.id).toBe('a')
    b.begin(a)({ ok: true, statusCode: 200, durationMs: 5 })
    expect(row(b, 'a').failures).toBe(0)
  })

  it('of two failing servers only the first is ejected; the other stays in alone', () => {
    const clock = new ManualClock()
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ passive }), clock })
    fail(b, b.get('a')!, 3)
    clock.advance(300)
    fail(b, b.get('b')!, 30)
    expect(row(b, 'a').state).toBe('ejected')
    expect(row(b, 'b')).toMatchObject({ state: 'up', ejections: 0 })
    expect(new Set(Array.from({ length: 4 }, () => b.pick(req())!.upstream.id))).toEqual(new Set(['b']))
    // Once a is back, b (still failing) may go: a can take its traffic.
    clock.advance(700)
    fail(b, b.get('b')!, 1)
    expect(row(b, 'b').state).toBe('ejected')
    expect(new Set(Array.from({ length: 4 }, () => b.pick(req())!.upstream.id))).toEqual(new Set(['a']))
  })

  it('when every server is down or ejected, tries them anyway; drained ones stay out', () => {
    const clock = new ManualClock()
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: balancerConfig({ passive }), clock })
    b.drain('c')
    fail(b, b.get('a')!, 3) // ejected: b can take its traffic
    expect(row(b, 'a').state).toBe('ejected')
    b.remove('b') // an operator takes b out while a is ejected
    expect(new Set(Array.from({ length: 6 }, () => b.pick(req())!.upstream.id))).toEqual(new Set(['a']))
    expect(b.pick(req(), new Set(['a']))).toBeUndefined()
    b.drain('a')
    expect(b.pick(req())).toBeUndefined()
    expect(b.retryAfterSeconds()).toBeGreaterThanOrEqual(1)
  })

  it('consistent-hash keeps hashing over every server when none is available', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ passive, algorithm: 'consistent-hash', hashOn: 'path' }), clock: new ManualClock() })
    fail(b, b.get('a')!, 3)
    b.drain('b')
    const picks = ['/1', '/2', '/3', '/4'].map((path) => b.pick(req({ path }))?.upstream.id)
    expect(picks).toEqual(['a', 'a', 'a', 'a'])
  })

  it('done() twice counts once', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1 }), config: balancerConfig({ passive }) })
    const done = b.begin(b.get('a')!)
    done({ ok: false, connectError: true, durationMs: 1 })
    done({ ok: false, connectError: true, durationMs: 1 })
    expect(row(b, 'a')).toMatchObject({ failures: 1, active: 0 })
  })
})

describe('slow start', () => {
  it('ramps the effective weight of a recovered server over slowStartMs', () => {
    const clock = new ManualClock()
    const b = new Balancer({
      upstreams: upstreams({ a: 10, b: 10 }),
      config: balancerConfig({ algorithm: 'weighted', passive, slowStartMs: 10_000 }),
      clock,
    })
    // At startup nobody ramps: configured servers are trusted.
    expect(row(b, 'a')).toMatchObject({ state: 'up', effectiveWeight: 10 })
    fail(b, b.get('a')!, 3)
    clock.set(row(b, 'a').ejectedUntil!)
    expect(row(b, 'a')).toMatchObject({ state: 'slow-start', effectiveWeight: 0.5 }) // 5% floor
    clock.advance(2500)
    expect(row(b, 'a').effectiveWeight).toBe(2.5)
    const quarter = counts(Array.from({ length: 1250 }, () => b.pick(req())!.upstream.id))
    expect(quarter['a']).toBeGreaterThan(180) // 2.5 / 12.5 = 20% → 250
    expect(quarter['a']).toBeLessThan(320)
    clock.advance(5000)
    expect(row(b, 'a').effectiveWeight).toBe(7.5)
    clock.advance(2500)
    expect(row(b, 'a')).toMatchObject({ state: 'up', effectiveWeight: 10 })
    expect(counts(Array.from({ length: 1000 }, () => b.pick(req())!.upstream.id))).toEqual({ a: 500, b: 500 })
  })

  it('applies to round-robin as a probability', () => {
    const clock = new ManualClock()
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ passive, slowStartMs: 10_000 }), clock })
    b.add({ id: 'c', url: 'http://127.0.0.1:10010', weight: 1, backup: false })
    clock.advance(1000) // 10% of the ramp
    const c = counts(Array.from({ length: 3000 }, () => b.pick(req())!.upstream.id))
    expect(c['c']).toBeGreaterThan(40)
    expect(c['c']).toBeLessThan(250) // an equal share would be 1000
  })
})

describe('drain, enable, add, remove', () => {
  it('drain: no new sessions, active requests finish; enable brings it back', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig() })
    const done = b.begin(b.get('a')!)
    expect(b.drain('a').state).toBe('draining')
    expect(b.drain('a').state).toBe('draining') // idempotent
    expect(new Set(Array.from({ length: 6 }, () => b.pick(req())!.upstream.id))).toEqual(new Set(['b']))
    expect(row(b, 'a').active).toBe(1)
    done({ ok: true, statusCode: 200, durationMs: 3 })
    expect(row(b, 'a').active).toBe(0)
    expect(b.enable('a').state).toBe('up')
    expect(new Set(Array.from({ length: 6 }, () => b.pick(req())!.upstream.id))).toEqual(new Set(['a', 'b']))
  })

  it('enable also lifts a passive ejection', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ passive }) })
    fail(b, b.get('a')!, 3)
    expect(row(b, 'a').state).toBe('ejected')
    expect(b.enable('a')).toMatchObject({ state: 'up', failures: 0, ejectedUntil: null })
  })

  it('add and remove at runtime, with events for the proxy’s pools', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1 }), config: balancerConfig() })
    const events: string[] = []
    b.on('added', (u) => events.push(`+${u.id}@${u.origin}`))
    b.on('removed', (u) => events.push(`-${u.id}`))
    const snap = b.add({ id: 'b', url: 'http://127.0.0.1:10020/app/', weight: 2, backup: false })
    expect(snap).toMatchObject({ id: 'b', state: 'up', weight: 2, active: 0, backup: false })
    expect(b.get('b')).toMatchObject({ origin: 'http://127.0.0.1:10020', basePath: '/app' })
    expect(new Set(Array.from({ length: 4 }, () => b.pick(req())!.upstream.id))).toEqual(new Set(['a', 'b']))

    const inflight = b.pick(req(), new Set(['a']))!.upstream
    const done = b.begin(inflight)
    b.remove('b')
    done({ ok: false, connectError: true, durationMs: 1 }) // finishing on a removed upstream is harmless
    expect(new Set(Array.from({ length: 4 }, () => b.pick(req())!.upstream.id))).toEqual(new Set(['a']))
    expect(b.list().map((s) => s.id)).toEqual(['a'])
    expect(events).toEqual(['+b@http://127.0.0.1:10020', '-b'])
  })

  it('unknown ids, duplicates and bad bodies are StrataErrors with admin codes', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1 }), config: balancerConfig() })
    const code = (fn: () => unknown) => {
      try {
        fn()
      } catch (err) {
        return isStrataError(err) ? err.code : String(err)
      }
      return 'no error'
    }
    expect(code(() => b.remove('x'))).toBe('STRATA_ADMIN_NOT_FOUND')
    expect(code(() => b.drain('x'))).toBe('STRATA_ADMIN_NOT_FOUND')
    expect(code(() => b.enable('x'))).toBe('STRATA_ADMIN_NOT_FOUND')
    expect(code(() => b.add({ id: 'a', url: 'http://127.0.0.1:1', weight: 1, backup: false }))).toBe('STRATA_ADMIN_CONFLICT')
    expect(code(() => b.add({ id: 'z', url: 'not a url', weight: 1, backup: false }))).toBe('STRATA_ADMIN_BAD_BODY')
    expect(code(() => b.add({ id: 'z', url: 'ftp://x', weight: 1, backup: false }))).toBe('STRATA_ADMIN_BAD_BODY')
    expect(code(() => b.add({ id: 'bad id', url: 'http://x', weight: 1, backup: false }))).toBe('STRATA_ADMIN_BAD_BODY')
    expect(code(() => b.add({ id: 'z', url: 'http://x', weight: 0, backup: false }))).toBe('STRATA_ADMIN_BAD_BODY')
    expect(code(() => new Balancer({ upstreams: upstreams({ a: 1 }).concat(upstreams({ a: 1 })), config: balancerConfig() }))).toBe('STRATA_CONFIG_INVALID')
  })

  it('removing the last upstream leaves nothing to pick', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1 }), config: balancerConfig() })
    b.remove('a')
    expect(b.pick(req())).toBeUndefined()
    expect(b.retryAfterSeconds()).toBe(1)
  })
})
