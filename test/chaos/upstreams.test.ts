import { describe, expect, it, onTestFinished } from 'vitest'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { startStrata } from '../helpers/strata.js'
import { load, one, tally } from './load.js'

/**
 * Upstreams dying under a bounded load (issue #10, chaos): one of two killed mid-run costs no GET;
 * all of them down, pages strata may serve stale are served, the rest get a quick 503.
 */

async function origin(id: string, cacheControl: string, extra: Record<string, string> = {}): Promise<Origin> {
  const o = await startOrigin((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': cacheControl, ...extra })
    res.end(`${id} ${req.url}`)
  })
  onTestFinished(() => o.close())
  return o
}

describe('chaos: upstreams', () => {
  it('one of two upstreams killed mid-load: zero failed GETs', async () => {
    // Uncacheable, so every request goes upstream (through the pass-through path).
    const [b1, b2] = [await origin('b1', 'no-store'), await origin('b2', 'no-store')]
    const s = await startStrata([b1!.url, b2!.url], { log: { level: 'error', access: false } })
    onTestFinished(() => s.close())
    const REQUESTS = 600
    const out = await load(s.url, {
      requests: REQUESTS,
      concurrency: 8,
      pick: (i) => `/item/${i}`,
      // A crash, not a drain: every open connection is cut, the port refuses new ones.
      between: (i) => (i === 200 ? b1!.close() : undefined),
    })
    expect(tally(out)).toEqual({ 200: REQUESTS })
    const before = b1!.hits()
    expect(before).toBeGreaterThan(0)
    // After the kill, b2 carried the rest.
    expect(b2!.hits()).toBeGreaterThanOrEqual(REQUESTS - before)
  })

  it('all upstreams down: stale-if-error pages are served, the others get a quick 502 or 503', async () => {
    // Stored already stale (Age past max-age) but inside stale-if-error: served only on error.
    const routes = (id: string) => startOrigin((req, res) => {
      if (req.url!.startsWith('/stale/')) res.writeHead(200, { 'cache-control': 'max-age=10, stale-if-error=300', age: '20', 'content-type': 'text/plain' })
      else res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' })
      res.end(`${id} ${req.url}`)
    })
    const b1 = await routes('b1')
    const b2 = await routes('b2')
    onTestFinished(() => Promise.all([b1.close(), b2.close()]).then(() => undefined))
    const s = await startStrata([b1.url, b2.url], { log: { level: 'error', access: false } })
    onTestFinished(() => s.close())
    const PAGES = 10
    for (let i = 0; i < PAGES; i++) expect((await one(s.url, `/stale/${i}`)).status).toBe(200)
    await Promise.all([b1.close(), b2.close()])

    const out = await load(s.url, { requests: 200, concurrency: 8, pick: (i) => (i % 2 === 0 ? `/stale/${(i / 2) % PAGES}` : `/new/${i}`) })
    const stale = out.filter((o) => o.path.startsWith('/stale/'))
    const fresh = out.filter((o) => o.path.startsWith('/new/'))
    expect(tally(stale)).toEqual({ 200: stale.length })
    expect(stale.every((o) => o.headers['x-cache'] === 'STALE' && String(o.headers['cache-status']).includes('stale-if-error'))).toBe(true)
    // Every upstream is down: passive health never takes the last ones out, so each request still
    // tries them (as nginx does) and a refused connection answers 502 at once; a 503 (with
    // Retry-After) comes only where no upstream is available at all.
    const t = tally(fresh)
    expect(Object.keys(t).every((k) => k === '502' || k === '503')).toBe(true)
    expect(fresh.filter((o) => o.status === 503).every((o) => o.headers['retry-after'] !== undefined)).toBe(true)
    // Quick: refused connections and ejected upstreams are answered without waiting on a timeout
    // (timeouts.connectMs is 3 s; this bound is generous for a busy machine, and the point).
    expect(Math.max(...fresh.map((o) => o.ms))).toBeLessThan(2000)
  })
})
