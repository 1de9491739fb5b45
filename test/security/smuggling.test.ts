import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readBody } from '../helpers/origin.js'
import { startBehind } from '../helpers/strata.js'
import { exchange } from './raw.js'

/**
 * A raw-socket corpus of request-smuggling and parsing tricks. For each: strata answers 4xx (or
 * just closes), the origin never sees the request, and a new connection is served as usual. The
 * requests the origin does see are checked byte for byte: one request, the declared body.
 */
type Running = Awaited<ReturnType<typeof startBehind>>

const big = (n: number) => 'a'.repeat(n)

/** [name, bytes]: each must be refused with a 4xx or a closed connection, never forwarded. */
const REFUSED: [string, string][] = [
  ['CL.TE (Content-Length then Transfer-Encoding)', 'POST /cl-te HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG'],
  ['TE.CL (Transfer-Encoding then Content-Length)', 'POST /te-cl HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n'],
  ['Transfer-Encoding: chunked, identity', 'POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding: identity, chunked', 'POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n'],
  ['two Transfer-Encoding lines', 'POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding with a space before the colon', 'POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n'],
  ['an obfuscated Transfer-Encoding value', 'POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n'],
  ['obs-fold in a field value', 'GET /fold HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n'],
  ['obs-fold hiding Transfer-Encoding', 'POST /fold HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n'],
  ['a bare LF inside the head', 'GET /lf HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n'],
  ['a bare CR inside the head', 'GET /cr HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n'],
  ['a NUL in a field value', 'GET /nul HTTP/1.1\r\nHost: a\r\nX-A: b\u0000c\r\n\r\n'],
  ['a NUL in the target', 'GET /n\u0000ul HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['a chunk size that overflows 64 bits', 'POST /chunk HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nx\r\n0\r\n\r\n'],
  ['a negative chunk size', 'POST /chunk HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n'],
  ['a 0x-prefixed chunk size', 'POST /chunk HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\nx\r\n0\r\n\r\n'],
  ['a huge chunk extension', `POST /ext HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;${big(70_000)}\r\nx\r\n0\r\n\r\n`],
  ['a header name with a space inside', 'GET /sp HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n'],
  ['Content-Length with a space before the colon', 'POST /sp HTTP/1.1\r\nHost: a\r\nContent-Length : 1\r\n\r\nx'],
  ['Content-Length with a sign', 'POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx'],
  ['a Content-Length list', 'POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx'],
  ['two different Content-Length lines', 'POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy'],
  ['a Host with userinfo', 'GET /host HTTP/1.1\r\nHost: a@b.example\r\n\r\n'],
  ['a Host list', 'GET /host HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n'],
  ['two Host lines', 'GET /host HTTP/1.1\r\nHost: a.example\r\nhost: b.example\r\n\r\n'],
  ['an absolute-form target disagreeing with Host', 'GET http://b.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n'],
  ['a head larger than the server accepts', `GET /big HTTP/1.1\r\nHost: a\r\nX-Big: ${big(70_000)}\r\n\r\n`],
  ['CONNECT', 'CONNECT b.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n'],
  ['an HTTP/1.1 request line with junk after the version', 'GET /v HTTP/1.1 x\r\nHost: a\r\n\r\n'],
]

describe('request smuggling and parsing corpus (raw sockets)', () => {
  let run: Running
  let port: number
  /** Requests the origin saw, with their bodies. */
  const seen: { method: string; url: string; body: string; headers: Record<string, unknown> }[] = []
  beforeAll(async () => {
    run = await startBehind(
      [
        async (req, res) => {
          const body = (await readBody(req)).toString('latin1')
          seen.push({ method: req.method ?? '', url: req.url ?? '', body, headers: { ...req.headers } })
          const text = `${req.method} ${req.url} ${body.length}`
          res.writeHead(200, { 'content-length': String(text.length), 'cache-control': 'no-store' })
          res.end(text)
        },
      ],
      { log: { level: 'silent' } },
    )
    port = Number(new URL(run.s.url).port)
  })
  afterAll(() => run.close())

  /** A plain request on a new connection still works. */
  async function stillServes(): Promise<void> {
    const r = await exchange(port, 'GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    expect(r.statuses).toEqual([200])
  }

  it.each(REFUSED)('refuses %s: 4xx or closed, nothing forwarded, the next connection is served', async (_name, bytes) => {
    const before = seen.length
    const r = await exchange(port, bytes)
    for (const status of r.statuses) expect(status).toBeGreaterThanOrEqual(400)
    expect(seen.length).toBe(before)
    await stillServes()
  })

  it('pipelined requests after an error: the first is answered, the bad one refused, nothing after it is read', async () => {
    const before = seen.length
    const r = await exchange(
      port,
      'GET /first HTTP/1.1\r\nHost: a\r\n\r\n' +
        'GET /bad HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n' +
        'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n',
    )
    expect(r.statuses).toEqual([200, 400])
    expect(seen.slice(before).map((s) => s.url)).toEqual(['/first'])
    await stillServes()
  })

  it('pipelined requests after a parse error: nothing after the error reaches the origin', async () => {
    const before = seen.length
    const r = await exchange(
      port,
      'GET /first HTTP/1.1\r\nHost: a\r\n\r\n' +
        'POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' +
        'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n',
    )
    // Node's parser answers the error at once, possibly before the first response is written;
    // what matters is that nothing after the error is read as a request.
    expect(r.statuses.at(-1)).toBe(400)
    expect(seen.slice(before).map((s) => s.url).filter((u) => u !== '/first')).toEqual([])
    await stillServes()
  })

  it('an unknown expectation is refused with 417 and its body, even one that looks like a request, is never forwarded', async () => {
    const before = seen.length
    const inner = 'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n'
    const r = await exchange(port, `POST /expect HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: ${inner.length}\r\n\r\n${inner}GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`)
    expect(r.statuses[0]).toBe(417)
    expect(seen.slice(before).map((s) => s.url)).not.toContain('/smuggled')
    expect(seen.slice(before).map((s) => s.url)).not.toContain('/expect')
    await stillServes()
  })

  it('a body that is itself a request is forwarded as that body, never as a second request', async () => {
    const before = seen.length
    const inner = 'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n'
    const r = await exchange(port, `POST /outer HTTP/1.1\r\nHost: a\r\nContent-Length: ${inner.length}\r\nConnection: close\r\n\r\n${inner}`)
    expect(r.statuses).toEqual([200])
    expect(seen.slice(before).map((s) => [s.url, s.body])).toEqual([['/outer', inner]])
  })

  it('chunked bodies with extensions and trailers reach the origin as exactly the declared bytes', async () => {
    const before = seen.length
    const r = await exchange(port, 'POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n')
    expect(r.statuses).toEqual([200])
    const got = seen.slice(before)
    expect(got.map((s) => [s.method, s.url, s.body])).toEqual([['POST', '/chunked', 'abcde']])
    expect(got[0]!.headers['x-trailer']).toBeUndefined()
  })

  it('Expect: 100-continue is answered by strata (100, then the answer) and never forwarded', async () => {
    const before = seen.length
    const r = await exchange(port, 'POST /expect HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc')
    expect(r.statuses).toEqual([100, 200])
    const got = seen.slice(before)
    expect(got.map((s) => [s.url, s.body])).toEqual([['/expect', 'abc']])
    expect(got[0]!.headers['expect']).toBeUndefined()
  })

  it('Expect: 100-continue on a GET without a body, followed by a pipelined request: two answers, two requests', async () => {
    const before = seen.length
    const r = await exchange(port, 'GET /e1 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\nGET /e2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    expect(r.statuses.filter((s) => s !== 100)).toEqual([200, 200])
    expect(seen.slice(before).map((s) => [s.url, s.body])).toEqual([['/e1', ''], ['/e2', '']])
  })
})
