import { describe, expect, it, onTestFinished } from 'vitest'
import { request } from 'undici'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { gunzipSync, gzipSync } from 'node:zlib'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { startStrata, type RunningStrata } from '../helpers/strata.js'
import { sleep } from '../helpers/ports.js'

/**
 * ESI end to end: real origins, a real strata (page cache → balancer → forward → assemble), real
 * sockets. Every test starts its own origin(s) and strata on ephemeral ports and stops them when it
 * finishes, so tests share no state and the file can run next to any other.
 */

type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

const ESI = { 'content-type': 'text/html', 'surrogate-control': 'content="ESI/1.0"' }
const template = (body: string, cacheControl = 'public, max-age=60', extra: Record<string, string> = {}): Route => (_req, res) => {
  res.writeHead(200, { ...ESI, 'cache-control': cacheControl, ...extra })
  res.end(body)
}
const text = (body: string | ((req: IncomingMessage) => string), cacheControl = 'public, max-age=60', extra: Record<string, string> = {}): Route => (req, res) => {
  res.writeHead(200, { 'content-type': 'text/html', 'cache-control': cacheControl, ...extra })
  res.end(typeof body === 'string' ? body : body(req))
}
const slow = (ms: number, body: string, cacheControl = 'public, max-age=60'): Route => async (req, res) => {
  await sleep(ms)
  text(body, cacheControl)(req, res)
}

/** An origin answering from a table of paths (the query is ignored); unknown paths are a 404. */
async function routedOrigin(routes: Record<string, Route>): Promise<Origin> {
  const o = await startOrigin((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!
    const route = routes[path]
    if (route) return route(req, res)
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('not found')
  })
  onTestFinished(() => o.close())
  return o
}

async function strataFor(o: Origin, overrides: Record<string, unknown> = {}): Promise<RunningStrata> {
  const s = await startStrata([o.url], { log: { level: 'warn', access: false }, ...overrides })
  onTestFinished(() => s.close())
  return s
}

async function setup(routes: Record<string, Route>, overrides: Record<string, unknown> = {}) {
  const o = await routedOrigin(routes)
  const s = await strataFor(o, overrides)
  return { o, s }
}

async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(url, { method, headers })
  const body = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, headers: res.headers, raw: body, body: body.toString() }
}

function admin(s: RunningStrata, path: string, body: unknown) {
  return request(`${s.adminUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  }).then(async (r) => ({ status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> }))
}

describe('ESI activation', () => {
  it('assembles a page marked with Surrogate-Control: content="ESI/1.0"', async () => {
    const { s } = await setup({
      '/page': template('<p>[<esi:include src="/frag/a"/>][<esi:include src="/frag/b"/>]</p>'),
      '/frag/a': text('A'),
      '/frag/b': text('B'),
    })
    const r = await get(`${s.url}/page`)
    expect(r.status).toBe(200)
    expect(r.body).toBe('<p>[A][B]</p>')
    // Served again from the cached template and cached fragments.
    expect((await get(`${s.url}/page`)).body).toBe('<p>[A][B]</p>')
  })

  it('assembles a page under esi.paths without any Surrogate-Control', async () => {
    const { s } = await setup(
      {
        '/pages/home': text('<h1><esi:include src="/frag/title"/></h1>'),
        '/other/home': text('<h1><esi:include src="/frag/title"/></h1>'),
        '/frag/title': text('Title'),
      },
      { esi: { paths: ['/pages/'] } },
    )
    expect((await get(`${s.url}/pages/home?x=1`)).body).toBe('<h1>Title</h1>')
    // A path outside the prefixes is not processed.
    expect((await get(`${s.url}/other/home`)).body).toBe('<h1><esi:include src="/frag/title"/></h1>')
  })

  it('passes an unmarked response that contains <esi:include> through untouched', async () => {
    const body = '<p>user comment: <esi:include src="/frag/secret"/> <!--esi <b>x</b> --></p>'
    const { o, s } = await setup({ '/comment': text(body), '/frag/secret': text('SECRET') })
    const miss = await get(`${s.url}/comment`)
    expect(miss.body).toBe(body)
    const hit = await get(`${s.url}/comment`)
    expect(hit.headers['x-cache']).toBe('HIT')
    expect(hit.body).toBe(body)
    // Served as stored: not turned into a chunked, assembled response.
    expect(hit.headers['content-length']).toBe(String(Buffer.byteLength(body)))
    expect(o.hits('/frag/secret')).toBe(0)
  })

  it('strips Surrogate-Control before the client and sends Surrogate-Capability upstream', async () => {
    const { o, s } = await setup(
      {
        '/page': template('<esi:include src="/frag/a"/>'),
        '/pages/x': text('<esi:include src="/frag/a"/>', 'public, max-age=60', { 'surrogate-control': 'max-age=30' }),
        '/plain': text('plain', 'public, max-age=60', { 'surrogate-control': 'max-age=30' }),
        '/frag/a': text('A', 'public, max-age=60', { 'surrogate-control': 'max-age=30' }),
      },
      { esi: { paths: ['/pages/'] } },
    )
    for (const path of ['/page', '/page', '/pages/x', '/pages/x', '/plain', '/plain', '/frag/a']) {
      const r = await get(`${s.url}${path}`)
      expect(r.status).toBe(200)
      expect(r.headers['surrogate-control'], path).toBeUndefined()
    }
    expect(o.requests.length).toBeGreaterThanOrEqual(4)
    for (const req of o.requests) expect(req.headers['surrogate-capability'], req.url).toBe('strata="ESI/1.0"')
    // The fragment request itself went upstream with the capability, too.
    expect(o.hits('/frag/a')).toBe(1)
  })

  it('esi.enabled: false passes the template through as is and advertises no capability', async () => {
    const body = '<p><esi:include src="/frag/a"/></p>'
    const { o, s } = await setup({ '/page': template(body), '/frag/a': text('A') }, { esi: { enabled: false } })
    for (let i = 0; i < 2; i++) {
      const r = await get(`${s.url}/page`)
      expect(r.body).toBe(body)
      expect(r.headers['surrogate-control']).toBeUndefined()
    }
    expect(o.hits('/frag/a')).toBe(0)
    expect(o.requests[0]!.headers['surrogate-capability']).toBeUndefined()
  })
})

describe('ESI parallel fetches and streaming', () => {
  it('fetches five 200 ms fragments in parallel: the page takes about 200 ms, not 1 s', async () => {
    const routes: Record<string, Route> = {}
    let t = ''
    for (let i = 0; i < 5; i++) {
      routes[`/frag/${i}`] = slow(200, `F${i}`)
      t += `<esi:include src="/frag/${i}"/>`
    }
    routes['/page'] = template(t)
    const { o, s } = await setup(routes)
    // Warm the template alone so the timing is the fragments'.
    await get(`${s.url}/page`)
    const purge = await admin(s, '/purge', { prefix: '/frag/' })
    expect(purge.status).toBe(200)
    const t0 = performance.now()
    const r = await get(`${s.url}/page`)
    const ms = performance.now() - t0
    expect(r.body).toBe('F0F1F2F3F4')
    expect(ms).toBeGreaterThanOrEqual(190)
    expect(ms).toBeLessThan(700)
    expect(o.hits('/frag/0')).toBe(2)
  })

  it('streams the bytes before a slow (800 ms) fragment before that fragment finishes', async () => {
    const { s } = await setup({
      '/page': template('<html><head>HEAD</head>' + 'x'.repeat(2000) + '<esi:include src="/frag/slow"/>TAIL</html>'),
      '/frag/slow': slow(800, 'SLOW', 'no-store'),
    })
    const t0 = performance.now()
    const res = await request(`${s.url}/page`)
    let first: { at: number; text: string } | undefined
    let all = ''
    for await (const chunk of res.body) {
      first ??= { at: performance.now() - t0, text: chunk.toString() }
      all += chunk.toString()
    }
    const end = performance.now() - t0
    expect(all).toBe('<html><head>HEAD</head>' + 'x'.repeat(2000) + 'SLOWTAIL</html>')
    expect(first!.text.startsWith('<html><head>HEAD</head>')).toBe(true)
    expect(first!.text).not.toContain('SLOW')
    expect(end).toBeGreaterThanOrEqual(790)
    expect(first!.at).toBeLessThan(end - 400)
  })
})

describe('ESI fragment lifetimes and purge', () => {
  it('refreshes a fragment with a 1 s TTL while its 60 s template stays a cache HIT', async () => {
    let n = 0
    const { o, s } = await setup({
      '/page': template('<p><esi:include src="/frag/clock"/></p>', 'public, max-age=60'),
      '/frag/clock': text(() => `v${++n}`, 'public, max-age=1'),
    })
    expect((await get(`${s.url}/page`)).body).toBe('<p>v1</p>')
    const hit = await get(`${s.url}/page`)
    expect(hit.body).toBe('<p>v1</p>')
    expect(hit.headers['x-cache']).toBe('HIT')
    expect(o.hits('/frag/clock')).toBe(1)
    await sleep(2100)
    const later = await get(`${s.url}/page`)
    expect(later.headers['x-cache']).toBe('HIT')
    expect(later.body).toBe('<p>v2</p>')
    expect(o.hits('/frag/clock')).toBe(2)
    expect(o.hits('/page')).toBe(1)
  })

  it('a fragment purged by URL and by tag through the admin API shows on the next page view', async () => {
    let n = 0
    const { o, s } = await setup({
      '/page': template('<p><esi:include src="/frag/news"/>|<esi:include src="/frag/footer"/></p>'),
      '/frag/news': text(() => `news${++n}`, 'public, max-age=600', { 'surrogate-key': 'news' }),
      '/frag/footer': text('footer', 'public, max-age=600', { 'surrogate-key': 'layout' }),
    })
    expect((await get(`${s.url}/page`)).body).toBe('<p>news1|footer</p>')
    expect((await get(`${s.url}/page`)).body).toBe('<p>news1|footer</p>')

    const byUrl = await admin(s, '/purge', { urls: ['/frag/news'] })
    expect(byUrl.status).toBe(200)
    expect(byUrl.json['purged']).toBe(1)
    expect((await get(`${s.url}/page`)).body).toBe('<p>news2|footer</p>')

    const byTag = await admin(s, '/purge', { tags: ['news'] })
    expect(byTag.json['purged']).toBe(1)
    const after = await get(`${s.url}/page`)
    expect(after.body).toBe('<p>news3|footer</p>')
    expect(after.headers['surrogate-key']).toBeUndefined()
    expect(o.hits('/page')).toBe(1)
    expect(o.hits('/frag/footer')).toBe(1)
  })

  it('fetches a private per-user fragment per request: two users each see their own greeting', async () => {
    const { o, s } = await setup({
      '/page': template('<header><esi:include src="/frag/greet"/></header><esi:include src="/frag/nav"/>'),
      '/frag/greet': text((req) => `Hello ${/user=(\w+)/.exec(req.headers.cookie ?? '')?.[1] ?? 'guest'}`, 'private, max-age=60'),
      '/frag/nav': text('NAV', 'public, max-age=60'),
    })
    const alice = { cookie: 'user=alice' }
    const bob = { cookie: 'theme=dark; user=bob' }
    expect((await get(`${s.url}/page`, alice)).body).toBe('<header>Hello alice</header>NAV')
    expect((await get(`${s.url}/page`, bob)).body).toBe('<header>Hello bob</header>NAV')
    const again = await get(`${s.url}/page`, alice)
    expect(again.body).toBe('<header>Hello alice</header>NAV')
    expect((await get(`${s.url}/page`)).body).toBe('<header>Hello guest</header>NAV')
    expect(String(again.headers['cache-control'])).toMatch(/\bprivate\b/)
    expect(o.hits('/frag/greet')).toBe(4)
    expect(o.hits('/frag/nav')).toBe(1)
    expect(o.hits('/page')).toBe(1)
  })
})

describe('ESI security (SSRF)', () => {
  it('refuses link-local and non-allowed absolute includes without contacting them; alt is used', async () => {
    const other = await routedOrigin({ '/x': text('OTHER') })
    const { o, s } = await setup({
      '/page': template(
        '[<esi:include src="http://169.254.169.254/latest/meta-data/"/>]' +
          '[<esi:include src="http://169.254.169.254/" alt="/frag/alt"/>]' +
          `[<esi:include src="http://127.0.0.1:${other.port}/x"/>]` +
          `[<esi:include src="http://localhost:${other.port}/x" alt="/frag/alt"/>]` +
          '[<esi:include src="file:///etc/passwd"/>]',
      ),
      '/frag/alt': text('ALT'),
    })
    const t0 = performance.now()
    const r = await get(`${s.url}/page`)
    expect(r.status).toBe(200)
    expect(r.body).toBe('[][ALT][][ALT][]')
    // Refused, not attempted: no connect timeout to wait for.
    expect(performance.now() - t0).toBeLessThan(2000)
    expect(other.hits()).toBe(0)
    expect(o.hits('/frag/alt')).toBe(1)
    expect(o.requests.every((q) => !q.url.includes('169.254'))).toBe(true)
  })

  it('fetches an absolute include from a host in esi.allowedHosts', async () => {
    const other = await routedOrigin({ '/x': text('OTHER', 'public, max-age=60') })
    const o = await routedOrigin({ '/page': template(`[<esi:include src="http://127.0.0.1:${other.port}/x"/>]`) })
    const s = await strataFor(o, { esi: { allowedHosts: [`127.0.0.1:${other.port}`] } })
    expect((await get(`${s.url}/page`)).body).toBe('[OTHER]')
    expect((await get(`${s.url}/page`)).body).toBe('[OTHER]')
    // Cached under its own key like any fragment.
    expect(other.hits('/x')).toBe(1)
    expect(other.requests[0]!.headers['surrogate-capability']).toBe('strata="ESI/1.0"')
  })

  it('sends Cookie and Authorization to same-origin includes only, unless the host is in esi.credentialHosts', async () => {
    const other = await routedOrigin({ '/x': text('OTHER', 'private') })
    const o = await routedOrigin({
      '/page': template(`[<esi:include src="/own"/>|<esi:include src="http://127.0.0.1:${other.port}/x"/>]`, 'private'),
      '/own': text('OWN', 'private'),
    })
    const creds = { cookie: 'sid=s3cret', authorization: 'Bearer t0ken', 'accept-language': 'de' }
    const received = (origin: Origin, path: string) => origin.requests.filter((q) => q.url === path).map((q) => [q.headers['cookie'], q.headers['authorization'], q.headers['accept-language']])

    const plain = await strataFor(o, { esi: { allowedHosts: [`127.0.0.1:${other.port}`] } })
    expect((await get(`${plain.url}/page`, creds)).body).toBe('[OWN|OTHER]')
    expect(received(o, '/own')).toEqual([['sid=s3cret', 'Bearer t0ken', 'de']])
    expect(received(other, '/x')).toEqual([[undefined, undefined, 'de']])

    const trusted = await strataFor(o, { esi: { allowedHosts: [`127.0.0.1:${other.port}`], credentialHosts: [`127.0.0.1:${other.port}`] } })
    expect((await get(`${trusted.url}/page`, creds)).body).toBe('[OWN|OTHER]')
    expect(received(other, '/x')).toEqual([[undefined, undefined, 'de'], ['sid=s3cret', 'Bearer t0ken', 'de']])
  })
})

describe('ESI nesting', () => {
  it('cuts an include cycle (a page including itself through a fragment) without hanging', async () => {
    const { o, s } = await setup({
      '/page': template('P[<esi:include src="/frag/a"/>]'),
      '/frag/a': template('A[<esi:include src="/frag/b"/>]'),
      '/frag/b': template('B[<esi:include src="/frag/a"/>|<esi:include src="/page"/>]'),
    })
    const r = await get(`${s.url}/page`)
    expect(r.status).toBe(200)
    expect(r.body).toBe('P[A[B[|]]]')
    expect(o.hits('/frag/a')).toBe(1)
    expect(o.hits('/page')).toBe(1)
  })

  it('stops at esi.maxDepth', async () => {
    const routes: Record<string, Route> = {}
    for (let i = 0; i < 6; i++) routes[`/d/${i}`] = template(`${i}(<esi:include src="/d/${i + 1}"/>)`)
    routes['/d/6'] = text('6')
    const { o, s } = await setup(routes, { esi: { maxDepth: 2 } })
    const r = await get(`${s.url}/d/0`)
    expect(r.status).toBe(200)
    expect(r.body).toBe('0(1(2()))')
    expect(o.hits('/d/3')).toBe(0)
  })
})

describe('ESI failures', () => {
  it("a fragment's 500 emits nothing without alt, and the alt with one", async () => {
    const { o, s } = await setup({
      '/page': template('[<esi:include src="/frag/boom"/>][<esi:include src="/frag/boom" alt="/frag/alt"/>][<esi:include src="/frag/ok"/>]'),
      '/frag/boom': (_req, res) => {
        res.writeHead(500, { 'content-type': 'text/plain' })
        res.end('ORIGIN ERROR PAGE')
      },
      '/frag/alt': text('ALT'),
      '/frag/ok': text('OK'),
    })
    const r = await get(`${s.url}/page`)
    expect(r.status).toBe(200)
    expect(r.body).toBe('[][ALT][OK]')
    expect(o.hits('/frag/boom')).toBeGreaterThanOrEqual(1)
  })

  it('esi.onError: "fail" answers 502 when a fragment fails before any byte was sent', async () => {
    const { s } = await setup(
      {
        '/page': template('<esi:include src="/frag/boom"/><p>rest</p>'),
        '/recovered': template('<esi:include src="/frag/boom" alt="/frag/ok"/><p>rest</p>'),
        '/frag/boom': (_req, res) => {
          res.writeHead(500)
          res.end('no')
        },
        '/frag/ok': text('OK'),
      },
      { esi: { onError: 'fail' } },
    )
    const r = await get(`${s.url}/page`)
    expect(r.status).toBe(502)
    expect(JSON.parse(r.body).error).toBe('STRATA_ESI_FRAGMENT_FAILED')
    expect(r.body).not.toContain('rest')
    // An alt still recovers the include under "fail".
    expect((await get(`${s.url}/recovered`)).body).toBe('OK<p>rest</p>')
    // And the failing page keeps failing from the cached template (no crash, no stale state).
    expect((await get(`${s.url}/page`)).status).toBe(502)
  })
})

describe('ESI encodings and headers', () => {
  it('decodes gzip templates and fragments from the origin', async () => {
    const gz = (body: string, headers: Record<string, string>): Route => (_req, res) => {
      res.writeHead(200, { ...headers, 'content-encoding': 'gzip', vary: 'Accept-Encoding' })
      res.end(gzipSync(body))
    }
    const { s } = await setup({
      '/page': gz('<p><esi:include src="/frag/z"/>|<esi:include src="/frag/plain"/></p>', { ...ESI, 'cache-control': 'public, max-age=60' }),
      '/frag/z': gz('ZIPPED', { 'content-type': 'text/html', 'cache-control': 'public, max-age=60' }),
      '/frag/plain': text('PLAIN'),
    })
    for (const headers of [{}, { 'accept-encoding': 'gzip' }, {}, { 'accept-encoding': 'gzip, br' }]) {
      const r = await get(`${s.url}/page`, headers)
      expect(r.status).toBe(200)
      expect(r.headers['content-encoding']).toBeUndefined()
      expect(r.body).toBe('<p>ZIPPED|PLAIN</p>')
    }
  })

  it('esi.compress: true gzips the assembled page for clients that accept gzip only', async () => {
    const { s } = await setup(
      { '/page': template('<p>' + 'a'.repeat(500) + '<esi:include src="/frag/a"/></p>'), '/frag/a': text('A') },
      { esi: { compress: true } },
    )
    const expected = '<p>' + 'a'.repeat(500) + 'A</p>'
    const zipped = await get(`${s.url}/page`, { 'accept-encoding': 'gzip' })
    expect(zipped.headers['content-encoding']).toBe('gzip')
    expect(String(zipped.headers['vary'])).toMatch(/accept-encoding/i)
    expect(gunzipSync(zipped.raw).toString()).toBe(expected)
    const plain = await get(`${s.url}/page`)
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.body).toBe(expected)
    const refused = await get(`${s.url}/page`, { 'accept-encoding': 'gzip;q=0, identity' })
    expect(refused.headers['content-encoding']).toBeUndefined()
    expect(refused.body).toBe(expected)
  })

  it('the assembled page has no Content-Length/ETag/Last-Modified and a Cache-Control computed from its parts', async () => {
    const { s } = await setup({
      '/page': template('<esi:include src="/frag/a"/><esi:include src="/frag/b"/>', 'public, max-age=60', {
        etag: '"tpl-1"',
        'last-modified': 'Tue, 01 Jul 2025 10:00:00 GMT',
      }),
      '/mixed': template('<esi:include src="/frag/a"/><esi:include src="/frag/me"/>', 'public, max-age=60'),
      '/frag/a': text('A', 'public, max-age=30', { etag: '"a"' }),
      '/frag/b': text('B', 'public, max-age=10, s-maxage=300'),
      '/frag/me': text('ME', 'private, max-age=20'),
    })
    await get(`${s.url}/page`) // fill template and fragments
    const miss = await get(`${s.url}/mixed`)
    for (const r of [await get(`${s.url}/page`), miss]) {
      expect(r.status).toBe(200)
      expect(r.headers['content-length']).toBeUndefined()
      expect(r.headers['transfer-encoding']).toBe('chunked')
      expect(r.headers['etag']).toBeUndefined()
      expect(r.headers['last-modified']).toBeUndefined()
      expect(r.headers['accept-ranges']).toBeUndefined()
    }
    // All parts cached: the exact lifetime of the shortest-lived part, and public.
    const page = await get(`${s.url}/page`)
    expect(page.body).toBe('AB')
    expect(page.headers['cache-control']).toBe('max-age=10')
    // Any private part makes the page private. A part still being fetched when the first byte is
    // ready (here the per-request private fragment) cannot be known yet: the headers, sent first,
    // then say "private, max-age=0".
    const mixed = await get(`${s.url}/mixed`)
    expect(mixed.body).toBe('AME')
    expect(mixed.headers['cache-control']).toBe('private, max-age=0')
    expect(miss.headers['cache-control']).toBe('private, max-age=0')
  })

  it('a conditional GET never gets a 304 from the template: the assembled page has no validators', async () => {
    let n = 0
    const { s } = await setup({
      '/page': template('<p><esi:include src="/frag/n"/></p>', 'public, max-age=60', { etag: '"tpl"', 'last-modified': 'Tue, 01 Jul 2025 10:00:00 GMT' }),
      '/frag/n': text(() => `n${++n}`, 'no-store'),
    })
    expect((await get(`${s.url}/page`)).body).toBe('<p>n1</p>')
    const ims = await get(`${s.url}/page`, { 'if-modified-since': new Date().toUTCString() })
    expect(ims.status).toBe(200)
    expect(ims.body).toBe('<p>n2</p>')
    const inm = await get(`${s.url}/page`, { 'if-none-match': '"tpl"' })
    expect(inm.status).toBe(200)
    expect(inm.body).toBe('<p>n3</p>')
  })

  it('a Range request gets the whole assembled page (the range applied to the template only)', async () => {
    const { s } = await setup({ '/page': template('<p><esi:include src="/frag/a"/></p>'), '/frag/a': text('AAAA') })
    await get(`${s.url}/page`)
    for (const range of ['bytes=0-3', 'bytes=5000-']) {
      const r = await get(`${s.url}/page`, { range })
      expect(r.status, range).toBe(200)
      expect(r.headers['content-range'], range).toBeUndefined()
      expect(r.body, range).toBe('<p>AAAA</p>')
    }
  })

  it('HEAD on an ESI page answers without a body and without crashing, before and after it is cached', async () => {
    const { s } = await setup({
      '/page': template('<p><esi:include src="/frag/a"/></p>', 'public, max-age=60', { etag: '"tpl"' }),
      '/cold': template('<p><esi:include src="/frag/a"/></p>'),
      '/frag/a': text('A'),
    })
    await get(`${s.url}/page`)
    for (const path of ['/page', '/cold', '/cold']) {
      const head = await get(`${s.url}${path}`, {}, 'HEAD')
      expect(head.status, path).toBe(200)
      expect(head.raw.length).toBe(0)
      expect(head.headers['surrogate-control']).toBeUndefined()
      // HEAD describes what GET would send (RFC 9110 §9.3.2): not the template's length or validators.
      expect(head.headers['content-length'], path).toBeUndefined()
      expect(head.headers['etag'], path).toBeUndefined()
    }
    // The server is still fine afterwards.
    expect((await get(`${s.url}/cold`)).body).toBe('<p>A</p>')
  })
})
