import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { startOrigin, readBody, type Origin } from '../helpers/origin.js'
import { startStrata, type RunningStrata } from '../helpers/strata.js'
import { freePort, sleep } from '../helpers/ports.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

describe('forwarding', () => {
  let origin: Origin
  let s: RunningStrata
  const big = randomBytes(10 * 1024 * 1024)

  beforeAll(async () => {
    origin = await startOrigin(async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x')
      if (url.pathname === '/echo') {
        const body = await readBody(req)
        res.writeHead(201, {
          'content-type': 'application/json',
          'x-custom': 'yes',
          connection: 'close, x-hop',
          'x-hop': 'must be removed',
          'keep-alive': 'timeout=5',
        })
        res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodySha: sha(body), bodyLength: body.length }))
        return
      }
      if (url.pathname === '/big') {
        // Streamed in 64 KiB chunks with no content-length: strata must stream it through.
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        let off = 0
        const pump = () => {
          while (off < big.length) {
            const ok = res.write(big.subarray(off, off + 65536))
            off += 65536
            if (!ok) return res.once('drain', pump)
          }
          res.end()
        }
        pump()
        return
      }
      if (url.pathname === '/slow-start') {
        // Proves uploads are streamed: answer as soon as the first bytes arrive.
        req.once('data', (chunk: Buffer) => {
          res.writeHead(200, { 'content-type': 'text/plain' })
          res.end(`first:${chunk.toString()}`)
          req.resume()
        })
        return
      }
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(`hello ${req.method} ${req.url}`)
    })
    s = await startStrata([origin.url])
  })
  afterAll(async () => {
    await s.close()
    await origin.close()
  })

  it.each(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])('forwards %s with its query string and body', async (method) => {
    const hasBody = !['GET', 'OPTIONS'].includes(method)
    const body = hasBody ? `payload-${method}` : undefined
    const res = await request(`${s.url}/echo?a=1&b=%20two&a=3`, { method: method as 'GET', body: body ?? null, headers: { 'x-client': 'c1', 'content-type': 'text/plain' } })
    expect(res.statusCode).toBe(201)
    const json = (await res.body.json()) as { method: string; url: string; headers: Record<string, string>; bodySha: string }
    expect(json.method).toBe(method)
    expect(json.url).toBe('/echo?a=1&b=%20two&a=3')
    expect(json.headers['x-client']).toBe('c1')
    if (body) expect(json.bodySha).toBe(sha(Buffer.from(body)))
  })

  it('HEAD gets headers and no body', async () => {
    const res = await request(`${s.url}/hello`, { method: 'HEAD' })
    expect(res.statusCode).toBe(200)
    expect(await res.body.text()).toBe('')
  })

  it('removes hop-by-hop headers both ways and adds X-Forwarded-* and Via', async () => {
    // node:http, not undici: undici refuses to send a Connection header naming other fields.
    const res = await new Promise<{ headers: Record<string, string | string[] | undefined>; text: string }>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: new URL(s.url).port,
          path: '/echo',
          headers: { 'x-forwarded-for': '10.9.8.7', 'proxy-authorization': 'secret', te: 'trailers', 'x-drop': 'me', connection: 'keep-alive, x-drop', host: 'shop.example' },
        },
        (r) => {
          let text = ''
          r.on('data', (d) => (text += d))
          r.on('end', () => resolve({ headers: r.headers, text }))
        },
      )
      req.on('error', reject)
      req.end()
    })
    const json = JSON.parse(res.text) as { headers: Record<string, string> }
    // The client is not a trusted proxy (trustProxy is empty): its own X-Forwarded-For is not believed.
    expect(json.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(json.headers['x-forwarded-proto']).toBe('http')
    expect(json.headers['x-forwarded-host']).toBe('shop.example')
    expect(json.headers['host']).toBe('shop.example')
    expect(json.headers['via']).toBe('1.1 strata')
    expect(json.headers['proxy-authorization']).toBeUndefined()
    expect(json.headers['te']).toBeUndefined()
    expect(json.headers['x-drop']).toBeUndefined()
    expect(res.headers['x-custom']).toBe('yes')
    expect(res.headers['x-hop']).toBeUndefined()
    expect(res.headers['keep-alive']).not.toBe('timeout=5')
    expect(res.headers['via']).toBe('1.1 strata')
  })

  it('streams a 10 MB upload byte-exact', async () => {
    const chunks = Array.from({ length: 160 }, (_, i) => big.subarray(i * 65536, (i + 1) * 65536))
    const res = await request(`${s.url}/echo`, { method: 'POST', body: Readable.from(chunks), headers: { 'content-type': 'application/octet-stream' } })
    const json = (await res.body.json()) as { bodySha: string; bodyLength: number }
    expect(json.bodyLength).toBe(big.length)
    expect(json.bodySha).toBe(sha(big))
  })

  it('streams a 10 MB download byte-exact', async () => {
    const res = await request(`${s.url}/big`)
    const body = Buffer.from(await res.body.arrayBuffer())
    expect(body.length).toBe(big.length)
    expect(sha(body)).toBe(sha(big))
  })

  it('does not buffer uploads: the origin answers before the upload ends', async () => {
    // The client sends one chunk and then waits for the response before sending the rest; a proxy
    // that buffered the whole body would deadlock here.
    const port = new URL(s.url).port
    const text = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/slow-start', method: 'POST', headers: { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' } }, (res) => {
        let out = ''
        res.on('data', (d) => (out += d))
        res.on('end', () => {
          req.end('rest')
          resolve(out)
        })
      })
      req.on('error', reject)
      req.write('early')
    })
    expect(text).toBe('first:early')
  })

  it('logs one access line per request with method, url, status, upstream and cache', async () => {
    await request(`${s.url}/logged?x=1`).then((r) => r.body.text())
    await sleep(20)
    const line = s.logs.find((l) => l['url'] === '/logged?x=1')
    expect(line).toMatchObject({ msg: 'request', method: 'GET', status: 200, upstream: 'b1', cache: 'MISS' })
    expect(typeof line?.['ms']).toBe('number')
  })
})

describe('upstream failures', () => {
  it('answers 502 with a short body when the upstream refuses connections, and keeps serving', async () => {
    const deadPort = await freePort()
    const s = await startStrata([`http://127.0.0.1:${deadPort}`], { balancer: { retries: 0 } })
    try {
      const res = await request(`${s.url}/x`)
      expect(res.statusCode).toBe(502)
      expect(await res.body.json()).toMatchObject({ error: 'STRATA_UPSTREAM_CONNECT' })
      const again = await request(`${s.url}/y`)
      expect(again.statusCode).toBe(502)
      await again.body.text()
      expect(s.logs.some((l) => l['msg'] === 'proxy error')).toBe(true)
    } finally {
      await s.close()
    }
  })

  it('answers 504 when the upstream does not send headers within timeouts.responseMs', async () => {
    const origin = await startOrigin(async (_req, res) => {
      await sleep(1500)
      res.end('late')
    })
    const s = await startStrata([origin.url], { timeouts: { responseMs: 200 } })
    try {
      const started = Date.now()
      const res = await request(`${s.url}/slow`)
      expect(res.statusCode).toBe(504)
      expect(await res.body.json()).toMatchObject({ error: 'STRATA_UPSTREAM_TIMEOUT' })
      expect(Date.now() - started).toBeLessThan(1400)
    } finally {
      await s.close()
      await origin.close()
    }
  })

  it('retries a GET answered 503 on the other upstream when retryOn says so, never a POST', async () => {
    const busy = await startOrigin((_q, r) => {
      r.writeHead(503)
      r.end('busy')
    })
    const ok = await startOrigin((_q, r) => r.end('ok'))
    const s = await startStrata([busy.url, ok.url], { balancer: { retries: 1, retryOn: ['connect', '503'], passive: { failures: 100 } } })
    try {
      for (let i = 0; i < 4; i++) {
        const res = await request(`${s.url}/r${i}`)
        expect(res.statusCode).toBe(200)
        expect(await res.body.text()).toBe('ok')
      }
      const statuses = []
      for (let i = 0; i < 4; i++) {
        const res = await request(`${s.url}/p${i}`, { method: 'POST', body: 'x' })
        statuses.push(res.statusCode)
        await res.body.text()
      }
      expect(statuses).toContain(503)
    } finally {
      await s.close()
      await busy.close()
      await ok.close()
    }
  })

  it('round-robins across upstreams and retries a refused connection on the next one', async () => {
    const a = await startOrigin((_q, r) => r.end('a'))
    const b = await startOrigin((_q, r) => r.end('b'))
    const dead = `http://127.0.0.1:${await freePort()}`
    const s = await startStrata([a.url, b.url, dead], { balancer: { retries: 1 } })
    try {
      const seen: string[] = []
      for (let i = 0; i < 9; i++) {
        const res = await request(`${s.url}/`)
        expect(res.statusCode).toBe(200)
        seen.push(await res.body.text())
      }
      expect(seen.filter((x) => x === 'a').length).toBeGreaterThanOrEqual(3)
      expect(seen.filter((x) => x === 'b').length).toBeGreaterThanOrEqual(3)
    } finally {
      await s.close()
      await a.close()
      await b.close()
    }
  })
})
