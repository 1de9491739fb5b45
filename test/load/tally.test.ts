import { describe, expect, it } from 'vitest'
import { LoadTally, cacheOutcome, esiDurationMs, readFacts } from '../../src/load/tally.js'
import { parsePaths } from '../../src/load/run.js'

describe('cacheOutcome', () => {
  it('takes X-Cache first, by its first word', () => {
    expect(cacheOutcome('HIT', 'strata; fwd=miss')).toBe('HIT')
    expect(cacheOutcome('MISS', undefined)).toBe('MISS')
    expect(cacheOutcome('PASS', undefined)).toBe('PASS')
    expect(cacheOutcome('STALE', undefined)).toBe('STALE')
    expect(cacheOutcome('REVALIDATED', undefined)).toBe('REVALIDATED')
    expect(cacheOutcome('HIT from squid.example', undefined)).toBe('HIT')
    expect(cacheOutcome('hit', undefined)).toBe('HIT')
  })

  it('falls back on the last Cache-Status member (RFC 9211: the cache nearest the client)', () => {
    expect(cacheOutcome(undefined, 'strata; hit; ttl=42')).toBe('HIT')
    expect(cacheOutcome(undefined, 'strata; hit; ttl=-3')).toBe('STALE')
    expect(cacheOutcome(undefined, 'strata; fwd=miss; fwd-status=200; stored')).toBe('MISS')
    expect(cacheOutcome(undefined, 'strata; fwd=uri-miss')).toBe('MISS')
    expect(cacheOutcome(undefined, 'strata; fwd=stale; fwd-status=304')).toBe('REVALIDATED')
    expect(cacheOutcome(undefined, 'strata; fwd=bypass')).toBe('PASS')
    expect(cacheOutcome(undefined, 'strata; fwd=request')).toBe('PASS')
    expect(cacheOutcome(undefined, 'origin-cache; hit, strata; fwd=miss')).toBe('MISS')
    // An unknown X-Cache word does not hide a Cache-Status.
    expect(cacheOutcome('TCP_WEIRD', 'strata; hit')).toBe('HIT')
  })

  it('counts absent, empty and malformed fields as NONE without throwing', () => {
    expect(cacheOutcome(undefined, undefined)).toBe('NONE')
    expect(cacheOutcome('', '')).toBe('NONE')
    expect(cacheOutcome(undefined, 'strata; ;;; "unterminated')).toBe('NONE')
    expect(cacheOutcome(undefined, 'strata')).toBe('NONE')
    expect(cacheOutcome('???', undefined)).toBe('NONE')
  })
})

describe('esiDurationMs', () => {
  it('reads the esi metric dur among others', () => {
    expect(esiDurationMs('esi;dur=1.25')).toBe(1.25)
    expect(esiDurationMs('cache;dur=0.1, esi;desc="assembly";dur=12, upstream;dur=30')).toBe(12)
    expect(esiDurationMs('ESI; dur = 3')).toBe(3)
  })
  it('is undefined without an esi metric or with junk', () => {
    expect(esiDurationMs(undefined)).toBeUndefined()
    expect(esiDurationMs('upstream;dur=3')).toBeUndefined()
    expect(esiDurationMs('esi;dur=abc')).toBeUndefined()
    expect(esiDurationMs('esi')).toBeUndefined()
    expect(esiDurationMs(';;,,')).toBeUndefined()
  })
})

describe('readFacts', () => {
  it('reads names case-insensitively from a raw header list', () => {
    const raw = ['Content-Type', 'text/html', 'X-Cache', 'MISS', 'X-Served-By', 'web2', 'Server-Timing', 'esi;dur=4']
    expect(readFacts(raw, 'x-served-by')).toEqual({ cache: 'MISS', upstream: 'web2', esiMs: 4 })
    expect(readFacts(raw, undefined)).toEqual({ cache: 'MISS', upstream: undefined, esiMs: 4 })
  })
  it('joins repeated Cache-Status and Server-Timing lines as one list (RFC 9110 §5.3)', () => {
    expect(readFacts(['cache-status', 'a; fwd=miss', 'cache-status', 'strata; hit'], undefined).cache).toBe('HIT')
    expect(readFacts(['server-timing', 'cache;dur=1', 'server-timing', 'esi;dur=2'], undefined).esiMs).toBe(2)
  })
})

describe('LoadTally', () => {
  it('counts outcomes, upstreams, and a hit ratio over responses that had a cache field', () => {
    const t = new LoadTally()
    for (const cache of ['HIT', 'HIT', 'STALE', 'MISS', 'PASS', 'NONE'] as const) t.add({ cache, upstream: 'b1', esiMs: undefined })
    expect(t.total).toBe(6)
    expect(t.cache).toEqual({ HIT: 2, STALE: 1, REVALIDATED: 0, MISS: 1, PASS: 1, NONE: 1 })
    expect(t.hitRatio()).toBe(3 / 5)
    // Hits carry the upstream header they were stored with: only the 3 that went upstream count.
    expect(Object.fromEntries(t.upstreams)).toEqual({ b1: 3 })
    expect(t.esi()).toBeUndefined()
  })
  it('has no hit ratio when no response had a cache field', () => {
    const t = new LoadTally()
    t.add({ cache: 'NONE', upstream: undefined, esiMs: undefined })
    expect(t.hitRatio()).toBeUndefined()
  })
  it('summarises ESI durations past its sample size with the exact count, mean and max', () => {
    let seed = 1
    const t = new LoadTally(() => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646)
    for (let i = 1; i <= 30_000; i++) t.add({ cache: 'HIT', upstream: undefined, esiMs: i % 100 })
    const e = t.esi()!
    expect(e.count).toBe(30_000)
    expect(e.meanMs).toBeCloseTo(49.5, 6)
    expect(e.maxMs).toBe(99)
    expect(e.p50Ms).toBeGreaterThanOrEqual(40)
    expect(e.p50Ms).toBeLessThanOrEqual(60)
    expect(e.p99Ms).toBeGreaterThanOrEqual(95)
  })
})

describe('parsePaths', () => {
  it('takes one path per line, skipping blanks and comments', () => {
    expect(parsePaths('# home\n/\n\n/news?page=2\r\n  /about  \n')).toEqual(['/', '/news?page=2', '/about'])
  })
  it('names the line of a bad path, and refuses an empty file', () => {
    expect(() => parsePaths('/\nhttp://x/\n', 'p.txt')).toThrow('p.txt:2: "http://x/" is not a path')
    expect(() => parsePaths('/a b\n', 'p.txt')).toThrow('p.txt:1')
    expect(() => parsePaths('# nothing\n', 'p.txt')).toThrow('p.txt: no paths')
  })
})
