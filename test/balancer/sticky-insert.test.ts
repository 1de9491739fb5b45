import { describe, expect, it } from 'vitest'
import { Balancer, decodeStickyToken, encodeStickyToken, type PickResult } from '../../src/balancer/index.js'
import { ManualClock } from '../../src/core/clock.js'
import { parseCookies } from '../../src/core/headers.js'
import { balancerConfig, req, upstreams } from './fixtures.js'

const SECRET = 'a-long-enough-test-secret'

/** The browser side: keeps the cookie the balancer sets and sends it back. */
function browser(b: Balancer) {
  let jar = ''
  return {
    visit(exclude?: ReadonlySet<string>): PickResult {
      const r = b.pick(req({ headers: jar ? { cookie: jar } : {} }), exclude)!
      if (r.setCookie) jar = r.setCookie.slice(0, r.setCookie.indexOf(';'))
      return r
    },
    get cookie() {
      return jar
    },
    set cookie(v: string) {
      jar = v
    },
  }
}

function insertBalancer(clock = new ManualClock(), sticky: Record<string, unknown> = {}, extra: Partial<Parameters<typeof balancerConfig>[0]> = {}) {
  return new Balancer({
    upstreams: upstreams({ a: 1, b: 1, c: 1 }),
    config: balancerConfig({ sticky: { mode: 'insert', cookie: 'strata_srv', secret: SECRET, ...sticky }, ...extra }),
    clock,
  })
}

describe('sticky token', () => {
  it('round-trips and carries no address', () => {
    const t = encodeStickyToken(SECRET, { id: 'web-1', issuedAt: 1000, lastSeen: 2000 })
    expect(decodeStickyToken(SECRET, t)).toEqual({ id: 'web-1', issuedAt: 1000, lastSeen: 2000 })
    expect(t).toMatch(/^[A-Za-z0-9_.-]+$/)
    expect(t).not.toContain('127.0.0.1')
  })

  it('rejects tampering, another secret, and junk', () => {
    const t = encodeStickyToken(SECRET, { id: 'a', issuedAt: 1000, lastSeen: 1000 })
    const forged = t.replace(Buffer.from('a').toString('base64url'), Buffer.from('b').toString('base64url'))
    expect(forged).not.toBe(t)
    expect(decodeStickyToken(SECRET, forged)).toBeUndefined()
    expect(decodeStickyToken('another-secret-of-16+', t)).toBeUndefined()
    const flipped = t.slice(0, -1) + (t.endsWith('A') ? 'B' : 'A')
    expect(decodeStickyToken(SECRET, flipped)).toBeUndefined()
    for (const junk of ['', 'a', '1.', 'x'.repeat(100), 'x'.repeat(10_000), t + 'x']) expect(decodeStickyToken(SECRET, junk)).toBeUndefined()
  })
})

describe('sticky insert mode', () => {
  it('first visit gets a cookie; repeats go to the same server without a new cookie', () => {
    const b = insertBalancer()
    const user = browser(b)
    const first = user.visit()
    expect(first.setCookie).toMatch(/^strata_srv=[A-Za-z0-9_.-]+; Path=\/; HttpOnly; SameSite=Lax$/)
    for (let i = 0; i < 10; i++) {
      const r = user.visit()
      expect(r.upstream.id).toBe(first.upstream.id)
      expect(r.setCookie).toBeUndefined()
    }
    // Other users are still balanced.
    const others = new Set(Array.from({ length: 6 }, () => browser(b).visit().upstream.id))
    expect(others.size).toBe(3)
  })

  it('fails over with a new cookie when the server cannot take it, then sticks to the new one', () => {
    const b = insertBalancer()
    const user = browser(b)
    const home = user.visit().upstream.id
    b.drain(home)
    // drainMs (30 s) has not passed: the session stays.
    expect(user.visit().upstream.id).toBe(home)
    // A retry that excludes it (the proxy saw a connect error) moves it, with a cookie.
    const moved = user.visit(new Set([home]))
    expect(moved.upstream.id).not.toBe(home)
    expect(moved.setCookie).toBeDefined()
    expect(user.visit().upstream.id).toBe(moved.upstream.id)
  })

  it('fails over with a new cookie when its server is ejected (marked down by failures)', () => {
    const clock = new ManualClock()
    const b = insertBalancer(clock)
    const user = browser(b)
    const first = user.visit()
    const home = first.upstream.id
    for (let i = 0; i < 3; i++) b.begin(first.upstream)({ ok: false, connectError: true, durationMs: 1 })
    expect(b.list().find((s) => s.id === home)!.state).toBe('ejected')
    const r = user.visit()
    expect(r.upstream.id).not.toBe(home)
    expect(r.setCookie).toBeDefined()
    // When the old server is back, the user stays where the new cookie says.
    clock.advance(60_000)
    expect(user.visit().upstream.id).toBe(r.upstream.id)
  })

  it('moves sticky users off a draining server once drainMs has passed', () => {
    const clock = new ManualClock()
    const b = insertBalancer(clock, {}, { drainMs: 1000 })
    const user = browser(b)
    const home = user.visit().upstream.id
    b.drain(home)
    clock.advance(999)
    expect(user.visit().upstream.id).toBe(home)
    clock.advance(1)
    const r = user.visit()
    expect(r.upstream.id).not.toBe(home)
    expect(r.setCookie).toBeDefined()
  })

  it('fails over when its server was removed', () => {
    const b = insertBalancer()
    const user = browser(b)
    const home = user.visit().upstream.id
    b.remove(home)
    const r = user.visit()
    expect(r.upstream.id).not.toBe(home)
    expect(r.setCookie).toBeDefined()
  })

  it('ignores and replaces a tampered cookie', () => {
    const b = insertBalancer()
    const user = browser(b)
    user.visit()
    const forgedToken = encodeStickyToken('not-the-configured-secret', { id: 'c', issuedAt: Date.now(), lastSeen: Date.now() })
    user.cookie = `strata_srv=${forgedToken}`
    const r = user.visit()
    expect(r.setCookie).toBeDefined()
    expect(parseCookies(r.setCookie!.split(';')[0]).get('strata_srv')).not.toBe(forgedToken)
  })

  it('a cookie naming an unknown server is replaced', () => {
    const clock = new ManualClock()
    const b = insertBalancer(clock)
    const user = browser(b)
    user.cookie = `strata_srv=${encodeStickyToken(SECRET, { id: 'nope', issuedAt: clock.now(), lastSeen: clock.now() })}`
    expect(user.visit().setCookie).toBeDefined()
  })

  it('expires by maxLifeMs even when in use', () => {
    const clock = new ManualClock()
    const b = insertBalancer(clock, { maxLifeMs: 10_000 })
    const user = browser(b)
    user.visit()
    clock.advance(10_000)
    expect(user.visit().setCookie).toBeUndefined()
    clock.advance(1)
    expect(user.visit().setCookie).toBeDefined()
  })

  it('expires by maxIdleMs, and use refreshes the idle clock', () => {
    const clock = new ManualClock()
    const b = insertBalancer(clock, { maxIdleMs: 8000 })
    const user = browser(b)
    const home = user.visit().upstream.id
    const issued = decodeStickyToken(SECRET, user.cookie.split('=')[1]!)!
    // Within a quarter of maxIdleMs no re-signing; after it, lastSeen moves on and issuedAt stays.
    clock.advance(1999)
    expect(user.visit().setCookie).toBeUndefined()
    clock.advance(1)
    const refreshed = user.visit()
    expect(refreshed.upstream.id).toBe(home)
    const token = decodeStickyToken(SECRET, user.cookie.split('=')[1]!)!
    expect(token.issuedAt).toBe(issued.issuedAt)
    expect(token.lastSeen).toBe(clock.now())
    // Kept alive by use past the original idle deadline…
    clock.advance(7000)
    expect(user.visit().upstream.id).toBe(home)
    // …then idle too long: a fresh balancing decision and a new cookie.
    clock.advance(8001)
    const after = user.visit()
    expect(after.setCookie).toBeDefined()
    expect(decodeStickyToken(SECRET, user.cookie.split('=')[1]!)!.issuedAt).toBe(clock.now())
  })

  it('two balancers with the same secret accept each other’s cookies', () => {
    const clock = new ManualClock()
    const one = insertBalancer(clock)
    const two = insertBalancer(clock)
    const user = browser(one)
    one.pick(req()) // make the two balancers' rotation differ
    const home = user.visit().upstream.id
    const r = two.pick(req({ headers: { cookie: user.cookie } }))!
    expect(r.upstream.id).toBe(home)
    expect(r.setCookie).toBeUndefined()
  })

  it('without a secret, generates one (so cookies still verify within the process)', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: balancerConfig({ sticky: { mode: 'insert', cookie: 'srv' } }) })
    const user = browser(b)
    const home = user.visit().upstream.id
    expect(user.visit().upstream.id).toBe(home)
    expect(user.visit().setCookie).toBeUndefined()
  })

  it('strips only the sticky cookie before the request goes upstream', () => {
    const b = insertBalancer()
    expect(b.stripStickyCookie(undefined)).toBeUndefined()
    expect(b.stripStickyCookie('strata_srv=abc')).toBeUndefined()
    expect(b.stripStickyCookie('a=1; strata_srv=abc; b=2')).toBe('a=1; b=2')
    expect(b.stripStickyCookie('strata_srv=abc;sid=9')).toBe('sid=9')
    expect(b.stripStickyCookie('strata_srv_other=1; x=2')).toBe('strata_srv_other=1; x=2')
    const plain = 'sid=9; theme=dark'
    expect(b.stripStickyCookie(plain)).toBe(plain)
    const none = new Balancer({ upstreams: upstreams({ a: 1 }), config: balancerConfig() })
    expect(none.stripStickyCookie('strata_srv=abc')).toBe('strata_srv=abc')
  })
})
