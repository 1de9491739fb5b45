import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import type { IncomingHttpHeaders } from 'node:http'
import { readBody } from '../helpers/origin.js'
import { startBehind } from '../helpers/strata.js'
import { canonicalTarget, isCanonicalTarget } from '../../src/page-cache/key.js'
import { clientRequestHeaders, connectionNamed } from '../../src/core/headers.js'
import { exchange } from './raw.js'

/** Characters that make targets and fields interesting: separators, dots, escapes, controls, bytes above ASCII. */
const TRICKY = ['/', '.', '..', '%', '%2e', '%2F', '%7e', '%zz', '?', '#', '&', '=', ' ', '\t', '\r', '\n', '\u0000', '\u007f', '\u00e9', ':', '@', '\\', ',', ';', '"']
const trickyString = (max: number) =>
  fc.array(fc.oneof(fc.constantFrom(...TRICKY), fc.stringMatching(/^[A-Za-z0-9_~-]{1,4}$/)), { maxLength: max }).map((parts) => parts.join(''))

describe('properties of the canonical target and the client headers', () => {
  it('canonicalTarget never throws, is idempotent, and leaves canonical targets alone', () => {
    fc.assert(
      fc.property(trickyString(12), (tail) => {
        const url = `/${tail}`
        const c = canonicalTarget(url)
        expect(canonicalTarget(c)).toBe(c)
        if (isCanonicalTarget(url)) expect(c).toBe(url)
        // The canonical form goes upstream: only visible ASCII, always a path.
        expect(c.startsWith('/')).toBe(true)
        expect(/[^\x21-\x7e]/.test(c)).toBe(false)
      }),
      { numRuns: 2000 },
    )
  })

  it('clientRequestHeaders keeps Host and drops every field Connection names and every forwarding field from untrusted peers', () => {
    const name = fc.constantFrom('host', 'accept-language', 'cookie', 'x-forwarded-host', 'x-forwarded-for', 'forwarded', 'x-host', 'x-original-url', 'content-length', 'x-a', 'authorization')
    fc.assert(
      fc.property(fc.dictionary(name, fc.string({ maxLength: 8 })), fc.array(name, { maxLength: 4 }), fc.boolean(), (fields, conn, trusted) => {
        const headers: Record<string, string> = { ...fields, host: 'h.example' }
        if (conn.length > 0) headers['connection'] = conn.join(', ')
        const out = clientRequestHeaders(headers, trusted)
        expect(out['host']).toBe('h.example')
        for (const n of connectionNamed(headers['connection']) ?? []) if (n !== 'content-length') expect(out[n]).toBeUndefined()
        for (const n of ['x-host', 'x-original-url']) expect(out[n]).toBeUndefined()
        if (!trusted) for (const n of Object.keys(out)) expect(n === 'forwarded' || n.startsWith('x-forwarded-')).toBe(false)
      }),
      { numRuns: 2000 },
    )
  })
})

describe('generated requests against a running strata (raw sockets)', () => {
  let run: Awaited<ReturnType<typeof startBehind>>
  let port: number
  const received: { method: string; url: string; headers: IncomingHttpHeaders; rawHeaders: string[]; body: number }[] = []
  beforeAll(async () => {
    run = await startBehind(
      [
        async (req, res) => {
          const body = await readBody(req)
          received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body: body.length })
          res.writeHead(200, { 'content-length': '2', 'cache-control': req.url?.includes('c') ? 'public, max-age=60' : 'no-store', vary: 'Accept-Language' })
          res.end('ok')
        },
      ],
      { log: { level: 'silent' } },
    )
    port = Number(new URL(run.s.url).port)
  })
  afterAll(() => run.close())

  // Mostly well-formed, so most runs get past the parser and test what is forwarded; a share of
  // each part is hostile.
  const method = fc.oneof({ arbitrary: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'), weight: 6 }, { arbitrary: fc.constantFrom('G ET', 'get', 'CONNECT', 'TRACE', 'PATCH'), weight: 1 })
  const safeSegment = fc.stringMatching(/^[A-Za-z0-9._~%-]{0,6}$/)
  const fieldName = fc.oneof(
    { arbitrary: fc.constantFrom('Accept-Language', 'Cookie', 'X-Forwarded-For', 'X-Forwarded-Host', 'Forwarded', 'X-Host', 'X-Original-URL', 'X-Rewrite-URL', 'Accept-Encoding', 'If-None-Match'), weight: 6 },
    fc.constantFrom('Host', 'host', 'Connection', 'Transfer-Encoding', 'Content-Length', 'Expect', 'Accept-Language', 'X-Forwarded-Host', 'Forwarded', 'X-Original-URL', 'Cookie', 'Te', 'Upgrade'),
    fc.stringMatching(/^[A-Za-z-]{1,10}$/),
    trickyString(3),
  )
  const fieldValue = fc.oneof(
    { arbitrary: fc.stringMatching(/^[A-Za-z0-9 ,.=;:/-]{0,12}$/), weight: 4 },
    fc.constantFrom('chunked', 'identity', 'chunked, identity', '0', '5', '-1', '100-continue', 'close, host', 'keep-alive, accept-language', 'a.example', 'a.example:80', 'fr'),
    trickyString(6),
  )
  const request = fc.record({
    method,
    target: fc.oneof(
      { arbitrary: fc.array(safeSegment, { minLength: 1, maxLength: 4 }).map((segs) => `/${segs.join('/')}`), weight: 5 },
      { arbitrary: trickyString(8).map((t) => `/${t}`), weight: 2 },
      fc.constantFrom('*', 'http://evil.example/', '', '/c'),
    ),
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 '),
    host: fc.oneof({ arbitrary: fc.constantFrom('a.example', 'A.Example:80', 'a.example:8080'), weight: 6 }, fc.constantFrom(undefined, 'a.example, b.example', 'a b', '')),
    fields: fc.array(fc.tuple(fieldName, fieldValue), { maxLength: 5 }),
    body: fc.oneof({ arbitrary: fc.constant(''), weight: 4 }, trickyString(10), fc.constant('0\r\n\r\n'), fc.constant('GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n')),
  })

  it('never crashes, always answers or closes in bounded time, and forwards nothing ambiguous', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const lines = [`${r.method} ${r.target} ${r.version}`]
        if (r.host !== undefined) lines.push(`Host: ${r.host}`)
        for (const [n, v] of r.fields) lines.push(`${n}: ${v}`)
        // Every request ends the connection, so each run is one exchange.
        lines.push('Connection: close')
        const before = received.length
        const res = await exchange(port, `${lines.join('\r\n')}\r\n\r\n${r.body}`)
        // A bounded answer: at most a couple of heads and short bodies.
        expect(res.text.length).toBeLessThan(64 * 1024)
        for (const s of res.statuses) expect(s >= 100 && s <= 599).toBe(true)
        for (const got of received.slice(before)) {
          // What reached the origin is unambiguous: never the smuggled body as a request, a
          // canonical target, one Host, no framing conflict, none of the unkeyed fields.
          expect(got.url).not.toBe('/smuggled')
          expect(canonicalTarget(got.url)).toBe(got.url)
          expect(got.rawHeaders.filter((_, i) => i % 2 === 0 && got.rawHeaders[i]!.toLowerCase() === 'host')).toHaveLength(1)
          expect(got.headers['transfer-encoding'] !== undefined && got.headers['content-length'] !== undefined).toBe(false)
          for (const n of ['x-original-url', 'x-host', 'x-rewrite-url', 'forwarded', 'x-forwarded-host'] as const) {
            if (n === 'x-forwarded-host') expect(got.headers[n] === undefined || !/evil/.test(String(got.headers[n]))).toBe(true)
            else expect(got.headers[n]).toBeUndefined()
          }
        }
      }),
      { numRuns: 300 },
    )
    // Not vacuous: a good share of the generated requests were well-formed enough to be forwarded.
    expect(received.length).toBeGreaterThan(30)
    // Still alive and serving.
    const ok = await exchange(port, 'GET /alive HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    expect(ok.statuses).toEqual([200])
  }, 300_000)
})
