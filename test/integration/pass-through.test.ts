// The pass-through path: requests the cache will not answer (methods other than GET and HEAD,
// and URLs with a hit-for-pass marker) are forwarded before fastify, the upstream's bytes going
// straight to the client. These tests check it behaves like the full path: headers, streaming both
// ways, retries, errors, invalidation, sticky cookies, client aborts, ESI templates, access lines.
import { createHash } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { Readable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { readBody, type Handler, type Origin } from '../helpers/origin.js'
import { startBehind, type RunningStrata } from '../helpers/strata.js'
import { sleep } from '../helpers/ports.js'

let cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

async function setup(handlers: Handler[], overrides: Record<string, unknown> = {}): Promise<{ origins: Origin[]; s: RunningStrata }> {
  const running = await startBehind(handlers, overrides)
  cleanup.push(running.close)
  return running
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers })
  const body = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, headers: res.headers, body }
}

const accessLines = (s: RunningStrata) => s.logs.filter((l) => l['msg'] === 'request')

describe('pass-through before fastify', () => {
  it('answers like the full path: PASS status, Via, edge-only headers stripped, forwarding headers upstream', async () => {
    const { origins, s } = await setup([
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store', 'surrogate-key': 'a b', 'surrogate-control': 'max-age=60', 'x-app': '1' })
        res.end('dynamic')
      },
    ])
    const first = await get(`${s.url}/dyn?x=1`)
    expect(first.headers['cache-status']).toMatch(/^strata; fwd=uri-miss/)
    const second = await get(`${s.url}/dyn?x=1`, { 'x-forwarded-for': '10.0.0.9' })
    expect(second.status).toBe(200)
    expect(second.body.toString()).toBe('dynamic')
    expect(second.headers['x-cache']).toBe('PASS')
    expect(second.headers['cache-status']).toBe('strata; fwd=bypass; detail=hit-for-pass')
    expect(second.headers['via']).toBe('1.1 strata')
    expect(second.headers['x-app']).toBe('1')
    expect(second.headers['surrogate-key']).toBeUndefined()
    expect(second.headers['surrogate-control']).toBeUndefined()
    const seen = origins[0]!.requests[1]!
    expect(seen.url).toBe('/dyn?x=1')
    // Not a trusted proxy: the client's claim is replaced by its address.
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(seen.headers['via']).toBe('1.1 strata')
    expect(seen.headers['surrogate-capability']).toBe('strata="ESI/1.0"')
    const line = accessLines(s).at(-1)!
    expect(line).toMatchObject({ method: 'GET', url: '/dyn?x=1', status: 200, upstream: 'b1', cache: 'PASS' })
    const adminStats = (await (await fetch(`${s.adminUrl}/stats`, { headers: { authorization: `Bearer ${s.token}` } })).json()) as { cache: { passes: number } }
    expect(adminStats.cache.passes).toBe(1)
  })

  it('streams a large body byte-exact, HEAD has no body', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024)
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i * 2654435761 >>> 0, i)
    const { s } = await setup([
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'private', 'content-length': big.length })
        res.end(big)
      },
    ])
    await get(`${s.url}/big`)
    const r = await get(`${s.url}/big`)
    expect(r.headers['x-cache']).toBe('PASS')
    expect(r.body.length).toBe(big.length)
    expect(createHash('sha256').update(r.body).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'))
    const head = await request(`${s.url}/big`, { method: 'HEAD' })
    expect(head.statusCode).toBe(200)
    expect(head.headers['content-length']).toBe(String(big.length))
    expect((await head.body.arrayBuffer()).byteLength).toBe(0)
  })

  it('holds the upstream back while the client reads slowly (backpressure), then delivers everything', async () => {
    let written = 0
    let drained = false
    const chunk = Buffer.alloc(64 * 1024, 'z')
    const { s } = await setup([
      (_req, res) => {
        res.writeHead(200, { 'cache-control': 'no-store' })
        if (written === 0 && !drained) {
          drained = true
          return res.end('warm')
        }
        // 32 MB, written as fast as the socket takes it.
        const total = 512
        let i = 0
        const pump = () => {
          while (i < total) {
            i++
            written += chunk.length
            if (!res.write(chunk)) return res.once('drain', pump)
          }
          res.end()
        }
        pump()
      },
    ])
    await get(`${s.url}/slow`)
    const url = new URL(`${s.url}/slow`)
    const received = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname }, (res) => {
        expect(res.headers['x-cache']).toBe('PASS')
        res.pause()
        setTimeout(() => {
          // Paused for 300 ms: the origin must not have pushed the whole body into strata's memory.
          expect(written).toBeLessThan(24 * 1024 * 1024)
          let n = 0
          res.on('data', (d: Buffer) => (n += d.length))
          res.on('end', () => resolve(n))
          res.resume()
        }, 300)
      })
      req.on('error', reject)
      req.end()
    })
    expect(received).toBe(32 * 1024 * 1024)
  })

  it('retries a dead upstream on another server; all dead answers 502 JSON', async () => {
    const ok: Handler = (_req, res) => {
      res.writeHead(200, { 'cache-control': 'no-store' })
      res.end('ok')
    }
    const { origins, s } = await setup([ok, ok], { balancer: { retries: 2, passive: { failures: 1000 } } })
    await get(`${s.url}/r`)
    await origins[0]!.close()
    for (let i = 0; i < 6; i++) {
      const r = await get(`${s.url}/r`)
      expect(r.status).toBe(200)
      expect(r.headers['x-cache']).toBe('PASS')
    }
    await origins[1]!.close()
    const down = await get(`${s.url}/r`)
    expect(down.status).toBe(502)
    expect(down.headers['content-type']).toBe('application/json; charset=utf-8')
    expect(JSON.parse(down.body.toString())).toMatchObject({ error: 'STRATA_UPSTREAM_CONNECT' })
    expect(accessLines(s).at(-1)).toMatchObject({ url: '/r', status: 502, cache: 'PASS' })
  })

  it('answers 504 when the upstream sends no head within timeouts.responseMs, 503 with Retry-After when none is available', async () => {
    let calls = 0
    const { s } = await setup(
      [
        async (_req, res) => {
          if (calls++ > 0) await sleep(1000)
          res.writeHead(200, { 'cache-control': 'no-store' })
          res.end('slow')
        },
      ],
      { timeouts: { responseMs: 150 }, balancer: { passive: { failures: 1000 } } },
    )
    await get(`${s.url}/slow`)
    const slow = await get(`${s.url}/slow`)
    expect(slow.status).toBe(504)
    expect(JSON.parse(slow.body.toString())).toMatchObject({ error: 'STRATA_UPSTREAM_TIMEOUT' })
    const drained = await fetch(`${s.adminUrl}/upstreams/b1/drain`, { method: 'POST', headers: { authorization: `Bearer ${s.token}` } })
    expect(drained.status).toBe(200)
    const none = await get(`${s.url}/slow`)
    expect(none.status).toBe(503)
    expect(none.headers['retry-after']).toMatch(/^\d+$/)
    expect(JSON.parse(none.body.toString())).toMatchObject({ error: 'STRATA_NO_UPSTREAM' })
    expect(accessLines(s).filter((l) => l['url'] === '/slow').map((l) => [l['status'], l['cache']])).toEqual([
      [200, 'MISS'],
      [504, 'PASS'],
      [503, 'PASS'],
    ])
  })

  it('retries a 503 on another server when balancer.retryOn says so', async () => {
    let n = 0
    const { s } = await setup(
      [
        (_req, res) => {
          res.writeHead(n++ === 0 ? 200 : 503, { 'cache-control': 'no-store' })
          res.end('first')
        },
        (_req, res) => {
          res.writeHead(200, { 'cache-control': 'no-store' })
          res.end('second')
        },
      ],
      { balancer: { algorithm: 'round-robin', retries: 1, retryOn: ['connect', '503'], passive: { failures: 1000 } } },
    )
    await get(`${s.url}/x`) // b1: 200, marks hit-for-pass
    await get(`${s.url}/x`) // b2
    const r = await get(`${s.url}/x`) // b1 answers 503 → retried on b2
    expect(r.status).toBe(200)
    expect(r.body.toString()).toBe('second')
  })

  it('cuts the response when the upstream dies mid-body', async () => {
    let calls = 0
    const { s } = await setup([
      (_req, res) => {
        res.writeHead(200, { 'cache-control': 'no-store', 'content-length': '100000' })
        if (calls++ !== 1) return res.end(Buffer.alloc(100000))
        res.write(Buffer.alloc(1000))
        setTimeout(() => res.socket?.destroy(), 50)
      },
    ])
    await get(`${s.url}/cut`)
    await expect(get(`${s.url}/cut`)).rejects.toThrow()
    // strata is still serving.
    await sleep(20)
    expect((await get(`${s.url}/cut`)).status).toBe(200)
  })

  it('cancels the upstream request when the client leaves, without counting it against the server', async () => {
    let upstreamClosed = 0
    let first = true
    const { s } = await setup(
      [
        (_req, res) => {
          res.writeHead(200, { 'cache-control': 'no-store' })
          if (first) {
            first = false
            return res.end('warm')
          }
          res.on('close', () => upstreamClosed++)
          res.write('partial')
          // never ends
        },
      ],
      { balancer: { passive: { failures: 1 } } },
    )
    await get(`${s.url}/hang`)
    const ac = new AbortController()
    const res = await request(`${s.url}/hang`, { signal: ac.signal })
    expect(res.headers['x-cache']).toBe('PASS')
    ac.abort()
    await res.body.text().catch(() => undefined)
    for (let i = 0; i < 50 && upstreamClosed === 0; i++) await sleep(20)
    expect(upstreamClosed).toBe(1)
    // A client leaving says nothing about the server: with passive.failures 1 it would be ejected.
    const ups = (await (await fetch(`${s.adminUrl}/upstreams`, { headers: { authorization: `Bearer ${s.token}` } })).json()) as { upstreams: { id: string; state: string; ejections: number; active: number }[] }
    expect(ups.upstreams[0]).toMatchObject({ id: 'b1', state: 'up', ejections: 0, active: 0 })
    expect(accessLines(s).some((l) => l['url'] === '/hang' && l['status'] === 200 && l['cache'] === 'PASS')).toBe(true)
  })

  it.each([
    ['pass-through path', 10],
    ['full path', 0],
  ])('logs 499 when the client leaves before any answer (%s)', async (_name, hitForPass) => {
    let calls = 0
    const { s } = await setup(
      [
        async (_req, res) => {
          if (calls++ > 0) await sleep(400)
          res.writeHead(200, { 'cache-control': 'no-store' })
          res.end('late')
        },
      ],
      { cache: { hitForPass } },
    )
    await get(`${s.url}/late`)
    const ac = new AbortController()
    const pending = request(`${s.url}/late`, { signal: ac.signal }).catch(() => undefined)
    await sleep(50)
    ac.abort()
    await pending
    for (let i = 0; i < 50 && !accessLines(s).some((l) => l['status'] === 499); i++) await sleep(10)
    expect(accessLines(s).filter((l) => l['url'] === '/late').map((l) => l['status'])).toEqual([200, 499])
  })

  it('adds the sticky cookie and strips it from the upstream request', async () => {
    const { origins, s } = await setup(
      [
        (req, res) => {
          res.writeHead(200, { 'cache-control': 'no-store', 'x-saw-cookie': req.headers.cookie ?? '' })
          res.end('s')
        },
      ],
      { balancer: { sticky: { mode: 'insert', secret: 'sticky-secret-0123456789' } } },
    )
    const first = await get(`${s.url}/st`, { cookie: 'app=1' })
    const cookie = String(first.headers['set-cookie']).split(';')[0]!
    expect(cookie).toMatch(/^strata_srv=/)
    const repeat = await get(`${s.url}/st`, { cookie: `app=1; ${cookie}` })
    expect(repeat.headers['x-cache']).toBe('PASS')
    expect(repeat.headers['x-saw-cookie']).toBe('app=1')
    expect(repeat.headers['set-cookie']).toBeUndefined()
    const fresh = await get(`${s.url}/st`)
    expect(String(fresh.headers['set-cookie'])).toMatch(/^strata_srv=/)
    expect(origins[0]!.requests.every((r) => !String(r.headers.cookie ?? '').includes('strata_srv'))).toBe(true)
  })

  it('streams a request body upstream byte-exact (POST, chunked PUT) and answers PASS', async () => {
    const upload = Buffer.alloc(5 * 1024 * 1024)
    for (let i = 0; i < upload.length; i += 4) upload.writeUInt32LE(i * 2246822519 >>> 0, i)
    const digests: string[] = []
    const { origins, s } = await setup([
      async (req, res) => {
        const body = await readBody(req)
        digests.push(createHash('sha256').update(body).digest('hex'))
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.end(`${req.method} ${body.length} ${req.headers['transfer-encoding'] ?? 'cl'}`)
      },
    ])
    const post = await request(`${s.url}/upload`, { method: 'POST', body: upload, headers: { 'content-type': 'application/octet-stream' } })
    expect(post.statusCode).toBe(200)
    expect(await post.body.text()).toBe(`POST ${upload.length} cl`)
    expect(post.headers['x-cache']).toBe('PASS')
    expect(post.headers['cache-status']).toBe('strata; fwd=method')
    const chunks = async function* () {
      for (let i = 0; i < upload.length; i += 256 * 1024) yield upload.subarray(i, i + 256 * 1024)
    }
    const put = await request(`${s.url}/upload`, { method: 'PUT', body: Readable.from(chunks()) })
    expect(await put.body.text()).toBe(`PUT ${upload.length} chunked`)
    const want = createHash('sha256').update(upload).digest('hex')
    expect(digests).toEqual([want, want])
    // An empty POST goes without a body, and with no Transfer-Encoding invented for it.
    const empty = await request(`${s.url}/upload`, { method: 'POST' })
    expect(await empty.body.text()).toBe('POST 0 cl')
    expect(origins[0]!.requests.at(-1)!.headers['transfer-encoding']).toBeUndefined()
    expect(accessLines(s).filter((l) => l['url'] === '/upload').map((l) => [l['method'], l['status'], l['cache']])).toEqual([
      ['POST', 200, 'PASS'],
      ['PUT', 200, 'PASS'],
      ['POST', 200, 'PASS'],
    ])
  })

  it('an unsafe request invalidates its target and Location before the client gets the answer', async () => {
    let version = 1
    const { origins, s } = await setup([
      async (req, res) => {
        if (req.method === 'POST') {
          await readBody(req)
          version++
          // Long enough that a response sent before the invalidation would show.
          await sleep(30)
          res.writeHead(201, { location: '/items/7', 'content-type': 'text/plain' })
          return res.end('created')
        }
        res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-type': 'text/plain' })
        res.end(`${req.url} v${version}`)
      },
    ])
    await get(`${s.url}/items`)
    await get(`${s.url}/items/7`)
    expect((await get(`${s.url}/items`)).headers['x-cache']).toBe('HIT')
    expect((await get(`${s.url}/items/7`)).headers['x-cache']).toBe('HIT')
    const post = await request(`${s.url}/items`, { method: 'POST', body: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
    expect(post.statusCode).toBe(201)
    expect(await post.body.text()).toBe('created')
    // Asked right after the answer: both are gone from the cache.
    const items = await get(`${s.url}/items`)
    const item = await get(`${s.url}/items/7`)
    expect([items.headers['x-cache'], items.body.toString()]).toEqual(['MISS', '/items v2'])
    expect([item.headers['x-cache'], item.body.toString()]).toEqual(['MISS', '/items/7 v2'])
    expect(origins[0]!.hits('/items')).toBe(3)
    // A failed unsafe request invalidates nothing.
    origins[0]!.setHandler((req, res) => {
      res.writeHead(req.method === 'DELETE' ? 500 : 200, { 'cache-control': 'public, max-age=60' })
      res.end(`${req.url} v${version}`)
    })
    await get(`${s.url}/items`)
    const del = await request(`${s.url}/items`, { method: 'DELETE' })
    expect(del.statusCode).toBe(500)
    await del.body.text()
    expect((await get(`${s.url}/items`)).headers['x-cache']).toBe('HIT')
  })

  it('retries a bodiless POST whose connection failed, never one with a body', async () => {
    const ok: Handler = async (req, res) => {
      await readBody(req)
      res.end('ok')
    }
    const { origins, s } = await setup([ok, ok], { balancer: { algorithm: 'round-robin', retries: 1, passive: { failures: 1000 } } })
    await origins[0]!.close()
    for (let i = 0; i < 4; i++) {
      const r = await request(`${s.url}/act`, { method: 'POST' })
      expect(r.statusCode).toBe(200)
      await r.body.text()
    }
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) {
      const r = await request(`${s.url}/act`, { method: 'POST', body: 'payload' })
      statuses.push(r.statusCode)
      await r.body.text()
    }
    // Round-robin sends every other one to the dead server; with a body those are not retried.
    expect(statuses.filter((st) => st === 502).length).toBe(2)
    expect(statuses.filter((st) => st === 200).length).toBe(2)
  })

  it('hands an uncacheable ESI template back to the full path, and remembers to', async () => {
    const { origins, s } = await setup([
      (req, res) => {
        if (req.url === '/page') {
          res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'private', 'surrogate-control': 'content="ESI/1.0"' })
          return res.end('<p><esi:include src="/frag"/></p>')
        }
        res.writeHead(200, { 'cache-control': 'public, max-age=60' })
        res.end('F')
      },
    ])
    for (let i = 0; i < 3; i++) {
      const r = await get(`${s.url}/page`)
      expect(r.status).toBe(200)
      expect(r.body.toString()).toBe('<p>F</p>')
    }
    // View 1: full path, marked hit-for-pass. View 2: the early pass sees a template and hands
    // over (one extra origin request). View 3: straight to the full path.
    expect(origins[0]!.hits('/page')).toBe(4)
    expect(origins[0]!.hits('/frag')).toBe(1)
  })
})
