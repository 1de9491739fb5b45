import { describe, expect, it } from 'vitest'
import { AssembledPages, keepable, varyKeepable } from '../../src/esi/assembled-pages.js'
import { assemble, compile, type FragmentResponse } from '../../src/esi/index.js'
import { baseConfig } from './helpers.js'

/**
 * A stand-in for L1: path → stored entry (a fresh object per store, as a fill or a purge makes),
 * with the staleAt a hit checks. The proxy's real `isCurrent` is a fresh L1 lookup of the part
 * for the request's headers, compared by identity.
 */
interface Stored extends FragmentResponse {
  staleAt: number
}
interface Part {
  path: string
  token: Stored
}
const page = new URL('http://site.test/page')

function store(table: Map<string, Stored>, path: string, body: string, cacheControl = 'public, max-age=60', staleAt = 10_000): Stored {
  const e: Stored = { statusCode: 200, headers: { 'cache-control': cacheControl }, body: Buffer.from(body), staleAt }
  table.set(path, e)
  return e
}

/** One memory-only assembly, recording every part it used (what the proxy's lookup wrapper does). */
function assembleRecording(template: string, table: Map<string, Stored>, templateEntry: Stored) {
  const program = compile(template)
  const parts: Part[] = [{ path: '/page', token: templateEntry }]
  const a = assemble(program, {
    pageUrl: page,
    headers: {},
    fetch: () => Promise.reject(new Error('memory only')),
    memoryOnly: true,
    lookup: (url) => {
      const e = table.get(url.pathname)
      if (e !== undefined) parts.push({ path: url.pathname, token: e })
      return e
    },
    config: baseConfig,
    cacheControl: templateEntry.headers['cache-control']!,
  })
  const done = a.completeSync()
  return { program, parts, done }
}

describe('keepable: only pages that need nothing from the request and are public', () => {
  it('says why not', () => {
    const plain = compile('<esi:include src="/a"/>')
    expect(keepable(plain, 'max-age=60')).toBe('ok')
    expect(keepable(plain, 'private, max-age=60')).toBe('private')
    expect(keepable(plain, 'private, no-store')).toBe('private')
    expect(keepable(plain, 'no-cache, max-age=0')).toBe('no-cache')
    expect(keepable(plain, 'max-age=0')).toBe('no-max-age')
    const vars = compile('<esi:vars>$(HTTP_COOKIE{id})</esi:vars><esi:include src="/a"/>')
    expect(vars.usesVariables).toBe(true)
    expect(keepable(vars, 'max-age=60')).toBe('variables')
  })

  it('a part may vary by Accept-Encoding only', () => {
    expect(varyKeepable([])).toBe('ok')
    expect(varyKeepable(['accept-encoding'])).toBe('ok')
    expect(varyKeepable(['accept-encoding', 'cookie'])).toBe('vary')
    expect(varyKeepable(['accept-language'])).toBe('vary')
  })

  it("a private fragment makes the fold's Cache-Control private: not kept", () => {
    const table = new Map<string, Stored>()
    const tpl = store(table, '/page', '')
    store(table, '/a', 'A')
    store(table, '/me', 'me', 'private, max-age=60')
    const r = assembleRecording('[<esi:include src="/a"/><esi:include src="/me"/>]', table, tpl)
    expect(r.done?.page.toString()).toBe('[Ame]')
    expect(keepable(r.program, r.done!.cacheControl)).toBe('private')
  })
})

describe('AssembledPages', () => {
  const template = '<p><esi:include src="/a"/>|<esi:include src="/b"/></p>'
  const isCurrentIn = (table: Map<string, Stored>) => (p: Part) => table.get(p.path) === p.token

  function kept() {
    const table = new Map<string, Stored>()
    const tpl = store(table, '/page', template)
    store(table, '/a', 'A', 'public, max-age=60', 5_000)
    store(table, '/b', 'B', 'public, max-age=30', 3_000)
    const r = assembleRecording(template, table, tpl)
    expect(keepable(r.program, r.done!.cacheControl)).toBe('ok')
    const pages = new AssembledPages<Part>({ maxBytes: 1e6 })
    pages.set('site.test/page', {
      status: 200,
      headers: { 'content-type': 'text/html', 'cache-control': r.done!.cacheControl },
      body: r.done!.page,
      parts: r.parts,
      freshUntil: Math.min(...r.parts.map((p) => p.token.staleAt)),
    })
    return { table, pages }
  }

  it('serves the same bytes and headers an assembly gives, while every part is the same entry and fresh', () => {
    const { table, pages } = kept()
    const hit = pages.get('site.test/page', 1_000, isCurrentIn(table))
    expect(hit?.body.toString()).toBe('<p>A|B</p>')
    expect(hit?.headers['cache-control']).toBe('max-age=30')
    expect(hit?.parts.map((p) => p.path)).toEqual(['/page', '/a', '/b'])
    expect(pages.stats).toEqual({ hits: 1, dropped: 0, kept: 1, evicted: 0 })
  })

  it('drops the page when a fragment was replaced (refresh, purge + refill) or is gone', () => {
    const { table, pages } = kept()
    store(table, '/b', 'B2')
    expect(pages.get('site.test/page', 1_000, isCurrentIn(table))).toBeUndefined()
    expect(pages.stats.dropped).toBe(1)
    expect(pages.size.pages).toBe(0)

    const second = kept()
    second.table.delete('/a')
    expect(second.pages.get('site.test/page', 1_000, isCurrentIn(second.table))).toBeUndefined()
  })

  it('drops the page when the template itself was replaced', () => {
    const { table, pages } = kept()
    store(table, '/page', '<p>new</p>')
    expect(pages.get('site.test/page', 1_000, isCurrentIn(table))).toBeUndefined()
  })

  it('drops the page once its shortest-lived part is stale', () => {
    const { table, pages } = kept()
    expect(pages.get('site.test/page', 2_999, isCurrentIn(table))).toBeDefined()
    expect(pages.get('site.test/page', 3_000, isCurrentIn(table))).toBeUndefined()
  })

  it('hands out frozen headers and parts: a caller adding Server-Timing cannot change the kept page', () => {
    const { table, pages } = kept()
    const hit = pages.get('site.test/page', 1_000, isCurrentIn(table))!
    expect(Object.isFrozen(hit.headers)).toBe(true)
    expect(Object.isFrozen(hit.parts)).toBe(true)
  })

  it('is bounded by bytes, and invalidate frees pages built from a key', () => {
    const pages = new AssembledPages<Part>({ maxBytes: 3_000, partOverhead: 0 })
    const mk = (n: number) => ({ status: 200, headers: {}, body: Buffer.alloc(1_000), parts: [{ path: `/f${n}`, token: { statusCode: 200, headers: {}, body: Buffer.alloc(0), staleAt: 1e9 } }], freshUntil: 1e9 })
    for (let i = 0; i < 4; i++) pages.set(`p${i}`, mk(i))
    expect(pages.size.pages).toBe(2)
    expect(pages.stats.evicted).toBe(2)
    expect(pages.size.bytes).toBeLessThanOrEqual(3_000)
    pages.set('huge', { ...mk(9), body: Buffer.alloc(5_000) })
    expect(pages.size.pages).toBe(2)
    expect(pages.invalidate((p) => p.parts.some((x) => x.path === '/f3'))).toBe(1)
    expect(pages.size.pages).toBe(1)
  })
})

describe('AssembledPages recency', () => {
  it('evicts the least recently used page, a hit counting as a use', () => {
    const pages = new AssembledPages<string>({ maxBytes: 2_500, partOverhead: 0 })
    const mk = () => ({ status: 200, headers: {}, body: Buffer.alloc(1_000), parts: ['x'], freshUntil: 1e9 })
    pages.set('p0', mk())
    pages.set('p1', mk())
    expect(pages.get('p0', 0, () => true)).toBeDefined()
    pages.set('p2', mk())
    expect(pages.get('p1', 0, () => true)).toBeUndefined()
    expect(pages.get('p0', 0, () => true)).toBeDefined()
    expect(pages.get('p2', 0, () => true)).toBeDefined()
  })
})
