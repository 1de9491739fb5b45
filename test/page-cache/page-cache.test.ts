import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { gzipSync } from 'node:zlib'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ManualClock } from '../../src/core/clock.js'
import { isStrataError } from '../../src/core/errors.js'
import { PageCache } from '../../src/page-cache/page-cache.js'
import type { CacheResult } from '../../src/page-cache/types.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { sleep, waitFor } from '../helpers/ports.js'
import { bodyOf, originFetch } from './fetch-origin.js'
import { cacheConfig, creq } from './helpers.js'

type Route = (req: IncomingMessage, res: ServerResponse, n: number) => void | Promise<void>

let origin: Origin
let routes: Map<string, Route>
let counts: Map<string, number>
let clock: ManualClock
let pc: PageCache | undefined
const fetchOrigin = originFetch(() => origin.url)

const route = (path: string, r: Route) => routes.set(path, r)
const send = (res: ServerResponse, status: number, headers: Record<string, string | string[]>, body: string | Buffer = '') => {
  res.writeHead(status, headers)
  res.end(body)
}

beforeEach(async () => {
  routes = new Map()
  counts = new Map()
  clock = new ManualClock(Date.parse('2024-01-01T00:00:00Z'))
  origin = await startOrigin(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!
    const n = (counts.get(path) ?? 0) + 1
    counts.set(path, n)
    const r = routes.get(path)
    if (!r) return send(res, 404, { 'content-type': 'text/plain' }, 'not found')
    await r(req, res, n)
  })
})
afterEach(async () => {
  await pc?.close()
  pc = undefined
  await origin.close()
})

const make = (over: Parameters<typeof cacheConfig>[0] = {}, extra: Partial<ConstructorParameters<typeof PageCache>[0]> = {}) =>
  (pc = new PageCache({ config: cacheConfig(over), clock, ...extra }))

async function get(p: PageCache, url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<CacheResult & { text: string; raw: Buffer }> {
  const r = await p.handle(creq(url, headers, method), fetchOrigin)
  const raw = await bodyOf(r.body)
  return { ...r, raw, text: raw.toString() }
}

describe('hit, miss and headers', () => {
  it('serves a miss from the origin, then hits from L1 with Age, X-Cache and Cache-Status', async () => {
    route('/a', (_q, s, n) => send(s, 200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain', 'surrogate-key': 'k1 k2', 'surrogate-control': 'max-age=60' }, `body ${n}`))
    const p = make()
    const m = await get(p, '/a')
    expect(m).toMatchObject({ statusCode: 200, text: 'body 1', cacheStatus: 'MISS' })
    expect(m.headers['x-cache']).toBe('MISS')
    expect(m.headers['cache-status']).toBe('strata; fwd=uri-miss; fwd-status=200; stored')
    expect(m.headers['surrogate-key']).toBeUndefined()
    expect(m.headers['surrogate-control']).toBeUndefined()
    expect(m.headers['via']).toBe('1.1 strata')
    await sleep(10) // the stored promise settles after the stream ended
    clock.advance(5_000)
    const h = p.handle(creq('/a'), fetchOrigin)
    // An L1 hit answers synchronously with the stored bytes.
    expect(h).not.toBeInstanceOf(Promise)
    const hit = h as CacheResult
    expect(hit.cacheStatus).toBe('HIT')
    expect(Buffer.isBuffer(hit.body) && hit.body.toString()).toBe('body 1')
    expect(hit.body).toBe(hit.entry!.body)
    expect(hit.headers).toMatchObject({ age: '5', 'x-cache': 'HIT', 'cache-status': 'strata; hit; ttl=55', 'content-length': '6', via: '1.1 strata' })
    expect(hit.headers['surrogate-key']).toBeUndefined()
    expect(counts.get('/a')).toBe(1)
    expect(hit.entry!.tags).toEqual(['k1', 'k2'])
  })

  it('expires with real time (max-age=1)', async () => {
    route('/rt', (_q, s, n) => send(s, 200, { 'cache-control': 'max-age=1' }, `v${n}`))
    pc = new PageCache({ config: cacheConfig() })
    expect((await get(pc, '/rt')).text).toBe('v1')
    await sleep(20)
    expect((await get(pc, '/rt')).cacheStatus).toBe('HIT')
    await sleep(1100)
    const r = await get(pc, '/rt')
    expect(r).toMatchObject({ cacheStatus: 'MISS', text: 'v2' })
  })

  it('a binary body round-trips byte-exact', async () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...Array.from({ length: 3000 }, (_, i) => (i * 31) % 256)])
    route('/img.png', (_q, s) => send(s, 200, { 'content-type': 'image/png', 'cache-control': 'max-age=60' }, png))
    const p = make()
    expect((await get(p, '/img.png')).raw.equals(png)).toBe(true)
    await sleep(10)
    const h = await get(p, '/img.png')
    expect(h.cacheStatus).toBe('HIT')
    expect(h.raw.equals(png)).toBe(true)
  })

  it('uses the normalised key: ignored and sorted query parameters share an entry', async () => {
    route('/q', (_q, s, n) => send(s, 200, { 'cache-control': 'max-age=60' }, `q${n}`))
    const p = make({ key: { ignoreQuery: ['utm_*'], sortQuery: true } })
    await get(p, '/q?b=2&a=1&utm_source=x')
    await sleep(10)
    expect((await get(p, '/q?a=1&b=2')).cacheStatus).toBe('HIT')
    expect(counts.get('/q')).toBe(1)
  })

  it('passes everything through when the cache is disabled', async () => {
    route('/d', (_q, s, n) => send(s, 200, { 'cache-control': 'max-age=60' }, `d${n}`))
    const p = make({ enabled: false })
    await get(p, '/d')
    const r = await get(p, '/d')
    expect(r).toMatchObject({ cacheStatus: 'PASS', text: 'd2' })
  })
})

describe('freshness from each header', () => {
  const cases: [string, Record<string, string>, number, Parameters<typeof cacheConfig>[0]?][] = [
    ['surrogate-control', { 'surrogate-control': 'max-age=30', 'cache-control': 'max-age=5' }, 30],
    ['cdn-cache-control', { 'cdn-cache-control': 'max-age=20', 'cache-control': 'max-age=5' }, 20],
    ['s-maxage', { 'cache-control': 'max-age=5, s-maxage=15' }, 15],
    ['max-age', { 'cache-control': 'max-age=12' }, 12],
    ['expires', { expires: new Date(Date.parse('2024-01-01T00:00:00Z') + 8000).toUTCString(), date: new Date(Date.parse('2024-01-01T00:00:00Z')).toUTCString() }, 8],
    ['rule defaultTtl', {}, 7, { defaultTtl: 3, rules: [{ prefix: '/f', defaultTtl: 7, stripSetCookie: false }] }],
    ['cache.defaultTtl', {}, 3, { defaultTtl: 3 }],
  ]
  for (const [name, headers, ttl, cfg] of cases) {
    it(`${name} → fresh for ${ttl} s`, async () => {
      route('/f', (_q, s, n) => send(s, 200, headers, `f${n}`))
      const p = make(cfg)
      await get(p, '/f')
      await sleep(10)
      clock.advance(ttl * 1000 - 50)
      expect((await get(p, '/f')).cacheStatus).toBe('HIT')
      clock.advance(100)
      expect((await get(p, '/f')).text).toBe('f2')
    })
  }
})

describe('not stored', () => {
  const cases: [string, Record<string, string>, Record<string, string>][] = [
    ['no-store', { 'cache-control': 'no-store, max-age=60' }, {}],
    ['private', { 'cache-control': 'private, max-age=60' }, {}],
    ['Set-Cookie', { 'cache-control': 'max-age=60', 'set-cookie': 'sid=1' }, {}],
    ['Authorization request', { 'cache-control': 'max-age=60' }, { authorization: 'Bearer t' }],
    ['Vary: *', { 'cache-control': 'max-age=60', vary: '*' }, {}],
    ['no freshness and defaultTtl 0', {}, {}],
  ]
  for (const [name, headers, reqHeaders] of cases) {
    it(name, async () => {
      route('/n', (_q, s, n) => send(s, 200, headers, `n${n}`))
      const p = make({ hitForPass: 0 })
      expect((await get(p, '/n', reqHeaders)).text).toBe('n1')
      await sleep(10)
      const r = await get(p, '/n', reqHeaders)
      expect(r.text).toBe('n2')
      expect(r.cacheStatus).toBe('MISS')
      if (headers['set-cookie']) expect(r.headers['set-cookie']).toBe('sid=1')
    })
  }

  it('Authorization with public is stored', async () => {
    route('/pub', (_q, s, n) => send(s, 200, { 'cache-control': 'public, max-age=60' }, `p${n}`))
    const p = make()
    await get(p, '/pub', { authorization: 'Bearer t' })
    await sleep(10)
    expect((await get(p, '/pub')).cacheStatus).toBe('HIT')
  })

  it('a stripSetCookie rule strips the cookie and stores', async () => {
    route('/static/s.css', (_q, s, n) => send(s, 200, { 'cache-control': 'max-age=60', 'set-cookie': 'sid=1' }, `s${n}`))
    const p = make({ rules: [{ prefix: '/static/', stripSetCookie: true }] })
    const m = await get(p, '/static/s.css')
    expect(m.headers['set-cookie']).toBeUndefined()
    await sleep(10)
    const h = await get(p, '/static/s.css')
    expect(h).toMatchObject({ cacheStatus: 'HIT', text: 's1' })
    expect(h.headers['set-cookie']).toBeUndefined()
  })

  it('an object over maxObjectBytes streams through uncached', async () => {
    const big = Buffer.alloc(50_000, 7)
    route('/big', (_q, s) => send(s, 200, { 'cache-control': 'max-age=60' }, big))
    const p = make({ maxObjectBytes: 10_000, hitForPass: 0 })
    expect((await get(p, '/big')).raw.equals(big)).toBe(true)
    await sleep(10)
    const r = await get(p, '/big')
    expect(r.cacheStatus).toBe('MISS')
    expect(r.raw.equals(big)).toBe(true)
    expect(counts.get('/big')).toBe(2)
  })

  it('hit-for-pass: an uncacheable response makes the next requests pass for a while', async () => {
    route('/hfp', (_q, s, n) => send(s, 200, { 'cache-control': 'private' }, `h${n}`))
    const p = make({ hitForPass: 10 })
    await get(p, '/hfp')
    const r = await get(p, '/hfp')
    expect(r.cacheStatus).toBe('PASS')
    expect(r.headers['cache-status']).toBe('strata; fwd=bypass; detail=hit-for-pass')
    clock.advance(11_000)
    expect((await get(p, '/hfp')).cacheStatus).toBe('MISS')
  })
})

describe('the miss streams to the client while it is stored', () => {
  it('the client gets the first bytes before the origin finishes', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    route('/slow', async (_q, s) => {
      s.writeHead(200, { 'cache-control': 'max-age=60' })
      s.write('first,')
      await gate
      s.end('second')
    })
    const p = make()
    const r = await p.handle(creq('/slow'), fetchOrigin)
    const stream = r.body as NodeJS.ReadableStream
    const first = await new Promise<string>((resolve) => stream.once('data', (c) => resolve(String(c))))
    expect(first).toBe('first,')
    release()
    const rest = await bodyOf(stream)
    expect(rest.toString()).toBe('second')
    await sleep(10)
    expect((await get(p, '/slow')).text).toBe('first,second')
  })

  it('keeps storing when the client goes away mid-body', async () => {
    route('/gone', async (_q, s) => {
      s.writeHead(200, { 'cache-control': 'max-age=60' })
      s.write('a'.repeat(1000))
      await sleep(50)
      s.end('b'.repeat(1000))
    })
    const p = make()
    const r = await p.handle(creq('/gone'), fetchOrigin)
    ;(r.body as import('node:stream').Readable).destroy()
    await sleep(150)
    const h = await get(p, '/gone')
    expect(h.cacheStatus).toBe('HIT')
    expect(h.raw.length).toBe(2000)
  })
})

describe('Vary', () => {
  it('stores one variant per Vary value', async () => {
    route('/v', (q, s, n) => send(s, 200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' }, `${q.headers['accept-language']}-${n}`))
    const p = make()
    expect((await get(p, '/v', { 'accept-language': 'en' })).text).toBe('en-1')
    expect((await get(p, '/v', { 'accept-language': 'fr' })).text).toBe('fr-2')
    await sleep(10)
    const en = await get(p, '/v', { 'accept-language': 'en' })
    const fr = await get(p, '/v', { 'accept-language': 'fr' })
    expect([en.cacheStatus, en.text, fr.cacheStatus, fr.text]).toEqual(['HIT', 'en-1', 'HIT', 'fr-2'])
    const miss = await get(p, '/v', { 'accept-language': 'de' })
    expect(miss.headers['cache-status']).toContain('fwd=vary-miss')
    expect(counts.get('/v')).toBe(3)
  })

  it('normalises Accept-Encoding so equivalent headers share a variant', async () => {
    route('/ae', (_q, s, n) => send(s, 200, { 'cache-control': 'max-age=60', vary: 'Accept-Encoding' }, `ae${n}`))
    const p = make()
    await get(p, '/ae', { 'accept-encoding': 'gzip, deflate' })
    await sleep(10)
    expect((await get(p, '/ae', { 'accept-encoding': 'deflate, gzip;q=0.8' })).cacheStatus).toBe('HIT')
    expect(origin.requests[0]!.headers['accept-encoding']).toBe('gzip')
  })

  it('a gzip entry is decompressed for a client that does not accept gzip', async () => {
    const html = '<p>' + 'hello '.repeat(500) + '</p>'
    route('/gz', (q, s) => {
      if (String(q.headers['accept-encoding'] ?? '').includes('gzip')) send(s, 200, { 'cache-control': 'max-age=60', vary: 'Accept-Encoding', 'content-encoding': 'gzip', etag: '"g1"' }, gzipSync(html))
      else send(s, 200, { 'cache-control': 'max-age=60', vary: 'Accept-Encoding' }, html)
    })
    const p = make()
    const z = await get(p, '/gz', { 'accept-encoding': 'gzip' })
    expect(z.headers['content-encoding']).toBe('gzip')
    await sleep(10)
    const plain = await get(p, '/gz')
    expect(plain.cacheStatus).toBe('HIT')
    expect(plain.text).toBe(html)
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.headers['etag']).toBe('W/"g1"')
    expect(counts.get('/gz')).toBe(1)
  })
})

describe('HEAD, conditional requests and Range', () => {
  beforeEach(() => {
    route('/r', (_q, s) => send(s, 200, { 'cache-control': 'max-age=60', etag: '"r1"', 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT', 'content-type': 'text/plain' }, '0123456789'))
  })

  it('HEAD is answered from the GET entry', async () => {
    const p = make()
    await get(p, '/r')
    await sleep(10)
    const h = await get(p, '/r', {}, 'HEAD')
    expect(h).toMatchObject({ cacheStatus: 'HIT', body: null })
    expect(h.headers['content-length']).toBe('10')
  })

  it('a HEAD miss fills the cache with a GET', async () => {
    const p = make()
    const h = await get(p, '/r', {}, 'HEAD')
    expect(h).toMatchObject({ cacheStatus: 'MISS', body: null })
    expect(origin.requests[0]!.method).toBe('GET')
    expect((await get(p, '/r')).cacheStatus).toBe('HIT')
  })

  it('answers 304 to If-None-Match and If-Modified-Since from the edge', async () => {
    const p = make()
    await get(p, '/r')
    await sleep(10)
    const inm = await get(p, '/r', { 'if-none-match': 'W/"r1"' })
    expect(inm).toMatchObject({ statusCode: 304, body: null })
    expect(inm.headers['etag']).toBe('"r1"')
    expect((await get(p, '/r', { 'if-modified-since': 'Tue, 02 Jan 2024 00:00:00 GMT' })).statusCode).toBe(304)
    expect((await get(p, '/r', { 'if-none-match': '"other"' })).statusCode).toBe(200)
    expect(counts.get('/r')).toBe(1)
  })

  it('a conditional miss is filled without the client conditionals, then answered 304', async () => {
    const p = make()
    const r = await get(p, '/r', { 'if-none-match': '"r1"' })
    expect(r.statusCode).toBe(304)
    expect(origin.requests[0]!.headers['if-none-match']).toBeUndefined()
  })

  it('answers Range from the cached 200 with 206 / 416', async () => {
    const p = make()
    const first = await get(p, '/r', { range: 'bytes=2-4' })
    expect(first).toMatchObject({ statusCode: 206, text: '234' })
    expect(origin.requests[0]!.headers['range']).toBeUndefined()
    const r = await get(p, '/r', { range: 'bytes=-3' })
    expect(r).toMatchObject({ statusCode: 206, text: '789', cacheStatus: 'HIT' })
    expect(r.headers['content-range']).toBe('bytes 7-9/10')
    expect(r.headers['content-length']).toBe('3')
    expect((await get(p, '/r', { range: 'bytes=20-' })).statusCode).toBe(416)
    expect((await get(p, '/r', { range: 'bytes=0-1', 'if-range': '"old"' })).statusCode).toBe(200)
    expect(counts.get('/r')).toBe(1)
  })
})

describe('revalidation (RFC 9111 §4.3)', () => {
  it('a stale entry is revalidated with its validators; a 304 refreshes headers and freshness', async () => {
    route('/rv', (q, s, n) => {
      if (q.headers['if-none-match'] === '"e1"') return send(s, 304, { 'cache-control': 'max-age=100', 'x-version': String(n), etag: '"e1"' })
      send(s, 200, { 'cache-control': 'max-age=1', etag: '"e1"', 'x-version': String(n) }, 'payload')
    })
    const p = make()
    await get(p, '/rv')
    await sleep(10)
    clock.advance(2000)
    const r = await get(p, '/rv')
    expect(r).toMatchObject({ cacheStatus: 'REVALIDATED', statusCode: 200, text: 'payload' })
    expect(r.headers['x-version']).toBe('2')
    expect(r.headers['cache-control']).toBe('max-age=100')
    expect(origin.requests[1]!.headers['if-none-match']).toBe('"e1"')
    clock.advance(50_000)
    const h = await get(p, '/rv')
    expect(h).toMatchObject({ cacheStatus: 'HIT', text: 'payload' })
    expect(h.headers['x-version']).toBe('2')
    expect(counts.get('/rv')).toBe(2)
  })

  it('no-cache responses are stored but revalidated every time', async () => {
    route('/nc', (q, s) => {
      if (q.headers['if-none-match'] === '"n"') return send(s, 304, { etag: '"n"' })
      send(s, 200, { 'cache-control': 'no-cache', etag: '"n"' }, 'nc')
    })
    const p = make({ grace: 60 })
    await get(p, '/nc')
    await sleep(10)
    expect((await get(p, '/nc')).cacheStatus).toBe('REVALIDATED')
    expect((await get(p, '/nc')).cacheStatus).toBe('REVALIDATED')
    expect(counts.get('/nc')).toBe(3)
  })
})

describe('grace and stale-if-error', () => {
  it('serves stale within grace at once while one background refresh runs', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    route('/g', async (_q, s, n) => {
      if (n > 1) await gate
      send(s, 200, { 'cache-control': 'max-age=1' }, `g${n}`)
    })
    const p = make({ grace: 30 })
    await get(p, '/g')
    await sleep(10)
    clock.advance(5000)
    const stale = await Promise.all([get(p, '/g'), get(p, '/g'), get(p, '/g')])
    for (const s of stale) expect(s).toMatchObject({ cacheStatus: 'STALE', text: 'g1' })
    expect(stale[0]!.headers['cache-status']).toBe('strata; hit; detail=grace; ttl=-4')
    await sleep(50)
    expect(counts.get('/g')).toBe(2) // one background refresh, still held at the origin
    release()
    await sleep(50)
    expect(await get(p, '/g')).toMatchObject({ cacheStatus: 'HIT', text: 'g2' })
  })

  it('honours stale-while-revalidate from the response', async () => {
    route('/swr', (_q, s, n) => send(s, 200, { 'cache-control': 'max-age=1, stale-while-revalidate=10' }, `s${n}`))
    const p = make()
    await get(p, '/swr')
    await sleep(10)
    clock.advance(5000)
    expect((await get(p, '/swr')).cacheStatus).toBe('STALE')
    clock.advance(20_000)
    expect((await get(p, '/swr')).cacheStatus).toBe('MISS')
  })

  it('serves stale when the origin is stopped, within stale-if-error only', async () => {
    route('/e', (_q, s) => send(s, 200, { 'cache-control': 'max-age=1' }, 'good'))
    const p = make({ staleIfError: 60 })
    await get(p, '/e')
    await sleep(10)
    await origin.close()
    clock.advance(10_000)
    const r = await get(p, '/e')
    expect(r).toMatchObject({ cacheStatus: 'STALE', text: 'good' })
    expect(r.headers['cache-status']).toContain('detail=stale-if-error')
    clock.advance(60_000)
    await expect(get(p, '/e')).rejects.toSatisfy((e) => isStrataError(e, 'STRATA_UPSTREAM_CONNECT'))
    origin = await startOrigin((_q, s) => { s.end() }) // for afterEach
  })

  it('serves stale when the origin answers 5xx', async () => {
    route('/5', (_q, s, n) => (n === 1 ? send(s, 200, { 'cache-control': 'max-age=1, stale-if-error=30' }, 'ok') : send(s, 503, {}, 'down')))
    const p = make()
    await get(p, '/5')
    await sleep(10)
    clock.advance(5000)
    const r = await get(p, '/5')
    expect(r).toMatchObject({ cacheStatus: 'STALE', text: 'ok', statusCode: 200 })
    expect(r.headers['cache-status']).toContain('fwd-status=503')
  })

  it('must-revalidate forbids serving stale', async () => {
    route('/mr', (_q, s, n) => (n === 1 ? send(s, 200, { 'cache-control': 'max-age=1, must-revalidate' }, 'ok') : send(s, 503, {}, 'down')))
    const p = make({ staleIfError: 60, grace: 60 })
    await get(p, '/mr')
    await sleep(10)
    clock.advance(5000)
    expect(await get(p, '/mr')).toMatchObject({ statusCode: 503, text: 'down' })
  })
})

describe('coalescing', () => {
  it('200 concurrent cold requests make one origin request', async () => {
    route('/c', async (_q, s, n) => {
      await sleep(100)
      send(s, 200, { 'cache-control': 'max-age=60' }, `c${n}`)
    })
    const p = make()
    const all = await Promise.all(Array.from({ length: 200 }, () => get(p, '/c')))
    expect(counts.get('/c')).toBe(1)
    expect(all.every((r) => r.text === 'c1')).toBe(true)
    expect(p.stats().coalescedWaits).toBe(199)
    expect(all.filter((r) => String(r.headers['cache-status']).includes('collapsed'))).toHaveLength(199)
  })

  it('caps the waiters per key', async () => {
    route('/cap', async (_q, s, n) => {
      await sleep(100)
      send(s, 200, { 'cache-control': 'max-age=60' }, `c${n}`)
    })
    const p = make({ coalesce: { enabled: true, maxWaiters: 5 } })
    await Promise.all(Array.from({ length: 10 }, () => get(p, '/cap')))
    expect(counts.get('/cap')).toBe(5) // 1 leader + 5 waiters; the other 4 fetch alone
  })

  it('releases the waiters when the response is uncacheable, and sets hit-for-pass', async () => {
    route('/u', async (_q, s, n) => {
      await sleep(100)
      send(s, 200, { 'cache-control': 'private' }, `u${n}`)
    })
    const p = make({ hitForPass: 10 })
    const all = await Promise.all(Array.from({ length: 5 }, () => get(p, '/u')))
    expect(new Set(all.map((r) => r.text)).size).toBe(5)
    expect(counts.get('/u')).toBe(5)
    expect((await get(p, '/u')).cacheStatus).toBe('PASS')
  })
})

describe('a failed coalescing leader', () => {
  const N = 20
  /**
   * N concurrent cold requests for `path`: the origin holds the first until the other N-1 wait on
   * it (counted by the cache, no sleeping), then `fail`s it. Answers each request's outcome.
   */
  async function stampede(p: PageCache, path: string, fail: (res: ServerResponse) => void): Promise<string[]> {
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    let first = true
    route(path, async (_q, s, n) => {
      if (first) {
        first = false
        await held
        return fail(s)
      }
      send(s, 200, { 'cache-control': 'max-age=60' }, `ok${n}`)
    })
    const all = Array.from({ length: N }, () =>
      get(p, path).then(
        (r) => `${r.statusCode} ${r.text}`,
        (err: Error) => (isStrataError(err) ? err.code : `thrown: ${err.message}`),
      ),
    )
    await waitFor(() => p.stats().coalescedWaits === N - 1)
    release()
    return Promise.all(all)
  }

  it('hands its connection error to every waiter: one origin request, not N', async () => {
    const p = make()
    const out = await stampede(p, '/down', (s) => s.socket!.destroy())
    expect(counts.get('/down')).toBe(1)
    expect(out).toHaveLength(N)
    expect(out.every((o) => o === 'STRATA_UPSTREAM_CONNECT')).toBe(true)
  })

  it('hands waiters a 502 when it got an uncacheable 5xx; the leader gets the origin answer', async () => {
    const p = make()
    const out = await stampede(p, '/fails', (s) => send(s, 503, { 'content-type': 'text/plain' }, 'maintenance'))
    expect(counts.get('/fails')).toBe(1)
    expect(out.filter((o) => o === '503 maintenance')).toHaveLength(1)
    expect(out.filter((o) => o === 'STRATA_UPSTREAM_RESPONSE')).toHaveLength(N - 1)
  })

  it('hands waiters an error when its body broke off mid-stream', async () => {
    const p = make()
    const out = await stampede(p, '/cut', (s) => {
      s.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '1000' })
      s.write('partial', () => s.socket!.destroy())
    })
    expect(counts.get('/cut')).toBe(1)
    expect(out.filter((o) => o === 'STRATA_UPSTREAM_RESPONSE')).toHaveLength(N - 1)
    // The leader's own stream errors (whatever undici calls the cut): it is not a 200 in full.
    expect(out.filter((o) => o.startsWith('thrown:') || o === 'STRATA_UPSTREAM_RESPONSE')).toHaveLength(N)
  })

  it('whose own requester left (an aborted include) is replaced by one waiter, not by all of them', async () => {
    route('/frag', (_q, s, n) => send(s, 200, { 'cache-control': 'max-age=60' }, `frag${n}`))
    const p = make()
    const left = new AbortController()
    // The leader's fetch fails because its requester aborted, not because the origin did.
    const leader = Promise.resolve(p.handle({ ...creq('/frag'), signal: left.signal }, () => new Promise((_r, reject) => left.signal.addEventListener('abort', () => reject(new Error('client closed the connection'))))))
      .then(() => 'answered', (err: Error) => err.message)
    const waiters = Array.from({ length: N - 1 }, () => get(p, '/frag').then((r) => `${r.statusCode} ${r.text}`))
    await waitFor(() => p.stats().coalescedWaits === N - 1)
    left.abort()
    expect(await leader).toBe('client closed the connection')
    expect(await Promise.all(waiters)).toEqual(Array(N - 1).fill('200 frag1'))
    expect(counts.get('/frag')).toBe(1)
  })

  it('still serves waiters the stale copy when stale-if-error allows it', async () => {
    route('/sie', (_q, s) => send(s, 200, { 'cache-control': 'max-age=1, stale-if-error=60' }, 'old'))
    const p = make()
    await get(p, '/sie')
    clock.advance(2000)
    const out = await stampede(p, '/sie', (s) => send(s, 503, {}, 'down'))
    expect(out).toEqual(Array(N).fill('200 old'))
    expect(counts.get('/sie')).toBe(2)
  })
})

describe('unsafe-method invalidation (RFC 9111 §4.4)', () => {
  it('invalidates the target and same-host Location / Content-Location', async () => {
    for (const path of ['/items', '/items/1', '/items/2']) route(path, (q, s, n) => {
      if (q.method === 'POST') return send(s, 201, { location: '/items/1', 'content-location': 'http://other.test/items/2' })
      send(s, 200, { 'cache-control': 'max-age=60' }, `${path}:${n}`)
    })
    const p = make()
    for (const u of ['/items', '/items/1', '/items/2']) await get(p, u)
    await sleep(10)
    const post = await get(p, '/items', {}, 'POST')
    expect(post).toMatchObject({ statusCode: 201, cacheStatus: 'PASS' })
    expect((await get(p, '/items')).cacheStatus).toBe('MISS')
    expect((await get(p, '/items/1')).cacheStatus).toBe('MISS')
    expect((await get(p, '/items/2')).cacheStatus).toBe('HIT') // another host: not invalidated
  })

  it('an error response invalidates nothing', async () => {
    route('/keep', (q, s) => (q.method === 'DELETE' ? send(s, 500, {}) : send(s, 200, { 'cache-control': 'max-age=60' }, 'k')))
    const p = make()
    await get(p, '/keep')
    await sleep(10)
    await get(p, '/keep', {}, 'DELETE')
    expect((await get(p, '/keep')).cacheStatus).toBe('HIT')
  })
})

describe('prepare hook', () => {
  it('runs once when an entry enters L1 and is kept on the entry', async () => {
    route('/esi', (_q, s) => send(s, 200, { 'cache-control': 'max-age=60' }, 'template'))
    let calls = 0
    const p = make({}, { prepare: (e) => ({ compiled: e.body.toString().toUpperCase(), n: ++calls }) })
    await get(p, '/esi')
    await sleep(10)
    const h = await get(p, '/esi')
    await get(p, '/esi')
    expect(h.entry!.prepared).toEqual({ compiled: 'TEMPLATE', n: 1 })
    expect(calls).toBe(1)
  })
})
