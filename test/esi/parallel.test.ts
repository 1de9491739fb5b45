import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { assemble, compile, type FragmentFetcher } from '../../src/esi/index.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { sleep } from '../helpers/ports.js'
import { baseConfig } from './helpers.js'

/**
 * Behaviour against a REAL HTTP origin: the fetcher is a plain undici request, as the proxy's
 * would be minus the cache. These bounds are behavioural (parallel vs serial), not perf targets.
 */
let origin: Origin
let inFlight = 0
let maxInFlight = 0
const closed: string[] = []

beforeAll(async () => {
  origin = await startOrigin(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    res.on('close', () => {
      inFlight--
      if (!res.writableFinished) closed.push(url.pathname)
    })
    const delay = Number(url.searchParams.get('delay') ?? 0)
    if (url.pathname === '/hang') return // never answers
    if (delay) await sleep(delay)
    if (url.pathname.startsWith('/err')) {
      res.writeHead(500, { 'content-type': 'text/plain' })
      res.end('origin error page')
      return
    }
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'max-age=30' })
    res.end(`[${url.pathname.slice(1)}]`)
  })
})
afterAll(() => origin.close())

const fetcher: FragmentFetcher = async (url, init) => {
  const res = await request(url, { headers: init.headers, signal: init.signal })
  const body = Buffer.from(await res.body.arrayBuffer())
  const headers: Record<string, string | string[]> = {}
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = v
  return { statusCode: res.statusCode, headers, body }
}

const ctx = (extra: Partial<typeof baseConfig> = {}) => ({
  pageUrl: new URL(`${origin.url}/page`),
  headers: {},
  fetch: fetcher,
  config: { ...baseConfig, ...extra },
})

describe('parallel, streamed assembly (real origin)', () => {
  it('five fragments of 200 ms each arrive in about 200 ms, not 1 s, in document order', async () => {
    maxInFlight = 0
    const template = [1, 2, 3, 4, 5].map((n) => `<esi:include src="/f${n}?delay=200"/>`).join('|')
    const program = compile(template)
    const started = performance.now()
    const out = await assemble(program, ctx()).toBuffer()
    const elapsed = performance.now() - started
    expect(out.toString()).toBe('[f1]|[f2]|[f3]|[f4]|[f5]')
    expect(elapsed).toBeGreaterThanOrEqual(190)
    expect(elapsed).toBeLessThan(600)
    expect(maxInFlight).toBe(5)
  })

  it('with maxConcurrentIncludes 1 the same page is serial (the bound is real)', async () => {
    maxInFlight = 0
    const template = [1, 2, 3].map((n) => `<esi:include src="/s${n}?delay=100"/>`).join('')
    const started = performance.now()
    await assemble(compile(template), ctx({ maxConcurrentIncludes: 1 })).toBuffer()
    expect(performance.now() - started).toBeGreaterThanOrEqual(290)
    expect(maxInFlight).toBe(1)
  })

  it('the first bytes are yielded before a slow fragment finishes; later fast fragments wait their turn', async () => {
    const template = 'HEAD<esi:include src="/fast"/>MID<esi:include src="/slow?delay=400"/>AFTER<esi:include src="/fast2"/>END'
    const a = assemble(compile(template), ctx())
    const started = performance.now()
    const arrivals: { chunk: string; at: number }[] = []
    for await (const c of a) arrivals.push({ chunk: c.toString(), at: performance.now() - started })
    expect(arrivals.map((x) => x.chunk).join('')).toBe('HEAD[fast]MID[slow]AFTER[fast2]END')
    const at = (s: string) => arrivals.find((x) => x.chunk === s)!.at
    expect(at('HEAD')).toBeLessThan(100)
    expect(at('MID')).toBeLessThan(300)
    expect(at('[slow]')).toBeGreaterThanOrEqual(390)
    expect(at('[fast2]')).toBeGreaterThanOrEqual(at('[slow]'))
    expect((await a.head).error).toBeUndefined()
  })

  it('a fragment 500 is left out without alt and replaced with alt', async () => {
    const without = await assemble(compile('a<esi:include src="/err1"/>b'), ctx()).toBuffer()
    expect(without.toString()).toBe('ab')
    const withAlt = await assemble(compile('a<esi:include src="/err2" alt="/ok"/>b'), ctx()).toBuffer()
    expect(withAlt.toString()).toBe('a[ok]b')
    expect(origin.hits('/err2')).toBe(1)
    expect(origin.hits('/ok')).toBe(1)
  })

  it('a fragment that never answers times out and its upstream request is cancelled', async () => {
    const started = performance.now()
    const a = assemble(compile('a<esi:include src="/hang" maxwait="150"/>b'), ctx())
    expect((await a.toBuffer()).toString()).toBe('ab')
    expect(performance.now() - started).toBeLessThan(1000)
    expect((await a.result).failed).toMatchObject([{ reason: 'timeout' }])
    await sleep(50)
    expect(closed).toContain('/hang')
  })
})
