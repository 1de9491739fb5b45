import { describe, expect, it } from 'vitest'
import { Balancer, HashRing } from '../../src/balancer/index.js'
import { balancerConfig, counts, req, upstreams } from './fixtures.js'

const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`)

function assign(b: Balancer, header = 'x-user'): Map<string, string> {
  const out = new Map<string, string>()
  for (const k of KEYS) out.set(k, b.pick(req({ headers: { [header]: k } }))!.upstream.id)
  return out
}

function moved(a: Map<string, string>, b: Map<string, string>): number {
  let n = 0
  for (const [k, v] of a) if (b.get(k) !== v) n++
  return n
}

const config = balancerConfig({ algorithm: 'consistent-hash', hashOn: 'header:X-User' })

describe('consistent-hash', () => {
  it('spreads keys over 3 servers roughly evenly', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config })
    const c = counts(assign(b).values())
    for (const id of ['a', 'b', 'c']) expect(c[id]! / KEYS.length).toBeGreaterThan(0.25)
  })

  it('adding a 4th server moves about 1/4 of the keys, all of them to the new server', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config })
    const before = assign(b)
    b.add({ id: 'd', url: 'http://127.0.0.1:10009', weight: 1, backup: false })
    const after = assign(b)
    const m = moved(before, after)
    expect(m / KEYS.length).toBeLessThanOrEqual(1.5 / 4)
    expect(m / KEYS.length).toBeGreaterThan(0.5 / 4)
    for (const [k, v] of after) if (before.get(k) !== v) expect(v).toBe('d')
  })

  it('removing one of 4 moves only that server’s keys', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1, d: 1 }), config })
    const before = assign(b)
    b.remove('b')
    const after = assign(b)
    const m = moved(before, after)
    expect(m / KEYS.length).toBeLessThanOrEqual(1.5 / 4)
    for (const [k, v] of before) if (v !== 'b') expect(after.get(k)).toBe(v)
  })

  it('a drained server’s keys spread over the others and come back when it is enabled', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config })
    const before = assign(b)
    b.drain('a')
    const during = assign(b)
    for (const [k, v] of before) {
      if (v === 'a') expect(during.get(k)).not.toBe('a')
      else expect(during.get(k)).toBe(v)
    }
    b.enable('a')
    expect(moved(before, assign(b))).toBe(0)
  })

  it('hashes on ip, path (ignoring the query), and cookie', () => {
    const ip = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: balancerConfig({ algorithm: 'consistent-hash', hashOn: 'ip' }) })
    const ids = new Set<string>()
    for (let i = 0; i < 50; i++) ids.add(ip.pick(req({ ip: '192.0.2.7' }))!.upstream.id)
    expect(ids.size).toBe(1)
    const spread = new Set(Array.from({ length: 100 }, (_, i) => ip.pick(req({ ip: `192.0.2.${i}` }))!.upstream.id))
    expect(spread.size).toBe(3)

    const path = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: balancerConfig({ algorithm: 'consistent-hash', hashOn: 'path' }) })
    const p1 = path.pick(req({ path: '/article/42' }))!.upstream.id
    expect(path.pick(req({ path: '/article/42?utm=x' }))!.upstream.id).toBe(p1)

    const cookie = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: balancerConfig({ algorithm: 'consistent-hash', hashOn: 'cookie:uid' }) })
    const viaHeader = cookie.pick(req({ headers: { cookie: 'x=1; uid=abc' } }))!.upstream.id
    const viaMap = cookie.pick(req({ cookies: new Map([['uid', 'abc']]) }))!.upstream.id
    expect(viaMap).toBe(viaHeader)
    expect(cookie.needsCookies).toBe(true)
  })

  it('without a key, falls back to rotation instead of piling onto one server', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config })
    expect(counts(Array.from({ length: 30 }, () => b.pick(req())!.upstream.id))).toEqual({ a: 10, b: 10, c: 10 })
  })

  it('the ring honours weights', () => {
    const ring = new HashRing([
      { id: 'a', weight: 3 },
      { id: 'b', weight: 1 },
    ])
    const c: Record<string, number> = {}
    for (let i = 0; i < 20_000; i++) {
      const m = ring.lookup((i * 2654435761) >>> 0, () => true)!
      c[m.id] = (c[m.id] ?? 0) + 1
    }
    expect(c['a']! / 20_000).toBeGreaterThan(0.68)
    expect(c['a']! / 20_000).toBeLessThan(0.82)
  })
})
