import { describe, expect, it, onTestFinished } from 'vitest'
import { request } from 'undici'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { startStrata, type RunningStrata } from '../helpers/strata.js'

/**
 * Kept assembled pages (esi.assembledPagesBytes) end to end: a real strata in front of real
 * origins. What is checked is what a client sees: a kept page is byte for byte the page an
 * assembly gives, a purge of any part is seen by the next request, and nothing that differs by
 * visitor is ever kept. The counters in /stats (esi.assembledPages) say whether a page was kept
 * and served whole, so each test also proves the path it meant to exercise was taken.
 */

type Route = (req: IncomingMessage, res: ServerResponse) => void

const ESI = { 'content-type': 'text/html', 'surrogate-control': 'content="ESI/1.0"' }
const template = (body: string, cacheControl = 'public, max-age=600', extra: Record<string, string> = {}): Route => (_req, res) => {
  res.writeHead(200, { ...ESI, 'cache-control': cacheControl, ...extra })
  res.end(body)
}
const text = (body: string | ((req: IncomingMessage) => string), cacheControl = 'public, max-age=600', extra: Record<string, string> = {}): Route => (req, res) => {
  res.writeHead(200, { 'content-type': 'text/html', 'cache-control': cacheControl, ...extra })
  res.end(typeof body === 'string' ? body : body(req))
}

async function setup(routes: Record<string, Route>, overrides: Record<string, unknown> = {}): Promise<{ o: Origin; s: RunningStrata }> {
  const o = await startOrigin((req, res) => {
    const route = routes[(req.url ?? '/').split('?')[0]!]
    if (route) return route(req, res)
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('not found')
  })
  onTestFinished(() => o.close())
  const s = await startStrata([o.url], { log: { level: 'warn', access: false }, ...overrides })
  onTestFinished(() => s.close())
  return { o, s }
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers })
  const raw = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, headers: res.headers, raw, body: raw.toString() }
}

interface KeptStats {
  maxBytes: number
  bytes: number
  pages: number
  hits: number
  kept: number
  dropped: number
  evicted: number
  notKept: Record<string, number>
}

async function kept(s: RunningStrata): Promise<KeptStats> {
  const res = await request(`${s.adminUrl}/stats`, { headers: { authorization: `Bearer ${s.token}` } })
  const body = (await res.body.json()) as { esi: { assembledPages: KeptStats } }
  return body.esi.assembledPages
}

function purge(s: RunningStrata, cmd: unknown) {
  return request(`${s.adminUrl}/purge`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(cmd),
  }).then(async (r) => ({ status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> }))
}

/** Headers that legitimately differ between two responses for the same page. */
function comparable(h: Record<string, unknown>): Record<string, unknown> {
  const { date: _d, age: _a, 'cache-status': _c, ...rest } = h
  return rest
}

describe('kept assembled pages: the same bytes as an assembly', () => {
  it('serves a kept page byte for byte equal to the assembled one (nested fragment included), headers alike', async () => {
    const { o, s } = await setup({
      '/page': template('<html><esi:include src="/f/a"/>|<esi:include src="/f/nest"/>|<esi:include src="/f/c"/></html>', 'public, max-age=600', { 'x-page': 'yes' }),
      '/f/a': text('A'.repeat(3000), 'public, max-age=300'),
      '/f/nest': template('[<esi:include src="/f/b"/>]', 'public, max-age=600'),
      '/f/b': text('ünïcödé B', 'public, max-age=120'),
      '/f/c': text('', 'public, max-age=600'),
    })
    const off = await startStrata([o.url], { log: { level: 'warn', access: false }, esi: { assembledPagesBytes: 0 } })
    onTestFinished(() => off.close())

    const first = await get(`${s.url}/page`) // full path: every part fetched
    const assembled = await get(`${s.url}/page`) // memory assembly, kept
    expect((await kept(s)).kept).toBe(1)
    const whole = await get(`${s.url}/page`) // the kept page
    const stats = await kept(s)
    expect(stats.hits).toBe(1)
    expect(stats.pages).toBe(1)
    expect(stats.bytes).toBeGreaterThan(3000)

    const expected = `<html>${'A'.repeat(3000)}|[ünïcödé B]|</html>`
    for (const r of [first, assembled, whole]) expect(r.body).toBe(expected)
    expect(whole.raw.equals(assembled.raw)).toBe(true)
    expect(comparable(whole.headers)).toEqual(comparable(assembled.headers))
    expect(whole.headers['cache-control']).toBe('max-age=120')
    expect(whole.headers['x-cache']).toBe('HIT')
    expect(whole.headers['content-length']).toBeUndefined()

    // The same page from a strata that keeps nothing.
    await get(`${off.url}/page`)
    const plain = await get(`${off.url}/page`)
    expect(plain.raw.equals(whole.raw)).toBe(true)
    expect(comparable(plain.headers)).toEqual(comparable(whole.headers))
    expect((await kept(off)).kept).toBe(0)
    expect(o.hits('/page')).toBe(2)
  })

  it('reports Age per request on a kept page, not the Age of the assembly it came from', async () => {
    const { s } = await setup({
      '/page': template('<esi:include src="/f"/>', 'public, max-age=600', { age: '30' }),
      '/f': text('F'),
    })
    await get(`${s.url}/page`)
    await get(`${s.url}/page`)
    const whole = await get(`${s.url}/page`)
    expect((await kept(s)).hits).toBe(1)
    expect(Number(whole.headers['age'])).toBeGreaterThanOrEqual(30)
    expect(String(whole.headers['cache-status'])).toMatch(/^strata; hit; ttl=\d+$/)
  })

  it('a kept page answers HEAD without a body, with Server-Timing when it is on, and a conditional GET in full', async () => {
    const { s } = await setup({ '/page': template('<esi:include src="/f"/>', 'public, max-age=600', { etag: '"t1"' }), '/f': text('F') }, { serverTiming: true })
    await get(`${s.url}/page`)
    await get(`${s.url}/page`)
    const whole = await get(`${s.url}/page`)
    expect(whole.body).toBe('F')
    expect(String(whole.headers['server-timing'])).toMatch(/^cache;dur=[\d.]+, esi;dur=[\d.]+$/)
    const head = await request(`${s.url}/page`, { method: 'HEAD' })
    expect(head.statusCode).toBe(200)
    expect(head.headers['etag']).toBeUndefined()
    expect((await head.body.arrayBuffer()).byteLength).toBe(0)
    const conditional = await get(`${s.url}/page`, { 'if-none-match': '"t1"' })
    expect(conditional.status).toBe(200)
    expect(conditional.body).toBe('F')
    expect((await kept(s)).hits).toBeGreaterThanOrEqual(2)
  })
})

describe('kept assembled pages: purges and refreshes are seen at once', () => {
  it('a fragment purged by URL, prefix or tag, and everything purged, shows on the next view', async () => {
    let n = 0
    const { o, s } = await setup({
      '/page': template('<p><esi:include src="/frag/news"/>|<esi:include src="/frag/footer"/></p>'),
      '/frag/news': text(() => `news${++n}`, 'public, max-age=600', { 'surrogate-key': 'news' }),
      '/frag/footer': text('footer', 'public, max-age=600'),
    })
    const view = async () => {
      const r = await get(`${s.url}/page`)
      expect(r.headers['x-cache']).toBe('HIT')
      return r.body
    }
    await get(`${s.url}/page`)
    await view()
    expect(await view()).toBe('<p>news1|footer</p>')
    expect((await kept(s)).hits).toBe(1)

    for (const [i, cmd] of [{ urls: ['/frag/news'] }, { prefix: '/frag/n' }, { tags: ['news'] }].entries()) {
      expect((await purge(s, cmd)).status).toBe(200)
      // The first view after the purge fetches the fragment (full path); the next ones are memory.
      expect(await view()).toBe(`<p>news${i + 2}|footer</p>`)
      expect(await view()).toBe(`<p>news${i + 2}|footer</p>`)
      expect(await view()).toBe(`<p>news${i + 2}|footer</p>`)
    }
    const before = await kept(s)
    expect(before.dropped).toBeGreaterThanOrEqual(3)
    expect(before.hits).toBeGreaterThanOrEqual(4)

    expect((await purge(s, { all: true })).status).toBe(200)
    expect((await kept(s)).pages).toBe(0)
    const after = await get(`${s.url}/page`)
    expect(after.body).toBe('<p>news5|footer</p>')
    expect(after.headers['x-cache']).toBe('MISS')
    expect(o.hits('/frag/news')).toBe(5)
    expect(o.hits('/page')).toBe(2)
  })

  it('a template purged by URL (or refreshed with new markup) shows on the next view', async () => {
    let markup = '<b><esi:include src="/f"/></b>'
    const { o, s } = await setup({
      '/page': (req, res) => template(markup)(req, res),
      '/f': text('F'),
    })
    for (let i = 0; i < 3; i++) expect((await get(`${s.url}/page`)).body).toBe('<b>F</b>')
    expect((await kept(s)).hits).toBe(1)
    markup = '<i><esi:include src="/f"/></i>'
    expect((await purge(s, { urls: ['/page'] })).status).toBe(200)
    for (let i = 0; i < 3; i++) expect((await get(`${s.url}/page`)).body).toBe('<i>F</i>')
    expect(o.hits('/page')).toBe(2)
    expect(o.hits('/f')).toBe(1)
  })

  it('a soft purge of a fragment is seen too (the stale part is revalidated, not served from the kept page)', async () => {
    let n = 0
    const { s } = await setup({
      '/page': template('<esi:include src="/f"/>'),
      '/f': text(() => `v${++n}`, 'public, max-age=600'),
    })
    for (let i = 0; i < 3; i++) expect((await get(`${s.url}/page`)).body).toBe('v1')
    expect((await kept(s)).hits).toBe(1)
    expect((await purge(s, { urls: ['/f'], soft: true })).status).toBe(200)
    const next = await get(`${s.url}/page`)
    // Grace may serve v1 once while v2 is fetched in the background; never the kept page after.
    expect(['v1', 'v2']).toContain(next.body)
    const stats = await kept(s)
    expect(stats.dropped).toBe(1)
  })
})

describe('kept assembled pages: nothing per visitor is shared', () => {
  it('a public fragment with Vary: Cookie is never kept; every visitor gets their own', async () => {
    const { s } = await setup({
      '/page': template('<h1><esi:include src="/f/hello"/></h1><esi:include src="/f/nav"/>'),
      '/f/hello': text((req) => `hi ${/user=(\w+)/.exec(req.headers.cookie ?? '')?.[1] ?? 'guest'}`, 'public, max-age=600', { vary: 'Cookie' }),
      '/f/nav': text('NAV'),
    })
    for (let round = 0; round < 3; round++) {
      for (const user of ['alice', 'bob']) expect((await get(`${s.url}/page`, { cookie: `user=${user}` })).body).toBe(`<h1>hi ${user}</h1>NAV`)
      expect((await get(`${s.url}/page`)).body).toBe('<h1>hi guest</h1>NAV')
    }
    const stats = await kept(s)
    expect(stats.kept).toBe(0)
    expect(stats.hits).toBe(0)
    expect(stats.notKept['vary']).toBeGreaterThan(0)
  })

  it('a private fragment is never kept; every visitor gets their own', async () => {
    const { o, s } = await setup({
      '/page': template('<h1><esi:include src="/f/hello"/></h1>'),
      '/f/hello': text((req) => `hi ${/user=(\w+)/.exec(req.headers.cookie ?? '')?.[1] ?? 'guest'}`, 'private, max-age=600'),
    })
    for (let round = 0; round < 3; round++) {
      for (const user of ['alice', 'bob']) expect((await get(`${s.url}/page`, { cookie: `user=${user}` })).body).toBe(`<h1>hi ${user}</h1>`)
    }
    expect((await kept(s)).kept).toBe(0)
    expect(o.hits('/f/hello')).toBe(6)
  })

  it('a nested fragment reading $(HTTP_COOKIE) is never kept, though the page itself reads nothing', async () => {
    const { s } = await setup({
      '/page': template('<main><esi:include src="/f/who"/></main>'),
      '/f/who': template('<esi:vars>$(HTTP_COOKIE{user}|nobody)</esi:vars>', 'public, max-age=600'),
    })
    for (let round = 0; round < 3; round++) {
      for (const user of ['alice', 'bob']) expect((await get(`${s.url}/page`, { cookie: `user=${user}` })).body).toBe(`<main>${user}</main>`)
      expect((await get(`${s.url}/page`)).body).toBe('<main>nobody</main>')
    }
    const stats = await kept(s)
    expect(stats.kept).toBe(0)
    expect(stats.notKept['variables']).toBeGreaterThan(0)
  })

  it('a page whose include src reads $(QUERY_STRING{…}) is never kept; each query gets its fragment', async () => {
    const { s } = await setup({
      '/page': template('<esi:include src="/f/item?id=$(QUERY_STRING{id})"/>'),
      '/f/item': text((req) => `item ${new URL(req.url!, 'http://x').searchParams.get('id')}`),
    })
    for (let round = 0; round < 3; round++) {
      for (const id of ['1', '2']) expect((await get(`${s.url}/page?id=${id}`)).body).toBe(`item ${id}`)
    }
    expect((await kept(s)).kept).toBe(0)
  })

  it('a fragment with Vary: Accept-Language gives each language its own variant and is not kept', async () => {
    const { s } = await setup({
      '/page': template('<esi:include src="/f/greet"/>'),
      '/f/greet': text((req) => (String(req.headers['accept-language']).startsWith('fr') ? 'bonjour' : 'hello'), 'public, max-age=600', { vary: 'Accept-Language' }),
    })
    for (let round = 0; round < 3; round++) {
      expect((await get(`${s.url}/page`, { 'accept-language': 'fr' })).body).toBe('bonjour')
      expect((await get(`${s.url}/page`, { 'accept-language': 'en' })).body).toBe('hello')
    }
    const stats = await kept(s)
    expect(stats.kept).toBe(0)
    expect(stats.notKept['vary']).toBeGreaterThan(0)
  })

  it('a fragment with Vary: Accept-Encoding is kept, and still right for every client', async () => {
    const { s } = await setup({
      '/page': template('<esi:include src="/f"/>', 'public, max-age=600', { vary: 'Accept-Encoding' }),
      '/f': text('F', 'public, max-age=600', { vary: 'Accept-Encoding' }),
    })
    for (let i = 0; i < 3; i++) expect((await get(`${s.url}/page`, { 'accept-encoding': 'identity' })).body).toBe('F')
    for (let i = 0; i < 3; i++) expect((await get(`${s.url}/page`, { 'accept-encoding': 'br' })).body).toBe('F')
    const stats = await kept(s)
    expect(stats.kept).toBeGreaterThan(0)
    expect(stats.hits).toBeGreaterThan(0)
  })
})

describe('kept assembled pages: the per-request check alone', () => {
  it('with Accept-Encoding variants of a fragment, every request gets what a strata keeping nothing gives', async () => {
    // Accept-Encoding is forwarded with includes here, and the origin answers each coding with
    // its own (identity-coded) bytes: the page may be kept, so only the per-request lookup of
    // each part, with the headers the walk would send, decides which variant a request gets (the
    // page cache's Accept-Encoding fallback lets an identity-coded variant serve every client).
    // The same sequence of requests through a strata that keeps nothing is the reference.
    const { o, s } = await setup(
      {
        '/page': template('<esi:include src="/f"/>'),
        '/f': text((req) => `coding=${req.headers['accept-encoding'] ?? 'none'}`, 'public, max-age=600', { vary: 'Accept-Encoding' }),
      },
      { esi: { forwardHeaders: ['accept-encoding'] } },
    )
    const off = await startStrata([o.url], { log: { level: 'warn', access: false }, esi: { forwardHeaders: ['accept-encoding'], assembledPagesBytes: 0 } })
    onTestFinished(() => off.close())
    for (const coding of ['br', 'br', 'br', 'identity', 'identity', 'br', 'gzip;q=0, br', 'identity', 'br', 'br']) {
      const got = await get(`${s.url}/page`, { 'accept-encoding': coding })
      const want = await get(`${off.url}/page`, { 'accept-encoding': coding })
      expect(got.body, coding).toBe(want.body)
    }
    const stats = await kept(s)
    expect(stats.hits).toBeGreaterThan(0)
  })
})

describe('kept assembled pages: bounded memory and configuration', () => {
  it('keeps within esi.assembledPagesBytes, evicting the least recently used pages', async () => {
    const { s } = await setup(
      {
        '/page': template('<esi:include src="/f"/>'),
        '/f': text('x'.repeat(1000)),
      },
      { esi: { assembledPagesBytes: 4000 } },
    )
    for (let q = 0; q < 8; q++) {
      for (let i = 0; i < 3; i++) expect((await get(`${s.url}/page?q=${q}`)).body).toBe('x'.repeat(1000))
    }
    const stats = await kept(s)
    expect(stats.maxBytes).toBe(4000)
    expect(stats.bytes).toBeLessThanOrEqual(4000)
    expect(stats.pages).toBeGreaterThan(0)
    expect(stats.pages).toBeLessThan(8)
    expect(stats.evicted).toBeGreaterThan(0)
    expect(stats.hits).toBe(8)
  })

  it('esi.assembledPagesBytes: 0 keeps nothing and serves the same pages', async () => {
    const { s } = await setup({ '/page': template('<esi:include src="/f"/>'), '/f': text('F') }, { esi: { assembledPagesBytes: 0 } })
    for (let i = 0; i < 3; i++) expect((await get(`${s.url}/page`)).body).toBe('F')
    expect(await kept(s)).toMatchObject({ maxBytes: 0, pages: 0, kept: 0, hits: 0 })
  })

  it('a route with esi.enabled: false serves the template as written, never a kept page', async () => {
    const { s } = await setup(
      { '/raw/page': template('<esi:include src="/f"/>'), '/page': template('<esi:include src="/f"/>'), '/f': text('F') },
      { routes: [{ match: { pathPrefix: '/raw/' }, esi: { enabled: false } }] },
    )
    for (let i = 0; i < 3; i++) expect((await get(`${s.url}/page`)).body).toBe('F')
    for (let i = 0; i < 3; i++) expect((await get(`${s.url}/raw/page`)).body).toBe('<esi:include src="/f"/>')
    expect((await kept(s)).pages).toBe(1)
  })
})
