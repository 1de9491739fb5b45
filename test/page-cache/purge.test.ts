import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { ServerResponse } from 'node:http'
import { isStrataError } from '../../src/core/errors.js'
import { compilePurge, unsafeRegexReason } from '../../src/page-cache/purge.js'
import { createKeyFunction } from '../../src/page-cache/key.js'
import { PageCache } from '../../src/page-cache/page-cache.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { sleep } from '../helpers/ports.js'
import { bodyOf, originFetch } from './fetch-origin.js'
import { cacheConfig, creq } from './helpers.js'

describe('pattern safety', () => {
  it('accepts the safe subset', () => {
    for (const p of ['^/news/\\d+$', '/a|/b', '^/(news|sport)/', '[a-z]+\\.html', '(?:ab)+', '/x{2,3}']) expect(unsafeRegexReason(p)).toBeUndefined()
  })
  it('rejects nested quantifiers, quantified alternation, backreferences and lookaround', () => {
    expect(unsafeRegexReason('(a+)+$')).toMatch(/nested quantifiers/)
    expect(unsafeRegexReason('(a|aa)*')).toMatch(/nested quantifiers/)
    expect(unsafeRegexReason('((ab)*c)*')).toMatch(/nested quantifiers/)
    expect(unsafeRegexReason('(x*){2,}')).toMatch(/nested quantifiers/)
    expect(unsafeRegexReason('(a)\\1')).toMatch(/backreferences/)
    expect(unsafeRegexReason('(?=a)')).toMatch(/lookaround/)
  })
})

describe('purge command validation', () => {
  const keyFn = createKeyFunction({ ignoreQuery: [], sortQuery: false })
  const cases: [unknown, RegExp][] = [
    [null, /JSON object/],
    [[], /JSON object/],
    [{}, /exactly one of/],
    [{ urls: ['/a'], prefix: '/b' }, /exactly one of/],
    [{ urls: [] }, /non-empty array/],
    [{ urls: 'x' }, /non-empty array/],
    [{ urls: ['ftp://h/x'] }, /http or https/],
    [{ urls: ['nope'] }, /neither a path/],
    [{ prefix: '' }, /non-empty string/],
    [{ pattern: 'a'.repeat(300) }, /longer than 256/],
    [{ pattern: '(a+)+' }, /nested quantifiers/],
    [{ pattern: '[' }, /not a valid regular expression/],
    [{ tags: ['a b'] }, /whitespace/],
    [{ all: false }, /must be true/],
    [{ all: true, soft: 'yes' }, /"soft" must be a boolean/],
    [{ all: true, extra: 1 }, /unknown purge property "extra"/],
  ]
  for (const [body, msg] of cases) {
    it(`rejects ${JSON.stringify(body)?.slice(0, 40)}`, () => {
      let err: unknown
      try {
        compilePurge(body, keyFn)
      } catch (e) {
        err = e
      }
      expect(isStrataError(err, 'STRATA_ADMIN_BAD_BODY')).toBe(true)
      expect((err as Error).message).toMatch(msg)
    })
  }
})

describe('PageCache.purge and stats', () => {
  let origin: Origin
  let pc: PageCache
  let n = 0
  const fetchOrigin = originFetch(() => origin.url)
  const body = (s: ServerResponse, headers: Record<string, string>, text: string) => {
    s.writeHead(200, headers)
    s.end(text)
  }
  beforeEach(async () => {
    n = 0
    origin = await startOrigin((q, s) => {
      n++
      const tags = q.url!.startsWith('/news/') ? 'news' : 'other'
      body(s, { 'cache-control': 'max-age=60', 'surrogate-key': `${tags} all-pages`, vary: 'Accept-Language' }, `${q.url} #${n}`)
    })
    pc = new PageCache({ config: cacheConfig({ grace: 60 }) })
  })
  afterEach(async () => {
    await pc.close()
    await origin.close()
  })

  const get = async (url: string, host = 'a.test', lang = 'en') => {
    const r = await pc.handle(creq(url, { 'accept-language': lang }, 'GET', host), fetchOrigin)
    return { ...r, text: (await bodyOf(r.body)).toString() }
  }
  const status = async (url: string, host = 'a.test', lang = 'en') => (await get(url, host, lang)).cacheStatus
  async function warm() {
    for (const u of ['/news/1', '/news/2', '/sport/1', '/about']) await get(u)
    await get('/news/1', 'b.test')
    await get('/news/1', 'a.test', 'fr')
    await sleep(20)
  }

  it('urls: a bare path means every host and every variant', async () => {
    await warm()
    expect(await pc.purge({ urls: ['/news/1'] })).toMatchObject({ purged: 3 })
    expect(await status('/news/1')).toBe('MISS')
    expect(await status('/news/1', 'b.test')).toBe('MISS')
    expect(await status('/news/2')).toBe('HIT')
  })

  it('urls: an absolute URL only that host', async () => {
    await warm()
    expect(await pc.purge({ urls: ['http://b.test/news/1'] })).toMatchObject({ purged: 1 })
    expect(await status('/news/1', 'b.test')).toBe('MISS')
    expect(await status('/news/1')).toBe('HIT')
  })

  it('prefix', async () => {
    await warm()
    expect(await pc.purge({ prefix: '/news/' })).toMatchObject({ purged: 4 })
    expect(await status('/sport/1')).toBe('HIT')
    expect(await status('/news/2')).toBe('MISS')
  })

  it('pattern', async () => {
    await warm()
    expect(await pc.purge({ pattern: '^/(sport|about)' })).toMatchObject({ purged: 2 })
    expect(await status('/about')).toBe('MISS')
    expect(await status('/news/2')).toBe('HIT')
  })

  it('tags', async () => {
    await warm()
    expect(await pc.purge({ tags: ['other'] })).toMatchObject({ purged: 2 })
    expect(await status('/sport/1')).toBe('MISS')
    expect(await status('/news/1')).toBe('HIT')
  })

  it('all', async () => {
    await warm()
    expect(await pc.purge({ all: true })).toMatchObject({ purged: 6 })
    expect(pc.stats().entries).toBe(0)
  })

  it('soft: entries turn stale and grace keeps serving while one refresh runs', async () => {
    await warm()
    expect(await pc.purge({ tags: ['news'], soft: true })).toMatchObject({ purged: 4 })
    const before = n
    const r = await get('/news/2')
    expect(r.cacheStatus).toBe('STALE')
    expect(r.text).toContain('#2')
    await sleep(50)
    expect(n).toBe(before + 1)
    const after = await get('/news/2')
    expect(after.cacheStatus).toBe('HIT')
    expect(after.text).toContain(`#${before + 1}`)
    expect(await status('/about')).toBe('HIT')
  })

  it('stats count hits, misses, stale hits, passes, entries and bytes', async () => {
    await warm()
    await get('/news/1')
    await get('/news/2')
    await bodyOf((await pc.handle(creq('/x', {}, 'POST'), fetchOrigin)).body)
    const s = pc.stats()
    expect(s).toMatchObject({ hits: 2, misses: 6, staleHits: 0, passes: 1, entries: 6 })
    expect(s.hitRatio).toBeCloseTo(2 / 8)
    expect(s.bytes).toBeGreaterThan(0)
    expect(s.l1).toMatchObject({ hits: 2, entries: 6 })
    expect(s.l2).toEqual({ enabled: false })
  })
})
