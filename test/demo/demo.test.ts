import { afterEach, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { request } from 'undici'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/ports.js'
import { NewsDb } from '../../src/demo/news-db.js'
import { startDemoWebserver, type DemoWebserver } from '../../src/demo/webserver.js'
import { startDemo } from '../../src/demo/cluster.js'
import { silentLogger } from '../../src/observability/logger.js'

// The demo's webservers are real HTTP servers, each a node with its own data cache; Redis is a
// real redis-server. What reached the "database" is counted by NewsDb.queries.

const CLI = new URL('../../dist/cli.js', import.meta.url).pathname
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  // Webservers (and their caches) before the redis-server they use.
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function webserver(id: string, db: NewsDb, redis?: string, ttl?: string): Promise<DemoWebserver> {
  const w = await startDemoWebserver({ id, db, dataCache: { redis, ...(ttl === undefined ? {} : { ttl }) } })
  cleanups.push(() => w.close())
  return w
}

async function redisServer(): Promise<RedisServer> {
  const r = await startRedis()
  cleanups.push(() => r.stop())
  return r
}

async function get(url: string): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const res = await request(url)
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers }
}

const titleOf = async (w: DemoWebserver, id: number) => /<h1>([^<]*)<\/h1>/.exec((await get(`${w.url}/news/${id}`)).body)?.[1]

async function edit(w: DemoWebserver, id: number, title: string): Promise<number> {
  const res = await request(`${w.url}/news/${id}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ title }).toString() })
  await res.body.text()
  return res.statusCode
}

interface Stats {
  servedBy: string
  dataCache: { mode: string; l1Hits: number; l2Hits: number; misses: number; loaderCalls: number; busReceived: number; redis: string }
  db: { queries: number }
}
async function stats(w: DemoWebserver): Promise<Stats> {
  const res = await get(`${w.url}/api/stats`)
  expect(res.headers['cache-control']).toBe('no-store')
  return JSON.parse(res.body) as Stats
}

describe('demo webservers on a shared Redis (L1 + L2 + bus)', () => {
  it('reads once from the db, serves the other node from L2, and an edit reaches the other node', async () => {
    const redis = await redisServer()
    const db = new NewsDb(5)
    const b1 = await webserver('b1', db, redis.url)
    const b2 = await webserver('b2', db, redis.url)

    const q0 = db.queries
    expect(await titleOf(b1, 1)).toBe('strata ships a page cache')
    expect(db.queries).toBe(q0 + 1)
    expect(await titleOf(b1, 1)).toBe('strata ships a page cache')
    expect(db.queries).toBe(q0 + 1) // L1 hit on b1

    expect(await titleOf(b2, 1)).toBe('strata ships a page cache')
    expect(db.queries).toBe(q0 + 1) // L2 hit on b2: no query
    expect(await titleOf(b2, 1)).toBe('strata ships a page cache') // now in b2's L1

    const s1 = await stats(b1)
    const s2 = await stats(b2)
    expect(s1.dataCache).toMatchObject({ mode: 'l1+redis', redis: 'ready', loaderCalls: 1, l1Hits: 1 })
    expect(s2.dataCache).toMatchObject({ mode: 'l1+redis', redis: 'ready', loaderCalls: 0, l2Hits: 1, l1Hits: 1 })
    expect(s2.db.queries).toBe(db.queries)

    // The edit on b1 drops b1's copies at once and b2's L1 copy over the bus.
    expect(await edit(b1, 1, 'Edited on b1')).toBe(200)
    expect(await titleOf(b1, 1)).toBe('Edited on b1')
    await waitFor(async () => (await titleOf(b2, 1)) === 'Edited on b1')
    expect((await stats(b2)).dataCache.busReceived).toBeGreaterThan(0)

    // The news list was tagged `news` too: both nodes list the new title.
    for (const w of [b1, b2]) await waitFor(async () => (await get(`${w.url}/fragments/news-list`)).body.includes('Edited on b1'))
  })
})

describe('demo webservers without Redis (L1 only)', () => {
  it('each node caches on its own; the other node converges after the short TTL', async () => {
    const db = new NewsDb(5)
    const b1 = await webserver('b1', db, undefined, '1s')
    const b2 = await webserver('b2', db, undefined, '1s')

    const q0 = db.queries
    await titleOf(b1, 2)
    await titleOf(b1, 2)
    expect(db.queries).toBe(q0 + 1)
    expect(await titleOf(b2, 2)).toBe('Fragments assembled at the edge')
    expect(db.queries).toBe(q0 + 2) // no shared tier: b2 asks the db itself
    expect((await stats(b2)).dataCache).toMatchObject({ mode: 'l1-only', redis: 'none', loaderCalls: 1, l2Hits: 0 })

    const edited = Date.now()
    expect(await edit(b1, 2, 'Edited without Redis')).toBe(200)
    expect(await titleOf(b1, 2)).toBe('Edited without Redis') // the editing node dropped its copy
    const stale = await titleOf(b2, 2)
    if (Date.now() - edited < 900) expect(stale).toBe('Fragments assembled at the edge') // nothing told b2
    await waitFor(async () => (await titleOf(b2, 2)) === 'Edited without Redis', 5000, 50)

    // Pages built from per-node data get a short shared-cache life in this mode.
    expect((await get(`${b1.url}/news/2`)).headers['cache-control']).toBe('public, s-maxage=10, max-age=0, stale-while-revalidate=30')
  })
})

describe('demo-webserver CLI', () => {
  it('uses STRATA_DEMO_REDIS as the data cache L2', async () => {
    const redis = await redisServer()
    const child = spawn(process.execPath, [CLI, 'demo-webserver', '--id', 'bx', '--port', '0', '--host', '127.0.0.1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, STRATA_DEMO_REDIS: redis.url, STRATA_LOG_LEVEL: 'info' },
    })
    cleanups.push(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      await exited
    })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    const ready = await waitFor(() => out.split('\n').find((l) => l.includes('demo webserver ready')), 10_000)
    const { listening, dataCache } = JSON.parse(ready) as { listening: string; dataCache: string }
    expect(dataCache).toBe('l1+redis')
    await get(`${listening}/news/3`)
    await get(`${listening}/news/3`)
    const s = JSON.parse((await get(`${listening}/api/stats`)).body) as Stats
    expect(s.dataCache).toMatchObject({ mode: 'l1+redis', redis: 'ready', loaderCalls: 1, l1Hits: 1 })
    const code = once(child, 'exit')
    child.kill('SIGTERM')
    expect((await code)[0]).toBe(0)
  })
})

describe('demo cluster', () => {
  it('serves / assembled by strata from the webservers, with the news list', async () => {
    const demo = await startDemo({ logger: silentLogger, port: 0, adminPort: 0, host: '127.0.0.1', redis: null })
    cleanups.push(() => demo.close())
    const res = await get(`${demo.proxyUrl}/`)
    expect(res.status).toBe(200)
    expect(res.body).not.toContain('<esi:')
    expect(res.body).toContain('<ul class="news">')
    expect(res.body).toContain('A data cache for the app tier')
    expect(res.body).toContain('<footer>')
    // The data cache behind it, as a demo user sees it through strata.
    const s = JSON.parse((await get(`${demo.proxyUrl}/api/stats`)).body) as Stats
    expect(s.dataCache.mode).toBe('l1-only')
    expect(['b1', 'b2']).toContain(s.servedBy)
  })
})
