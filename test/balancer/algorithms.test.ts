import { describe, expect, it } from 'vitest'
import { Balancer, smoothWeightedSequence } from '../../src/balancer/index.js'
import { ManualClock } from '../../src/core/clock.js'
import { balancerConfig, counts, req, seeded, upstreams } from './fixtures.js'

function picks(b: Balancer, n: number): string[] {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(b.pick(req())!.upstream.id)
  return out
}

describe('smooth weighted round-robin', () => {
  it('gives the nginx sequence for weights 5,1,1', () => {
    expect(smoothWeightedSequence([5, 1, 1])).toEqual([0, 0, 1, 0, 2, 0, 0])
  })

  it('reduces weights by their gcd', () => {
    expect(smoothWeightedSequence([10, 10])).toEqual([0, 1])
  })

  it('the balancer walks the same sequence, cycle after cycle', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 5, b: 1, c: 1 }), config: balancerConfig({ algorithm: 'weighted' }) })
    expect(picks(b, 14).join(' ')).toBe('a a b a c a a a a b a c a a')
  })

  it('keeps the sequence with live weights (slow start finished) and on the O(n) path', () => {
    const clock = new ManualClock()
    const b = new Balancer({ upstreams: upstreams({ a: 5, b: 1, c: 1 }), config: balancerConfig({ algorithm: 'weighted' }), clock })
    // Excluding an id nobody has forces the per-pick form; it must agree with the schedule.
    const out: string[] = []
    for (let i = 0; i < 7; i++) out.push(b.pick(req(), new Set(['zzz']))!.upstream.id)
    expect(out.join(' ')).toBe('a a b a c a a')
  })
})

describe('distribution over 3 upstreams', () => {
  const N = 6000

  it('round-robin: exactly even, in order', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 5, b: 1, c: 1 }), config: balancerConfig({ algorithm: 'round-robin' }) })
    const seq = picks(b, N)
    expect(seq.slice(0, 6).join(' ')).toBe('a b c a b c')
    expect(counts(seq)).toEqual({ a: 2000, b: 2000, c: 2000 })
  })

  it('weighted: exactly proportional to weight', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 3, b: 2, c: 1 }), config: balancerConfig({ algorithm: 'weighted' }) })
    expect(counts(picks(b, N))).toEqual({ a: 3000, b: 2000, c: 1000 })
  })

  it('random: proportional to weight within 5%', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 3, b: 2, c: 1 }), config: balancerConfig({ algorithm: 'random' }), random: seeded(7) })
    const c = counts(picks(b, N))
    expect(c['a']! / N).toBeCloseTo(3 / 6, 1)
    expect(Math.abs(c['a']! - 3000)).toBeLessThan(150)
    expect(Math.abs(c['b']! - 2000)).toBeLessThan(150)
    expect(Math.abs(c['c']! - 1000)).toBeLessThan(150)
  })

  it('p2c with no load: even within 5% (ties are broken at random)', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: balancerConfig({ algorithm: 'p2c' }), random: seeded(3) })
    const c = counts(picks(b, N))
    for (const id of ['a', 'b', 'c']) expect(Math.abs(c[id]! - 2000)).toBeLessThan(300)
  })

  it('p2c prefers the less loaded of its two choices', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: balancerConfig({ algorithm: 'p2c' }), random: seeded(5) })
    const a = b.get('a')!
    const dones = Array.from({ length: 10 }, () => b.begin(a))
    const c = counts(picks(b, 3000))
    // "a" only wins when both choices are "a", which p2c never draws (distinct choices).
    expect(c['a'] ?? 0).toBe(0)
    for (const d of dones) d({ ok: true, durationMs: 1 })
  })

  it('least-connections with no load: ties rotate evenly', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: balancerConfig({ algorithm: 'least-connections' }) })
    expect(counts(picks(b, N))).toEqual({ a: 2000, b: 2000, c: 2000 })
  })

  it('least-connections is weighted: (active+1)/weight', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 2, b: 1, c: 1 }), config: balancerConfig({ algorithm: 'least-connections' }) })
    // Hold every request open: a with weight 2 should carry twice the connections of b and c.
    for (let i = 0; i < 400; i++) b.begin(b.pick(req())!.upstream)
    const active = Object.fromEntries(b.list().map((s) => [s.id, s.active]))
    expect(active).toEqual({ a: 200, b: 100, c: 100 })
  })
})

describe('backup upstreams', () => {
  it('take traffic only when no primary is available', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, z: { backup: true } }), config: balancerConfig({ algorithm: 'round-robin' }) })
    expect(new Set(picks(b, 20))).toEqual(new Set(['a', 'b']))
    b.drain('a')
    expect(new Set(picks(b, 20))).toEqual(new Set(['b']))
    b.drain('b')
    expect(new Set(picks(b, 20))).toEqual(new Set(['z']))
    b.enable('a')
    expect(new Set(picks(b, 20))).toEqual(new Set(['a']))
  })

  it('serve a retry when every primary was already tried', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, z: { backup: true } }), config: balancerConfig() })
    expect(b.pick(req(), new Set(['a']))!.upstream.id).toBe('b')
    expect(b.pick(req(), new Set(['a', 'b']))!.upstream.id).toBe('z')
    expect(b.pick(req(), new Set(['a', 'b', 'z']))).toBeUndefined()
  })
})
