import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { Redis } from 'ioredis'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { startStrata, type RunningStrata } from '../helpers/strata.js'
import { waitFor } from '../helpers/ports.js'
import { load, one, tally, type Outcome } from './load.js'

/**
 * Redis failing under a bounded load (issue #10, chaos): two strata nodes share one redis-server
 * (L2 and the invalidation bus). It is SIGKILLed, restarted empty on the same port, and paused
 * (CLIENT PAUSE). Throughout, what L1 holds is served (zero non-2xx) and misses go on to the
 * origin; afterwards L2 and the bus work again without anyone restarting strata.
 */

const HOT = 20
/** Both nodes serve one site: the cache key includes the host, so L2 entries are shared. */
const SITE = { host: 'site.test' }
let redis: RedisServer
let probe: Redis
let origin: Origin
let a: RunningStrata
let b: RunningStrata
let probeN = 0

beforeAll(async () => {
  redis = await startRedis()
  probe = new Redis(redis.url, { retryStrategy: () => 50, maxRetriesPerRequest: null })
  probe.on('error', () => {})
  origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=300' })
    res.end(`body of ${req.url}`)
  })
  const opts = { log: { level: 'fatal', access: false }, cache: { redis: redis.url, redisTimeoutMs: 100 } }
  a = await startStrata([origin.url], opts)
  b = await startStrata([origin.url], opts)
  // Both L1s hold the hot pages: A from the origin, B from L2 (A wrote it there).
  for (let i = 0; i < HOT; i++) expect((await one(a.url, `/hot/${i}`, undefined, SITE)).status).toBe(200)
  await waitFor(async () => (await probe.dbsize()) > 0)
  for (let i = 0; i < HOT; i++) expect((await one(b.url, `/hot/${i}`, undefined, SITE)).status).toBe(200)
})

afterAll(async () => {
  await a?.close()
  await b?.close()
  probe?.disconnect()
  await redis?.stop()
  await origin?.close()
})

/** A bounded load on both nodes: hot pages (in both L1s) and new URLs (misses). */
async function mixedLoad(tag: string): Promise<{ hot: Outcome[]; miss: Outcome[] }> {
  const pick = (i: number) => (i % 2 === 0 ? `/hot/${(i / 2) % HOT}` : `/${tag}/${i}`)
  const [ra, rb] = await Promise.all([load(a.url, { requests: 200, concurrency: 4, pick, headers: SITE }), load(b.url, { requests: 200, concurrency: 4, pick, headers: SITE })])
  const all = [...ra, ...rb]
  return { hot: all.filter((o) => o.path.startsWith('/hot/')), miss: all.filter((o) => !o.path.startsWith('/hot/')) }
}

function expectServed(r: { hot: Outcome[]; miss: Outcome[] }, tag: string): void {
  expect(tally(r.hot)).toEqual({ 200: r.hot.length })
  expect(r.hot.every((o) => o.headers['x-cache'] === 'HIT')).toBe(true)
  expect(tally(r.miss)).toEqual({ 200: r.miss.length })
  // Each miss went on to the origin (one node each; coalescing is per node).
  expect(origin.requests.filter((q) => q.url.startsWith(`/${tag}/`)).length).toBeGreaterThanOrEqual(new Set(r.miss.map((o) => o.path)).size)
}

/**
 * L2 works again: a page A fetches is written to Redis and B serves it from there without asking
 * the origin. (Checked through B's answers, not the store's key layout, which is not this test's.)
 */
async function expectL2Back(): Promise<void> {
  await waitFor(async () => {
    const path = `/probe/${probeN++}`
    await one(a.url, path, undefined, SITE)
    // A's write to L2 is not awaited by its response: give it its moment, then ask B.
    await waitFor(async () => (await probe.dbsize().catch(() => 0)) > 0, 2000, 20).catch(() => undefined)
    const before = origin.hits(path)
    const fromB = await one(b.url, path, undefined, SITE)
    return fromB.status === 200 && String(fromB.headers['cache-status']).includes('detail=l2') && origin.hits(path) === before
  }, 20_000, 100)
}

/** The bus works again: a purge on A drops B's L1 copy (B then misses and asks the origin). */
async function expectBusBack(): Promise<void> {
  await waitFor(async () => {
    const res = await request(`${a.adminUrl}/purge`, { method: 'POST', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ urls: ['/hot/0'] }) })
    await res.body.text()
    const r = await one(b.url, '/hot/0', undefined, SITE)
    return r.status === 200 && r.headers['x-cache'] !== 'HIT'
  }, 20_000, 200)
}

describe('chaos: redis', () => {
  it('redis-server SIGKILLed: L1 hits and origin misses carry on', async () => {
    await redis.kill()
    expectServed(await mixedLoad('killed'), 'killed')
  })

  it('restarted empty on the same port: L2 and the bus recover by themselves', async () => {
    await redis.restart()
    await expectL2Back()
    await expectBusBack()
  })

  it('paused (CLIENT PAUSE): L1 hits and origin misses carry on, then L2 recovers', async () => {
    // Re-warm the hot pages: the bus test purged one, and each node dropped its L1 when its
    // subscription came back after the restart (invalidations may have been missed meanwhile).
    for (let i = 0; i < HOT; i++) {
      await one(a.url, `/hot/${i}`, undefined, SITE)
      await one(b.url, `/hot/${i}`, undefined, SITE)
    }
    await probe.call('CLIENT', 'PAUSE', '3000', 'ALL')
    const r = await mixedLoad('paused')
    expectServed(r, 'paused')
    await expectL2Back()
  })
})
