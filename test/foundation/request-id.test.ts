import { describe, expect, it, onTestFinished } from 'vitest'
import { request } from 'undici'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { startBehind } from '../helpers/strata.js'
import { ensureRequestId, generateRequestId, isValidRequestId } from '../../src/observability/request-id.js'

/**
 * X-Request-Id through every path (fast-path hit, miss through fastify, pass-through, ESI
 * fragments) into the upstream request and the access line, and Server-Timing when it is on.
 */

const site = (req: IncomingMessage, res: ServerResponse) => {
  if (req.url === '/page') {
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'public, max-age=60' })
    return res.end('page')
  }
  if (req.url === '/esi') {
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'public, max-age=60', 'surrogate-control': 'content="ESI/1.0"' })
    return res.end('<p><esi:include src="/frag"/><esi:include src="/frag2"/></p>')
  }
  if (req.url === '/frag' || req.url === '/frag2') {
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' })
    return res.end(req.url)
  }
  res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' })
  res.end('dynamic')
}

async function setup(overrides: Record<string, unknown> = {}) {
  const b = await startBehind([site], { esi: { enabled: true }, ...overrides })
  onTestFinished(() => b.close())
  return b
}

async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'POST' = 'GET') {
  const res = await request(url, { method, headers, ...(method === 'POST' ? { body: 'x' } : {}) })
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

/** The access lines logged so far for a path, waiting until `n` are there. */
async function accessLines(logs: Record<string, unknown>[], url: string, n: number): Promise<Record<string, unknown>[]> {
  for (let i = 0; i < 200; i++) {
    const lines = logs.filter((l) => l['msg'] === 'request' && l['url'] === url)
    if (lines.length >= n) return lines
    await new Promise((r) => setImmediate(r))
  }
  throw new Error(`fewer than ${n} access lines for ${url}`)
}

describe('X-Request-Id', () => {
  it('passes a valid client id upstream and into the access line, on a miss and on a fast-path hit', async () => {
    const { s, origins } = await setup()
    expect((await get(`${s.url}/page`, { 'x-request-id': 'client-id-1' })).headers['x-cache']).toBe('MISS')
    expect(origins[0]!.requests.at(-1)!.headers['x-request-id']).toBe('client-id-1')
    expect((await get(`${s.url}/page`, { 'x-request-id': 'client-id-2' })).headers['x-cache']).toBe('HIT')
    const lines = await accessLines(s.logs, '/page', 2)
    expect(lines.map((l) => l['reqId'])).toEqual(['client-id-1', 'client-id-2'])
  })

  it('generates a unique id when there is none, on every path, the same upstream and in the log', async () => {
    const { s, origins } = await setup()
    await get(`${s.url}/dyn`)
    await get(`${s.url}/dyn`)
    await get(`${s.url}/dyn`, {}, 'POST')
    await get(`${s.url}/page`)
    await get(`${s.url}/page`)
    const sent = origins[0]!.requests.map((r) => r.headers['x-request-id'])
    expect(sent).toHaveLength(4)
    for (const id of sent) expect(isValidRequestId(id)).toBe(true)
    const dyn = await accessLines(s.logs, '/dyn', 3)
    const page = await accessLines(s.logs, '/page', 2)
    const logged = [...dyn, ...page].map((l) => l['reqId'] as string)
    expect(new Set(logged).size).toBe(5)
    // What went upstream is what was logged, request by request.
    expect(logged.slice(0, 4)).toEqual(sent)
  })

  it.each([
    ['too long', 'a'.repeat(129)],
    ['a space', 'has space'],
    ['non-ASCII', 'caf\u00e9'],
  ])('replaces a client id with %s by a generated one', async (_name, bad) => {
    const { s, origins } = await setup()
    await get(`${s.url}/dyn`, { 'x-request-id': bad })
    const sent = origins[0]!.requests[0]!.headers['x-request-id'] as string
    expect(sent).not.toBe(bad)
    expect(isValidRequestId(sent)).toBe(true)
    expect((await accessLines(s.logs, '/dyn', 1))[0]!['reqId']).toBe(sent)
  })

  it('keeps a 128-character id of visible ASCII, quotes and backslashes included', async () => {
    const { s, origins } = await setup()
    const id = `"\\${'~'.repeat(126)}`
    await get(`${s.url}/dyn`, { 'x-request-id': id })
    expect(origins[0]!.requests[0]!.headers['x-request-id']).toBe(id)
    expect((await accessLines(s.logs, '/dyn', 1))[0]!['reqId']).toBe(id)
  })

  it('goes with every ESI fragment request of the page', async () => {
    const { s, origins } = await setup()
    const page = await get(`${s.url}/esi`, { 'x-request-id': 'page-id' })
    expect(page.body).toBe('<p>/frag/frag2</p>')
    const byUrl = Object.fromEntries(origins[0]!.requests.map((r) => [r.url, r.headers['x-request-id']]))
    expect(byUrl).toEqual({ '/esi': 'page-id', '/frag': 'page-id', '/frag2': 'page-id' })
    // Without a client id, the generated one is shared by the page and its fragments.
    await get(`${s.url}/esi`)
    const second = origins[0]!.requests.slice(3).map((r) => r.headers['x-request-id'])
    expect(second).toHaveLength(2)
    expect(second[0]).toBe(second[1])
    expect(second[0]).not.toBe('page-id')
  })

  it('ensureRequestId is idempotent and generated ids do not repeat', () => {
    const headers: Record<string, string | string[] | undefined> = { 'x-request-id': ['a', 'b'] }
    const id = ensureRequestId(headers)
    expect(headers['x-request-id']).toBe(id)
    expect(ensureRequestId(headers)).toBe(id)
    const many = new Set(Array.from({ length: 10_000 }, generateRequestId))
    expect(many.size).toBe(10_000)
  })
})

describe('Server-Timing', () => {
  const parse = (v: unknown) => Object.fromEntries(String(v).split(', ').map((p) => p.split(';dur=')).map(([k, d]) => [k, Number(d)]))

  it('is absent by default', async () => {
    const { s } = await setup()
    expect((await get(`${s.url}/page`)).headers['server-timing']).toBeUndefined()
    expect((await get(`${s.url}/page`)).headers['server-timing']).toBeUndefined()
    expect((await get(`${s.url}/dyn`)).headers['server-timing']).toBeUndefined()
  })

  it('names the cache lookup, upstream and ESI assembly durations when serverTiming is on', async () => {
    const { s } = await setup({ serverTiming: true })
    const miss = await get(`${s.url}/page`)
    expect(miss.headers['x-cache']).toBe('MISS')
    expect(Object.keys(parse(miss.headers['server-timing']))).toEqual(['cache', 'upstream'])
    const hit = await get(`${s.url}/page`)
    expect(hit.headers['x-cache']).toBe('HIT')
    expect(Object.keys(parse(hit.headers['server-timing']))).toEqual(['cache'])
    const pass = await get(`${s.url}/dyn`, {}, 'POST')
    expect(Object.keys(parse(pass.headers['server-timing']))).toEqual(['upstream'])
    const esi = await get(`${s.url}/esi`)
    const timing = parse(esi.headers['server-timing'])
    expect(Object.keys(timing)).toEqual(['cache', 'upstream', 'esi'])
    for (const v of Object.values(timing)) expect(v).toBeGreaterThanOrEqual(0)
    // A stored template assembled from memory: cache and esi, no upstream.
    const esiAgain = await get(`${s.url}/esi`)
    expect(Object.keys(parse(esiAgain.headers['server-timing']))).toContain('esi')
  })
})
