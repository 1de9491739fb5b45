import { describe, expect, it } from 'vitest'
import { gzipSync } from 'node:zlib'
import { ManualClock } from '../../src/core/clock.js'
import { deliver, passHeaderList, passHeaders, plainHit } from '../../src/page-cache/respond.js'
import { decodeEntry, encodeEntry } from '../../src/page-cache/redis-store.js'
import type { CacheRequest } from '../../src/page-cache/types.js'
import { makeEntry } from './store-contract.js'

const req = (headers: Record<string, string> = {}, method = 'GET'): CacheRequest => ({ method, scheme: 'http', host: 'h', url: '/a', headers: { host: 'h', ...headers } })

/** Flat [name, value, ...] → object, for comparisons. */
const toObject = (flat: (string | string[])[]) => Object.fromEntries(Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i], flat[2 * i + 1]]))

describe('plainHit (the fast path delivery)', () => {
  it('sends what deliver sends for a plain hit, as a flat list, with Age and ttl of the moment', () => {
    const clock = new ManualClock()
    const entry = makeEntry(clock, { ttl: 60, headers: { etag: '"v1"' } })
    clock.advance(5_500)
    const hit = plainHit(entry, req(), clock.now())!
    const full = deliver(entry, req(), 'HIT', clock.now(), 'hit')
    expect(hit.status).toBe(200)
    expect(hit.body).toBe(entry.body)
    expect(toObject(hit.headers)).toEqual(full.headers)
    expect(toObject(hit.headers)).toMatchObject({ age: '5', 'x-cache': 'HIT', 'cache-status': 'strata; hit; ttl=54', 'content-length': '5', via: '1.1 strata' })
    // The flat list is built once per entry; each hit gets its own copy.
    clock.advance(10_000)
    const later = plainHit(entry, req(), clock.now())!
    expect(toObject(later.headers)).toMatchObject({ age: '15', 'cache-status': 'strata; hit; ttl=44' })
    expect(toObject(hit.headers)['age']).toBe('5')
  })

  it('HEAD gets the headers and no body', () => {
    const clock = new ManualClock()
    const hit = plainHit(makeEntry(clock), req({}, 'HEAD'), clock.now())!
    expect(hit.body).toBeNull()
    expect(toObject(hit.headers)['content-length']).toBe('5')
  })

  it('leaves conditionals, ranges and gzip for a client without gzip to deliver', () => {
    const clock = new ManualClock()
    const entry = makeEntry(clock, { headers: { etag: '"v1"' } })
    expect(plainHit(entry, req({ 'if-none-match': '"v1"' }), clock.now())).toBeUndefined()
    expect(plainHit(entry, req({ 'if-modified-since': 'Wed, 21 Oct 2015 07:28:00 GMT' }), clock.now())).toBeUndefined()
    expect(plainHit(entry, req({ range: 'bytes=0-1' }), clock.now())).toBeUndefined()
    const gz = makeEntry(clock, { body: gzipSync('hello'), headers: { 'content-encoding': 'gzip' } })
    expect(plainHit(gz, req(), clock.now())).toBeUndefined()
    expect(plainHit(gz, req({ 'accept-encoding': 'gzip, br' }), clock.now())).toBeDefined()
  })

  it('keeps the flat list out of L2', () => {
    const clock = new ManualClock()
    const entry = makeEntry(clock)
    plainHit(entry, req(), clock.now())
    expect(entry.wire).toBeDefined()
    expect(decodeEntry(encodeEntry(entry)).wire).toBeUndefined()
  })
})

describe('passHeaderList', () => {
  /** Flat list → object, values of a repeated name gathered in order (as a client reads them). */
  const gathered = (flat: (string | string[])[]) => {
    const out: Record<string, string | string[]> = {}
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i] as string
      const cur = out[name]
      const value = flat[i + 1]!
      out[name] = cur === undefined ? value : [...[cur].flat(), ...[value].flat()]
    }
    return out
  }
  const origins: Record<string, string | string[]>[] = [
    { 'content-type': 'text/html', 'content-length': '5' },
    { 'content-type': 'text/plain', connection: 'keep-alive', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', 'surrogate-control': 'max-age=60', 'surrogate-key': 'a b' },
    { connection: 'x-secret, close', 'x-secret': '1', 'x-kept': '2', via: '1.1 cdn', 'x-cache': 'HIT', 'cache-status': 'cdn; hit' },
    { 'set-cookie': ['a=1', 'b=2'], via: ['1.0 a', '1.1 b'], 'server-timing': 'db;dur=3' },
    { 'set-cookie': 'a=1', 'x-cache': 'MISS' },
  ]

  it('gives the fields passHeaders gives, in one flat list', () => {
    for (const h of origins) expect(gathered(passHeaderList(h, 'uri-miss'))).toEqual(passHeaders(h, 'uri-miss'))
  })

  it("adds the sticky Set-Cookie after the origin's, and Server-Timing in place of the origin's", () => {
    for (const h of origins) {
      const want = passHeaders(h, 'method')
      const cur = want['set-cookie']
      want['set-cookie'] = cur === undefined ? 'sticky=x' : [...[cur].flat(), 'sticky=x']
      want['server-timing'] = 'upstream;dur=1'
      expect(gathered(passHeaderList(h, 'method', 'sticky=x', 'upstream;dur=1'))).toEqual(want)
    }
  })
})
