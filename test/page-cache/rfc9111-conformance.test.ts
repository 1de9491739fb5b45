// The RFC 9111 rules that the public cache-tests suite (npm run conformance) found strata breaking,
// one pure-function test per rule, each citing its section. The suite's test ids are named so a
// failure there leads here.
import { describe, expect, it } from 'vitest'
import { createEntry } from '../../src/page-cache/entry.js'
import {
  ageHeaderSeconds,
  correctedInitialAgeMs,
  effectivePolicy,
  freshnessLifetime,
  sharedRevalidate,
  parseCdnCacheControl,
  parseHttpDate,
  storageDecision,
} from '../../src/page-cache/policy.js'

type H = Record<string, string | string[]>
const ttl = (h: H, defaults = { defaultTtl: 0 }) => freshnessLifetime(200, h, effectivePolicy(h), defaults)
const decide = (res: H) => storageDecision({ method: 'GET', reqHeaders: {}, status: 200, resHeaders: res, path: '/p', rules: [], defaultTtl: 0 })
const entry = (res: H, staleIfError = 0) => {
  const d = decide(res)
  return createEntry({ key: 'k', variant: '', vary: [], status: 200, headers: res, body: Buffer.from('x'), requestTime: 1000, responseTime: 1000, ttl: d.ttl, policy: d.policy, grace: 30, staleIfError, keepMs: 0 })
}
const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString())

describe('HTTP-date (RFC 9110 §5.6.7)', () => {
  const now = Date.parse('2026-12-06T00:00:00Z')

  it('reads IMF-fixdate, rfc850-date and asctime-date: the same instant', () => {
    const want = '1994-11-06T08:49:37.000Z'
    expect(iso(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT', now))).toBe(want)
    expect(iso(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', now))).toBe(want)
    expect(iso(parseHttpDate('Sun Nov  6 08:49:37 1994', now))).toBe(want)
    expect(iso(parseHttpDate('Thu Aug 18 02:01:18 2050', now))).toBe('2050-08-18T02:01:18.000Z')
  })

  it('rfc850 two-digit years: more than 50 years ahead means the most recent past year with those digits', () => {
    expect(iso(parseHttpDate('Thursday, 18-Aug-50 02:01:18 GMT', now))).toBe('2050-08-18T02:01:18.000Z') // 24 years ahead
    expect(iso(parseHttpDate('Friday, 18-Aug-77 02:01:18 GMT', now))).toBe('1977-08-18T02:01:18.000Z') // 2077 would be 51 ahead
    expect(iso(parseHttpDate('Monday, 01-Jan-26 00:00:00 GMT', now))).toBe('2026-01-01T00:00:00.000Z')
  })

  it('accepts day and month names and GMT in any case (cache-tests freshness-expires-wrong-case-*)', () => {
    expect(parseHttpDate('THU, 18 AUG 2050 02:01:18 gMT')).toBe(Date.parse('2050-08-18T02:01:18Z'))
  })

  it('a leap second and four-digit years below 100 are dates; 31 Feb, hour 24 and minute 60 are not', () => {
    expect(iso(parseHttpDate('Wed, 31 Dec 2025 23:59:60 GMT'))).toBe('2026-01-01T00:00:00.000Z')
    expect(iso(parseHttpDate('Mon, 01 Jan 0050 00:00:00 GMT'))).toBe('0050-01-01T00:00:00.000Z')
    for (const v of ['Thu, 31 Feb 2050 02:01:18 GMT', 'Thu, 18 Aug 2050 24:01:18 GMT', 'Thu, 18 Aug 2050 02:60:18 GMT', 'Thu, 00 Aug 2050 02:01:18 GMT']) {
      expect(parseHttpDate(v), v).toBeUndefined()
    }
  })

  // cache-tests freshness-expires-invalid-*: Date.parse accepted every one of these.
  const invalid = [
    'Thu, 18 Aug 2050 02:01:18 UTC', // invalid-utc
    'Thu, 18 Aug 2050 02:01:18 AEST', // invalid-aest
    'Thu, 18 Aug 50 02:01:18 GMT', // invalid-2-digit-year (in an IMF-fixdate)
    'Thu 18 Aug 2050 02:01:18 GMT', // invalid-no-comma
    'Thu, 18  Aug  2050 02:01:18 GMT', // invalid-multiple-spaces
    'Thu, 18-Aug-2050 02:01:18 GMT', // invalid-date-dashes
    'Thu, 18 Aug 2050 02.01.18 GMT', // invalid-time-periods
    'Thu, 18 Aug 2050 2:01:18 GMT', // invalid-1-digit-hour
    '2050-08-18T02:01:18Z',
    '0',
    '-1',
    ' Thu, 18 Aug 2050 02:01:18 GMT',
  ]
  it('anything else is invalid', () => {
    for (const v of invalid) expect(parseHttpDate(v), v).toBeUndefined()
  })

  it('an invalid Expires means already expired (RFC 9111 §5.3), also as two field lines', () => {
    const date = 'Thu, 18 Aug 2050 02:00:00 GMT'
    expect(ttl({ date, expires: 'Thu, 18 Aug 2050 02:01:18 GMT' })).toBe(78)
    for (const expires of invalid) expect(ttl({ date, expires }, { defaultTtl: 600 }), expires).toBe(0)
    expect(ttl({ date, expires: ['Thu, 18 Aug 2050 2:01:18 GMT', 'Thu, 18 Aug 2050 2:01:19 GMT'] }, { defaultTtl: 600 })).toBe(0)
    expect(decide({ date, expires: 'Thu, 18 Aug 2050 02:01:18 UTC' })).toMatchObject({ storable: false, reason: 'no-ttl' })
  })
})

describe('Age (RFC 9111 §5.1)', () => {
  it('a list-based value uses its first member (cache-tests age-parse-suffix)', () => {
    expect(ageHeaderSeconds({ age: '7200, 0' })).toBe(7200)
    expect(ageHeaderSeconds({ age: ['7200', '0'] })).toBe(7200)
    expect(correctedInitialAgeMs({ age: '7200, 0' }, 1000, 1000)).toBe(7_200_000)
    // So a response already older than its max-age is stale on arrival.
    const e = entry({ 'cache-control': 'max-age=3600', age: '7200, 0' })
    expect(e.staleAt).toBeLessThan(e.storedAt)
  })

  it('an invalid value is ignored', () => {
    for (const age of ['abc', '-1', '1.5', '', ', 7200']) expect(ageHeaderSeconds({ age }), age).toBeUndefined()
    expect(correctedInitialAgeMs({ age: 'abc' }, 1000, 1000)).toBe(0)
  })
})

describe('no-cache response directive (RFC 9111 §5.2.2.4)', () => {
  it('a fresh response with no-cache is stored already stale, so every reuse revalidates (cache-tests cc-resp-no-cache)', () => {
    const res = { 'cache-control': 'max-age=3600, no-cache', etag: '"v1"' }
    expect(decide(res)).toMatchObject({ storable: true, ttl: 0 })
    const e = entry(res, 300)
    expect(e.staleAt).toBe(e.storedAt)
    expect(e).toMatchObject({ mustRevalidate: true, graceMs: 0, staleIfErrorMs: 0 })
  })

  it('without a validator there is nothing to revalidate with: not stored', () => {
    expect(decide({ 'cache-control': 'max-age=3600, no-cache' })).toMatchObject({ storable: false, reason: 'no-ttl' })
  })

  it('Surrogate-Control max-age, the edge’s own instruction, still outranks it', () => {
    expect(decide({ 'cache-control': 'no-cache', 'surrogate-control': 'max-age=60', etag: '"v1"' })).toMatchObject({ storable: true, ttl: 60 })
  })
})

describe('CDN-Cache-Control is a Dictionary structured field (RFC 9213 §2.1, RFC 8941 §3.2)', () => {
  it('a valid one governs and Cache-Control is ignored', () => {
    expect(decide({ 'cdn-cache-control': 'max-age=600', 'cache-control': 'no-store' })).toMatchObject({ storable: true, ttl: 600 })
    expect(parseCdnCacheControl('foobar, max-age=3600, private')).toMatchObject({ maxAge: 3600, private: true })
    expect(parseCdnCacheControl('max-age=99999999999')?.maxAge).toBe(2_147_483_648)
  })

  it('one that does not parse is ignored as a whole (cache-tests cdn-cc-invalid-sh-type-unknown)', () => {
    for (const v of ['max-age=10000, &&&&&', 'MaX-aGe=3600', 'max-age =100', 'max-age="10000', 'max-age=10;']) {
      expect(parseCdnCacheControl(v), v).toBeUndefined()
    }
    const h = { 'cdn-cache-control': 'max-age=10000, &&&&&', 'cache-control': 'no-store' }
    expect(effectivePolicy(h).source).toBe('cache-control')
    expect(decide(h)).toMatchObject({ storable: false, reason: 'no-store' })
  })

  it('a directive whose value has the wrong type is ignored on its own (cache-tests cdn-cc-invalid-sh-type-wrong)', () => {
    for (const v of ['max-age="10000"', 'max-age=1.5', 'max-age=-1', 'max-age=?1', 'max-age=(1 2)', 'max-age=:AAA=:']) {
      expect(parseCdnCacheControl(v)?.maxAge, v).toBeUndefined()
    }
    const h = { 'cdn-cache-control': 'max-age="10000"', 'cache-control': 'max-age=600' }
    expect(effectivePolicy(h).source).toBe('cdn-cache-control') // still present and valid: Cache-Control stays ignored
    expect(decide(h)).toMatchObject({ storable: false, reason: 'no-ttl' })
  })

  it('flags are on unless ?0, parameters are ignored', () => {
    expect(parseCdnCacheControl('no-store=?0, private;foo=1, max-age=5;x=y')).toMatchObject({ noStore: false, private: true, maxAge: 5 })
  })
})

describe('s-maxage forbids serving stale (RFC 9111 §5.2.2.10, §4.2.4)', () => {
  it('incorporates proxy-revalidate: the configured stale-if-error and grace never apply (cache-tests stale-close-s-maxage=2)', () => {
    const h = { 'cache-control': 's-maxage=2' }
    expect(sharedRevalidate(effectivePolicy(h))).toBe(true)
    expect(entry(h, 300)).toMatchObject({ graceMs: 0, staleIfErrorMs: 0 })
  })

  it('the response’s own RFC 5861 directives are an explicit permission and still apply', () => {
    expect(entry({ 'cache-control': 's-maxage=1, stale-while-revalidate=59, stale-if-error=60' }, 300)).toMatchObject({ graceMs: 59_000, staleIfErrorMs: 60_000 })
    expect(entry({ 'cache-control': 's-maxage=1', 'surrogate-control': 'max-age=1+20' }, 300)).toMatchObject({ graceMs: 20_000, staleIfErrorMs: 300_000 })
  })

  it('max-age alone still allows stale-if-error', () => {
    expect(entry({ 'cache-control': 'max-age=2' }, 300)).toMatchObject({ mustRevalidate: false, staleIfErrorMs: 300_000 })
  })
})
