// Interim (1xx) responses from the origin: relayed to the client before the final response, never
// stored (RFC 9111 §3; cache-tests interim-not-cached), never sent to an HTTP/1.0 client
// (RFC 9110 §15.2).
import { connect } from 'node:net'
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import type { Handler } from '../helpers/origin.js'
import { startBehind, type RunningStrata } from '../helpers/strata.js'

let cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

async function setup(handler: Handler): Promise<{ s: RunningStrata; hits: (path?: string) => number }> {
  const running = await startBehind([handler])
  cleanup.push(running.close)
  return { s: running.s, hits: running.origins[0]!.hits }
}

const hinting = (cacheControl: string): Handler => (_req, res) => {
  res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style', 'x-hint': 'yes' })
  res.writeHead(200, { 'cache-control': cacheControl, 'content-type': 'text/plain' })
  res.end('page')
}

async function get(url: string, method = 'GET') {
  const interim: { statusCode: number; headers: Record<string, string | string[]> }[] = []
  const res = await request(url, { method, onInfo: (info) => interim.push(info) })
  const body = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body, interim }
}

describe('interim responses', () => {
  it('a 103 on a cacheable miss reaches the client; the hit that follows has none, nor its headers', async () => {
    const { s, hits } = await setup(hinting('max-age=600'))
    const first = await get(`${s.url}/page`)
    expect(first.status).toBe(200)
    expect(first.interim).toHaveLength(1)
    expect(first.interim[0]).toMatchObject({ statusCode: 103, headers: { link: '</style.css>; rel=preload; as=style', 'x-hint': 'yes' } })
    expect(first.headers['x-hint']).toBeUndefined()
    const second = await get(`${s.url}/page`)
    expect(second).toMatchObject({ status: 200, body: 'page', interim: [] })
    expect(second.headers['x-cache']).toBe('HIT')
    expect(second.headers['x-hint']).toBeUndefined()
    expect(hits('/page')).toBe(1)
  })

  it('a 102 is relayed too, and a pass-through request (POST) relays its 103', async () => {
    const { s } = await setup((req, res) => {
      if (req.method === 'POST') res.writeEarlyHints({ link: '</a.js>; rel=preload; as=script' })
      else res.writeProcessing()
      res.writeHead(200, { 'cache-control': 'no-store' })
      res.end('ok')
    })
    expect((await get(`${s.url}/p`)).interim.map((i) => i.statusCode)).toEqual([102])
    const post = await get(`${s.url}/p`, 'POST')
    expect(post.interim.map((i) => [i.statusCode, i.headers['link']])).toEqual([[103, '</a.js>; rel=preload; as=script']])
  })

  it('an HTTP/1.0 client gets only the final response', async () => {
    const { s } = await setup(hinting('no-store'))
    const { port } = new URL(s.url)
    const sock = connect(Number(port), '127.0.0.1')
    await once(sock, 'connect')
    sock.write('GET /old HTTP/1.0\r\nHost: example.test\r\n\r\n')
    let raw = ''
    sock.setEncoding('latin1').on('data', (d: string) => (raw += d))
    await once(sock, 'close')
    expect(raw, raw).toMatch(/^HTTP\/1.1 200 /)
    expect(raw).not.toContain('103')
    expect(raw.endsWith('page')).toBe(true)
  })
})
