import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { gzipSync } from 'node:zlib'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { spawnStrata, type StrataProcess } from '../helpers/strata-process.js'

/**
 * Issue #10 item 3: an origin that sends its head and part of its body, then drops the socket,
 * ends that one response and never the process. strata runs as its own process (`strata serve`,
 * the compiled bin), so an uncaught exception shows as a dead child with its stack on stderr;
 * after each failure the same process must still answer the next request.
 */

const PAGE = Buffer.from('<p>' + 'x'.repeat(64 * 1024) + '</p>')
const GZ = gzipSync(Buffer.from('<p>' + 'stream me '.repeat(20_000) + '</p>'))
const ESI = { 'content-type': 'text/html', 'surrogate-control': 'content="ESI/1.0"' }

/** Writes the head and the first part of `body`, then destroys the socket mid-body. */
function cut(res: ServerResponse, headers: Record<string, string>, body: Buffer): void {
  res.writeHead(200, { ...headers, 'content-length': String(body.length) })
  res.write(body.subarray(0, body.length >> 2), () => setImmediate(() => res.socket?.destroy()))
}

type Route = (req: IncomingMessage, res: ServerResponse, n: number) => void

/** Counts requests per path so a route can answer differently the second time. */
function routes(table: Record<string, Route>): (req: IncomingMessage, res: ServerResponse) => void {
  const seen = new Map<string, number>()
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!
    const n = (seen.get(path) ?? 0) + 1
    seen.set(path, n)
    const route = table[path]
    if (route !== undefined) return route(req, res, n)
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' })
    res.end('ok')
  }
}

const table: Record<string, Route> = {
  '/plain': (_q, r) => cut(r, { 'content-type': 'text/html', 'cache-control': 'public, max-age=60' }, PAGE),
  '/uncacheable': (_q, r) => cut(r, { 'content-type': 'text/html', 'cache-control': 'private' }, PAGE),
  '/gzip': (_q, r) => cut(r, { 'content-type': 'text/html', 'content-encoding': 'gzip', 'cache-control': 'public, max-age=60' }, GZ),
  '/gzip-private': (_q, r) => cut(r, { 'content-type': 'text/html', 'content-encoding': 'gzip', 'cache-control': 'private' }, GZ),
  '/template-gzip': (_q, r) => cut(r, { ...ESI, 'content-encoding': 'gzip', 'cache-control': 'public, max-age=60' }, GZ),
  '/page': (_q, r) => {
    r.writeHead(200, { ...ESI, 'cache-control': 'public, max-age=60' })
    r.end('<html><esi:include src="/fragment"/></html>')
  },
  '/fragment': (_q, r) => cut(r, { 'content-type': 'text/html', 'content-encoding': 'gzip', 'cache-control': 'public, max-age=60' }, GZ),
  '/compressed-page': (_q, r) => {
    r.writeHead(200, { ...ESI, 'cache-control': 'public, max-age=60' })
    r.end('<html>first bytes out<esi:include src="/late-fragment"/></html>')
  },
  // Sends its head at once (the page's first bytes go out), then fails mid-body.
  '/late-fragment': (_q, r) => {
    r.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'public, max-age=60', 'content-length': '100000' })
    r.write('partial', () => setTimeout(() => r.socket?.destroy(), 50))
  },
  // Labelled gzip, but not gzip: gunzip fails on the miss and on every hit of the stored copy.
  '/bad-gzip': (_q, r) => {
    r.writeHead(200, { 'content-type': 'text/html', 'content-encoding': 'gzip', 'cache-control': 'public, max-age=60' })
    r.end('this is not gzip at all')
  },
  '/bad-gzip-template': (_q, r) => {
    r.writeHead(200, { ...ESI, 'content-encoding': 'gzip', 'cache-control': 'public, max-age=60' })
    r.end('<html>not gzip <esi:include src="/fragment"/></html>')
  },
  '/pass': (_q, r) => cut(r, { 'content-type': 'application/json' }, PAGE),
  '/revalidate': (_q, r, n) => {
    if (n === 1) {
      r.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'max-age=0, must-revalidate', etag: '"v1"' })
      r.end('version one')
    } else cut(r, { 'content-type': 'text/html', 'cache-control': 'max-age=0, must-revalidate', etag: '"v2"' }, PAGE)
  },
  '/revalidate-gzip': (_q, r, n) => {
    if (n === 1) {
      r.writeHead(200, { 'content-type': 'text/html', 'content-encoding': 'gzip', 'cache-control': 'max-age=0, must-revalidate', etag: '"v1"' })
      r.end(gzipSync('version one'))
    } else cut(r, { 'content-type': 'text/html', 'content-encoding': 'gzip', 'cache-control': 'max-age=0, must-revalidate', etag: '"v2"' }, GZ)
  },
  '/grace': (_q, r, n) => {
    if (n === 1) {
      r.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'max-age=0, stale-while-revalidate=60', etag: '"v1"' })
      r.end('version one')
    } else cut(r, { 'content-type': 'text/html', 'content-encoding': 'gzip', 'cache-control': 'max-age=0, stale-while-revalidate=60' }, GZ)
  },
}

/** One request; a cut response is an outcome like any other (status, or the error's code). */
async function attempt(url: string, opts: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string } = {}): Promise<string> {
  try {
    const res = await request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {}, body: opts.body ?? null })
    await res.body.arrayBuffer()
    return String(res.statusCode)
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message
  }
}

interface Case {
  name: string
  /** Requests before the failing one (to store an entry to revalidate). */
  prime?: string[]
  path: string
  headers?: Record<string, string>
  method?: 'GET' | 'POST'
  /** Answered from the cache while the failing fetch runs in the background. */
  servedStale?: boolean
}

const NO_GZIP = { 'accept-encoding': 'identity' }
const GZIP = { 'accept-encoding': 'gzip' }

const cases: Case[] = [
  { name: 'plain cacheable miss', path: '/plain' },
  { name: 'uncacheable miss', path: '/uncacheable' },
  { name: 'gzip → gunzip for a client without gzip (cacheable)', path: '/gzip', headers: NO_GZIP },
  { name: 'gzip → gunzip for a client without gzip (uncacheable)', path: '/gzip-private', headers: NO_GZIP },
  { name: 'ESI template (gzip) for a client without gzip', path: '/template-gzip', headers: NO_GZIP },
  { name: 'ESI template (gzip) for a gzip client', path: '/template-gzip', headers: GZIP },
  { name: 'ESI fragment (gzip)', path: '/page', headers: NO_GZIP },
  { name: 'esi.compress with onError "fail" tripping mid-page', path: '/compressed-page', headers: GZIP },
  { name: 'corrupt gzip (miss, then hit) for a client without gzip', path: '/bad-gzip', headers: NO_GZIP },
  { name: 'corrupt gzip ESI template', path: '/bad-gzip-template', headers: NO_GZIP },
  { name: 'pass-through (POST)', path: '/pass', method: 'POST' },
  { name: 'revalidation', prime: ['/revalidate'], path: '/revalidate' },
  { name: 'revalidation, gzip for a client without gzip', prime: ['/revalidate-gzip'], path: '/revalidate-gzip', headers: NO_GZIP },
  { name: 'background (grace) refresh', prime: ['/grace', '/grace'], path: '/grace', headers: NO_GZIP, servedStale: true },
]

describe('an origin failing mid-body ends one response, never the process', () => {
  // One strata process for every path (each case uses its own URLs): spawning one per case costs
  // seconds on a busy machine. A crash on one path fails that case and, visibly, the ones after it.
  let origin: Origin
  let s: StrataProcess
  beforeAll(async () => {
    origin = await startOrigin(routes(table))
    s = await spawnStrata([origin.url], { esi: { onError: 'fail', compress: true }, cache: { grace: 60 } })
  })
  afterAll(async () => {
    await s?.stop()
    await origin?.close()
  })

  it.each(cases)('$name', async (c) => {
    expect(s.alive()).toBe(true)
    const opts = { method: c.method ?? 'GET', headers: c.headers ?? {}, ...(c.method === 'POST' ? { body: '{}' } : {}) } as const
    for (const p of c.prime ?? []) await attempt(s.url + p, { headers: c.headers ?? {} })
    const outcome = await attempt(s.url + c.path, opts)
    // The failing response is cut (a socket error) or answered with an error status, never a 200 in
    // full; a grace hit is served from the stale copy while the refresh fails behind it.
    if (c.servedStale === true) expect(outcome).toBe('200')
    else expect(outcome).not.toBe('200')
    // The process answers the next request (a crash would refuse the connection)...
    expect(await attempt(`${s.url}/ok`)).toBe('200')
    // ...and the failed path again, still alive afterwards.
    await attempt(s.url + c.path, opts)
    expect(await attempt(`${s.url}/ok`)).toBe('200')
    expect(s.stderr()).not.toMatch(/uncaught|Error:/i)
    expect(s.alive()).toBe(true)
  })
})
