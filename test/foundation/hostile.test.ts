import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect } from 'node:net'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { startStrata, type RunningStrata } from '../helpers/strata.js'

/** Sends raw bytes and returns what came back before the server closed or went quiet. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(text))
    let out = ''
    const finish = () => {
      sock.destroy()
      resolve(out)
    }
    sock.on('data', (d) => (out += d))
    sock.on('end', finish)
    sock.on('error', finish)
    setTimeout(finish, 800)
  })
}

describe('hostile requests', () => {
  let origin: Origin
  let s: RunningStrata
  let port: number
  beforeAll(async () => {
    origin = await startOrigin((_q, r) => r.end('origin'))
    s = await startStrata([origin.url])
    port = Number(new URL(s.url).port)
  })
  afterAll(async () => {
    await s.close()
    await origin.close()
  })

  it.each([
    ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['two Content-Length values', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde'],
    ['an obfuscated Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\nabcde'],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a.example\r\nHost: evil.example\r\n\r\n'],
    ['a Host with junk', 'GET / HTTP/1.1\r\nHost: a.example/evil?x\r\n\r\n'],
    ['no Host', 'GET / HTTP/1.1\r\n\r\n'],
    ['an absolute-form target', 'GET http://evil.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n'],
    ['a space before the colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n'],
    ['bare LF line endings', 'GET / HTTP/1.1\nHost: a\n\n'],
  ])('rejects %s with 400 and never reaches the origin', async (_name, text) => {
    const before = origin.hits()
    const out = await raw(port, text)
    expect(out.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request')
    expect(origin.hits()).toBe(before)
  })

  it('answers OPTIONS * itself (it asks about the server; there is no path to forward)', async () => {
    const before = origin.hits()
    const out = await raw(port, 'OPTIONS * HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n')
    expect(out.split('\r\n')[0]).toBe('HTTP/1.1 200 OK')
    expect(out).toMatch(/\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE\r\n/i)
    expect(origin.hits()).toBe(before)
    const ups = (await (await fetch(`${s.adminUrl}/upstreams`, { headers: { authorization: `Bearer ${s.token}` } })).json()) as { upstreams: { failures: number }[] }
    expect(ups.upstreams[0]!.failures).toBe(0)
  })

  it('still serves a well-formed request on a fresh connection', async () => {
    const out = await raw(port, 'GET / HTTP/1.1\r\nHost: a.example:2001\r\nConnection: close\r\n\r\n')
    expect(out.split('\r\n')[0]).toBe('HTTP/1.1 200 OK')
    expect(out.endsWith('origin')).toBe(true)
  })
})
