import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { startBehind } from '../helpers/strata.js'
import { exchange, lastBody } from './raw.js'

type Running = Awaited<ReturnType<typeof startBehind>>

/** GET through strata with exact headers (raw, so nothing is added or refused by a client library). */
async function rawGet(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: string; text: string }> {
  const lines = Object.entries({ ...headers, connection: headers['connection'] ?? 'close' }).map(([k, v]) => `${k}: ${v}\r\n`)
  const r = await exchange(port, `GET ${path} HTTP/1.1\r\n${lines.join('')}\r\n`)
  return { status: r.statuses[0] ?? 0, body: lastBody(r.text), text: r.text }
}

const portOf = (url: string) => Number(new URL(url).port)

describe('Connection cannot remove what the cache key and the Vary match depend on (issue #10 item 1)', () => {
  let run: Running
  let port: number
  beforeAll(async () => {
    run = await startBehind([
      (req, res) => {
        if (req.url === '/lang') {
          const body = `lang=${req.headers['accept-language'] ?? 'none'}`
          res.writeHead(200, { 'cache-control': 'public, max-age=60', vary: 'Accept-Language', 'content-length': String(body.length) })
          return res.end(body)
        }
        const body = `site=${req.headers.host}`
        res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-length': String(body.length) })
        res.end(body)
      },
    ])
    port = portOf(run.s.url)
  })
  afterAll(() => run.close())

  it('a Host named in Connection still reaches the origin, so no other site is stored under it', async () => {
    const attack = await rawGet(port, '/home', { host: 'victim.example', connection: 'close, host' })
    expect(attack.status).toBe(200)
    expect(run.origins[0]!.requests.at(-1)!.headers.host).toBe('victim.example')
    const visitor = await rawGet(port, '/home', { host: 'victim.example' })
    expect(visitor.body).toBe('site=victim.example')
  })

  it('a Vary field named in Connection does not choose the variant the answer is stored under', async () => {
    const attack = await rawGet(port, '/lang', { host: 'shop.example', 'accept-language': 'fr', connection: 'close, accept-language' })
    // The origin never saw the field: its answer is the one for no Accept-Language...
    expect(attack.body).toBe('lang=none')
    expect(run.origins[0]!.requests.at(-1)!.headers['accept-language']).toBeUndefined()
    // ...and a French visitor gets the French page, not that one.
    const fr = await rawGet(port, '/lang', { host: 'shop.example', 'accept-language': 'fr' })
    expect(fr.body).toBe('lang=fr')
    const none = await rawGet(port, '/lang', { host: 'shop.example' })
    expect(none.body).toBe('lang=none')
    expect(none.text).toMatch(/\r\nx-cache: HIT\r\n/i)
  })
})

describe('unkeyed and forwarding headers (issue #10 item 2)', () => {
  const reflect = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    const h = req.headers
    const body = JSON.stringify({
      xhost: h['x-host'], xoriginal: h['x-original-url'], xrewrite: h['x-rewrite-url'], forwarded: h['forwarded'],
      xfh: h['x-forwarded-host'], xfport: h['x-forwarded-port'], xfprefix: h['x-forwarded-prefix'], xfproto: h['x-forwarded-proto'], xff: h['x-forwarded-for'],
    })
    res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) })
    res.end(body)
  }
  const evil = {
    'x-host': 'evil.example', 'x-original-url': '/admin', 'x-rewrite-url': '/admin', forwarded: 'for=1.2.3.4;host=evil.example;proto=https',
    'x-forwarded-host': 'evil.example', 'x-forwarded-port': '8443', 'x-forwarded-prefix': '/evil', 'x-forwarded-proto': 'https', 'x-forwarded-for': '1.2.3.4',
  }

  it('from a client that is not a trusted proxy, none of them reaches the origin and the cached page is clean', async () => {
    const run = await startBehind([reflect])
    try {
      const port = portOf(run.s.url)
      const attack = await rawGet(port, '/page', { host: 'shop.example', ...evil })
      expect(attack.status).toBe(200)
      const seen = JSON.parse(attack.body) as Record<string, string | undefined>
      expect(seen).toEqual({ xfh: 'shop.example', xfproto: 'http', xff: '127.0.0.1' })
      const visitor = await rawGet(port, '/page', { host: 'shop.example' })
      expect(visitor.text).toMatch(/\r\nx-cache: HIT\r\n/i)
      expect(visitor.body).not.toContain('evil')
      expect(visitor.body).not.toContain('1.2.3.4')
    } finally {
      await run.close()
    }
  })

  it('from a trustProxy peer, Forwarded and X-Forwarded-* are kept and appended to; X-Host & co still never pass', async () => {
    const run = await startBehind([reflect], { trustProxy: ['127.0.0.0/8'], cache: { enabled: false } })
    try {
      const attack = await rawGet(portOf(run.s.url), '/page', { host: 'shop.example', ...evil })
      const seen = JSON.parse(attack.body) as Record<string, string | undefined>
      expect(seen).toEqual({
        forwarded: 'for=1.2.3.4;host=evil.example;proto=https, for=127.0.0.1;host="shop.example";proto=http',
        xfh: 'evil.example', xfport: '8443', xfprefix: '/evil', xfproto: 'https', xff: '1.2.3.4, 127.0.0.1',
      })
    } finally {
      await run.close()
    }
  })

  it('a peer outside every trustProxy range is not believed', async () => {
    const run = await startBehind([reflect], { trustProxy: ['10.0.0.0/8', '192.0.2.7'], cache: { enabled: false } })
    try {
      const r = await rawGet(portOf(run.s.url), '/page', { host: 'shop.example', ...evil })
      expect(JSON.parse(r.body)).toEqual({ xfh: 'shop.example', xfproto: 'http', xff: '127.0.0.1' })
    } finally {
      await run.close()
    }
  })
})

describe('one canonical request target (issue #10 item 6)', () => {
  let run: Running
  let port: number
  let n = 0
  beforeAll(async () => {
    run = await startBehind([
      (req, res) => {
        if (req.method === 'POST') {
          res.writeHead(204)
          return res.end()
        }
        const body = `${req.url} #${++n}`
        res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-length': String(body.length) })
        res.end(body)
      },
    ])
    port = portOf(run.s.url)
  })
  afterAll(() => run.close())
  const admin = async (body: unknown) => {
    const res = await request(`${run.s.adminUrl}/purge`, { method: 'POST', headers: { authorization: `Bearer ${run.s.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return (await res.body.json()) as { purged: number }
  }

  it('dot segments, escaped unreserved characters, host case and the default port share one entry, sent upstream canonical', async () => {
    const before = run.origins[0]!.hits()
    const first = await rawGet(port, '/c/./x/../%7Ep', { host: 'Canon.Example:80' })
    expect(first.body).toMatch(/^\/c\/~p #/)
    expect(run.origins[0]!.requests.at(-1)!.url).toBe('/c/~p')
    for (const [path, host] of [['/c/~p', 'canon.example'], ['/c/%7ep', 'canon.example:80'], ['/c/x/y/../../~p', 'CANON.EXAMPLE']] as const) {
      const r = await rawGet(port, path, { host })
      expect(r.text).toMatch(/\r\nx-cache: HIT\r\n/i)
      expect(r.body).toBe(first.body)
    }
    expect(run.origins[0]!.hits()).toBe(before + 1)
  })

  it('a purge of a non-canonical URL removes what a non-canonical request stored', async () => {
    await rawGet(port, '/p/./q', { host: 'purge.example:80' })
    expect((await rawGet(port, '/p/q', { host: 'purge.example' })).text).toMatch(/x-cache: HIT/i)
    expect((await admin({ urls: ['http://PURGE.example:80/p/%71'] })).purged).toBe(1)
    expect((await rawGet(port, '/p/q', { host: 'purge.example' })).text).toMatch(/x-cache: MISS/i)
    expect((await admin({ urls: ['/p/../p/q'] })).purged).toBe(1)
  })

  it('an unsafe request to a non-canonical URL invalidates the canonical entry', async () => {
    await rawGet(port, '/u/v', { host: 'unsafe.example' })
    expect((await rawGet(port, '/u/v', { host: 'unsafe.example' })).text).toMatch(/x-cache: HIT/i)
    const post = await exchange(port, 'POST /u/./w/../%76 HTTP/1.1\r\nHost: Unsafe.Example:80\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
    expect(post.statuses).toEqual([204])
    expect((await rawGet(port, '/u/v', { host: 'unsafe.example' })).text).toMatch(/x-cache: MISS/i)
  })
})

describe('502 bodies say nothing internal (issue #10, 502-body item)', () => {
  it('a dropped upstream connection answers a stable code and the table sentence, on both proxy paths; details go to the log', async () => {
    const run = await startBehind([(req) => req.socket.destroy()])
    try {
      const expected = '{"error":"STRATA_UPSTREAM_CONNECT","message":"could not connect to the upstream"}\n'
      for (const method of ['GET', 'POST']) {
        const res = await request(`${run.s.url}/drop`, { method, ...(method === 'POST' ? { body: 'x' } : {}) })
        const body = await res.body.text()
        expect(res.statusCode).toBe(502)
        expect(body).toBe(expected)
        expect(body).not.toMatch(/UND_ERR|b1|socket/i)
      }
      const errors = run.s.logs.filter((l) => l['msg'] === 'proxy error')
      expect(errors.length).toBeGreaterThanOrEqual(2)
      expect(JSON.stringify(errors)).toMatch(/UND_ERR_SOCKET|ECONNRESET/)
    } finally {
      await run.close()
    }
  })
})
