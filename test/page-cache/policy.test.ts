import { describe, expect, it } from 'vitest'
import {
  acceptedEncodings,
  ageSeconds,
  correctedInitialAgeMs,
  effectivePolicy,
  freshenHeaders,
  freshnessLifetime,
  ifRangeMatches,
  isNotModified,
  isUnsafeMethod,
  mustRevalidate,
  normalizeAcceptEncoding,
  notModifiedMatches,
  parseCacheControl,
  parseRange,
  parseSurrogateControl,
  storageDecision,
  storedHeaders,
  surrogateKeys,
  variantKey,
  varyFields,
} from '../../src/page-cache/policy.js'

const ttl = (h: Record<string, string>, status = 200, defaults: { ruleTtl?: number; defaultTtl: number } = { defaultTtl: 0 }) =>
  freshnessLifetime(status, h, effectivePolicy(h), defaults)

const decide = (res: Record<string, string | string[]>, req: Record<string, string> = {}, extra: Partial<Parameters<typeof storageDecision>[0]> = {}) =>
  storageDecision({ method: 'GET', reqHeaders: req, status: 200, resHeaders: res, path: '/p', rules: [], defaultTtl: 0, ...extra })

describe('parseCacheControl (RFC 9111 §5.2)', () => {
  it('parses directives case-insensitively, with quoted and invalid arguments', () => {
    const d = parseCacheControl('Public, MAX-AGE=60, s-maxage="30", stale-while-revalidate=5, stale-if-error=abc, no-cache="set-cookie, x"')
    expect(d).toMatchObject({ public: true, maxAge: 60, sMaxAge: 30, staleWhileRevalidate: 5, noCache: true })
    expect(d.staleIfError).toBeUndefined()
  })
  it('uses the first of duplicated directives (§4.2.1)', () => {
    expect(parseCacheControl('max-age=10, max-age=100').maxAge).toBe(10)
  })
  it('caps huge delta-seconds at 2^31 (§1.2.2)', () => {
    expect(parseCacheControl('max-age=99999999999999').maxAge).toBe(2 ** 31)
  })
})

describe('freshness lifetime precedence (§4.2.1, RFC 9213, Edge Architecture)', () => {
  const date = 'Tue, 14 Nov 2023 22:13:20 GMT'
  const expires = 'Tue, 14 Nov 2023 22:15:00 GMT' // +100 s
  it('Surrogate-Control max-age beats everything', () => {
    expect(ttl({ 'surrogate-control': 'max-age=7', 'cdn-cache-control': 'max-age=8', 'cache-control': 's-maxage=9, max-age=10' })).toBe(7)
  })
  it('CDN-Cache-Control beats Cache-Control entirely (RFC 9213 §2.1)', () => {
    expect(ttl({ 'cdn-cache-control': 'max-age=8', 'cache-control': 's-maxage=9, max-age=10' })).toBe(8)
    expect(decide({ 'cdn-cache-control': 'max-age=8', 'cache-control': 'no-store' }).storable).toBe(true)
    expect(decide({ 'cdn-cache-control': 'no-store', 'cache-control': 'max-age=10' }).reason).toBe('no-store')
  })
  it('s-maxage beats max-age for a shared cache (§5.2.2.10)', () => {
    expect(ttl({ 'cache-control': 'max-age=10, s-maxage=9' })).toBe(9)
  })
  it('max-age beats Expires (§5.3)', () => {
    expect(ttl({ 'cache-control': 'max-age=10', expires, date })).toBe(10)
  })
  it('Expires − Date, invalid Expires means already expired (§5.3)', () => {
    expect(ttl({ expires, date })).toBe(100)
    expect(ttl({ expires: '0', date }, 200, { defaultTtl: 50 })).toBe(0)
  })
  it('rule defaultTtl then cache.defaultTtl, only for heuristically cacheable statuses (§4.2.2)', () => {
    expect(ttl({}, 200, { ruleTtl: 30, defaultTtl: 5 })).toBe(30)
    expect(ttl({}, 200, { defaultTtl: 5 })).toBe(5)
    expect(ttl({}, 302, { defaultTtl: 5 })).toBe(0)
    expect(ttl({}, 404, { defaultTtl: 5 })).toBe(5)
  })
  it('parses Surrogate-Control max-age=N+grace', () => {
    expect(parseSurrogateControl('max-age=30+60, content="ESI/1.0"')).toEqual({ noStore: false, maxAge: 30, grace: 60 })
    expect(parseSurrogateControl('no-store')).toEqual({ noStore: true })
  })
})

describe('storageDecision (§3)', () => {
  it('stores a response with explicit freshness', () => {
    expect(decide({ 'cache-control': 'max-age=60' })).toMatchObject({ storable: true, ttl: 60 })
  })
  it('refuses no-store, private, Surrogate-Control no-store (§5.2.2.5, §5.2.2.7)', () => {
    expect(decide({ 'cache-control': 'no-store, max-age=60' }).reason).toBe('no-store')
    expect(decide({ 'cache-control': 'private, max-age=60' }).reason).toBe('private')
    expect(decide({ 'cache-control': 'max-age=60', 'surrogate-control': 'no-store' }).reason).toBe('no-store')
  })
  it('refuses Authorization requests unless public / s-maxage / must-revalidate (§3.5)', () => {
    const auth = { authorization: 'Bearer x' }
    expect(decide({ 'cache-control': 'max-age=60' }, auth).reason).toBe('authorization')
    expect(decide({ 'cache-control': 'public, max-age=60' }, auth).storable).toBe(true)
    expect(decide({ 'cache-control': 's-maxage=60' }, auth).storable).toBe(true)
  })
  it('refuses Set-Cookie unless the path rule strips it', () => {
    expect(decide({ 'cache-control': 'max-age=60', 'set-cookie': 'a=b' }).reason).toBe('set-cookie')
    const rules = [{ prefix: '/static/', stripSetCookie: true }]
    expect(decide({ 'cache-control': 'max-age=60', 'set-cookie': 'a=b' }, {}, { path: '/static/x', rules }).storable).toBe(true)
  })
  it('refuses Vary: * (§4.1), non-GET methods, 206 and no freshness', () => {
    expect(decide({ 'cache-control': 'max-age=60', vary: 'Accept, *' }).reason).toBe('vary-star')
    expect(decide({ 'cache-control': 'max-age=60' }, {}, { method: 'POST' }).reason).toBe('method')
    expect(decide({ 'cache-control': 'max-age=60' }, {}, { status: 206 }).reason).toBe('status')
    expect(decide({}).reason).toBe('no-ttl')
  })
  it('keeps a no-cache response with a validator for revalidation (§5.2.2.4)', () => {
    const d = decide({ 'cache-control': 'no-cache', etag: '"a"' })
    expect(d).toMatchObject({ storable: true, ttl: 0 })
    expect(mustRevalidate(d.policy)).toBe(true)
  })
  it('uses the first matching rule for defaultTtl', () => {
    const rules = [{ prefix: '/a/', defaultTtl: 10, stripSetCookie: false }, { prefix: '/', defaultTtl: 20, stripSetCookie: false }]
    expect(decide({}, {}, { path: '/a/x', rules }).ttl).toBe(10)
    expect(decide({}, {}, { path: '/b', rules }).ttl).toBe(20)
  })
})

describe('age (§4.2.3, §5.1)', () => {
  it('adds the Age header and response delay, and grows with resident time', () => {
    const initial = correctedInitialAgeMs({ age: '5' }, 1000, 1300)
    expect(initial).toBe(5300)
    expect(ageSeconds({ storedAt: 1300, initialAgeMs: initial }, 1300)).toBe(5)
    expect(ageSeconds({ storedAt: 1300, initialAgeMs: initial }, 3300)).toBe(7)
  })
})

describe('stored and freshened headers (§3.1, §3.2, §4.3.4)', () => {
  it('drops hop-by-hop, Connection-named, Set-Cookie and Surrogate fields', () => {
    const h = storedHeaders({ connection: 'x-foo', 'x-foo': '1', 'keep-alive': 't', 'set-cookie': 'a', 'surrogate-key': 'k', 'content-type': 't/p', age: '3' })
    expect(h).toEqual({ 'content-type': 't/p' })
  })
  it('a 304 replaces stored fields except Content-Length and friends', () => {
    const h = freshenHeaders({ 'content-length': '10', 'cache-control': 'max-age=1', etag: '"a"', 'content-type': 'text/html' }, { 'content-length': '0', 'cache-control': 'max-age=60', 'x-new': '1', 'content-type': 'text/plain' })
    expect(h).toEqual({ 'content-length': '10', 'cache-control': 'max-age=60', etag: '"a"', 'content-type': 'text/html', 'x-new': '1' })
  })
  it('selects the stored response a 304 applies to (§4.3.4)', () => {
    expect(notModifiedMatches({ etag: '"a"' }, { etag: '"a"' })).toBe(true)
    expect(notModifiedMatches({ etag: '"a"' }, { etag: '"b"' })).toBe(false)
    expect(notModifiedMatches({ lastModified: 'x' }, { 'last-modified': 'x' })).toBe(true)
    expect(notModifiedMatches({}, {})).toBe(true)
  })
})

describe('conditional requests to the edge (§4.3.2)', () => {
  const stored = { status: 200, etag: 'W/"v1"', lastModified: 'Tue, 14 Nov 2023 22:13:20 GMT', storedAt: 0 }
  it('If-None-Match uses weak comparison and wins over If-Modified-Since', () => {
    expect(isNotModified({ 'if-none-match': '"x", "v1"' }, stored)).toBe(true)
    expect(isNotModified({ 'if-none-match': '*' }, stored)).toBe(true)
    expect(isNotModified({ 'if-none-match': '"x"', 'if-modified-since': 'Wed, 15 Nov 2023 00:00:00 GMT' }, stored)).toBe(false)
  })
  it('If-Modified-Since compares with Last-Modified', () => {
    expect(isNotModified({ 'if-modified-since': 'Wed, 15 Nov 2023 00:00:00 GMT' }, stored)).toBe(true)
    expect(isNotModified({ 'if-modified-since': 'Mon, 13 Nov 2023 00:00:00 GMT' }, stored)).toBe(false)
  })
})

describe('Range (RFC 9110 §14)', () => {
  it('parses single ranges, suffixes and open ends', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 })
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 })
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 })
    expect(parseRange('bytes=50-500', 100)).toEqual({ start: 50, end: 99 })
  })
  it('reports unsatisfiable and ignores what it cannot serve', () => {
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable')
    expect(parseRange('bytes=0-1,5-6', 100)).toBeUndefined()
    expect(parseRange('items=0-1', 100)).toBeUndefined()
    expect(parseRange(undefined, 100)).toBeUndefined()
  })
  it('If-Range with a strong ETag or the exact date (§13.1.5)', () => {
    expect(ifRangeMatches({ 'if-range': '"a"' }, { etag: '"a"' })).toBe(true)
    expect(ifRangeMatches({ 'if-range': 'W/"a"' }, { etag: 'W/"a"' })).toBe(false)
    expect(ifRangeMatches({ 'if-range': '"b"' }, { etag: '"a"' })).toBe(false)
  })
})

describe('Vary and Accept-Encoding (§4.1, RFC 9110 §12.5.3)', () => {
  it('normalises Accept-Encoding to br | gzip | identity', () => {
    expect(normalizeAcceptEncoding('gzip, deflate, br')).toBe('br')
    expect(normalizeAcceptEncoding('gzip;q=0.5, deflate')).toBe('gzip')
    expect(normalizeAcceptEncoding('gzip;q=0')).toBe('')
    expect(normalizeAcceptEncoding(undefined)).toBe('')
    expect(acceptedEncodings('*')).toContain('gzip')
  })
  it('builds variant keys from sorted Vary fields with collapsed whitespace', () => {
    const vary = varyFields({ vary: 'Accept-Language, Accept-Encoding' })
    expect(vary).toEqual(['accept-encoding', 'accept-language'])
    expect(variantKey(vary, { 'accept-encoding': 'gzip, deflate', 'accept-language': 'en  ,fr' })).toBe('accept-encoding:gzip\naccept-language:en ,fr')
    expect(variantKey(vary, { 'accept-encoding': 'gzip' })).toBe(variantKey(vary, { 'accept-encoding': 'deflate, gzip' }))
    expect(variantKey([], {})).toBe('')
  })
})

describe('misc', () => {
  it('unsafe methods (RFC 9110 §9.2.1)', () => {
    expect(['POST', 'PUT', 'PATCH', 'DELETE'].every(isUnsafeMethod)).toBe(true)
    expect(['GET', 'HEAD', 'OPTIONS'].some(isUnsafeMethod)).toBe(false)
  })
  it('surrogate keys are space separated and deduplicated', () => {
    expect(surrogateKeys({ 'surrogate-key': 'a  b a c' })).toEqual(['a', 'b', 'c'])
  })
})
