import { readFileSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { spawnStrata, type StrataProcess } from '../helpers/strata-process.js'
import { waitFor } from '../helpers/ports.js'
import { startRedis } from '../helpers/redis.js'

/**
 * `"workers": 2` end to end: the built `strata serve` as its own process, a primary and two
 * workers, real origins. Which worker served a request is never exposed to clients; the tests read
 * it from /stats (each worker's request count), and send every request on a new connection, since
 * the cluster hands out connections, not requests.
 */

interface Stats {
  cache: { hits: number; misses: number; l1: { bytes: number } }
  pools: Record<string, { upstreams: Array<{ id: string; state: string; active: number }>; requests: number }>
  latencyMs: { count: number }
  process: { pid: number }
  workers: Array<{ pid: number; requests: number; l1Bytes: number; error?: string }>
}

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

async function origin(body: string, cacheControl = 'max-age=60', opts: { hold?: Promise<void> } = {}): Promise<Origin> {
  const o = await startOrigin(async (req, res) => {
    if (req.url === '/slow') await opts.hold
    res.writeHead(200, { 'cache-control': cacheControl, 'content-type': 'text/plain' })
    res.end(`${body} ${req.url}`)
  })
  cleanups.push(() => o.close())
  return o
}

async function serve(origins: Origin[], overrides: Record<string, unknown> = {}): Promise<StrataProcess> {
  const s = await spawnStrata(
    origins.map((o) => o.url),
    { workers: 2, ...overrides },
  )
  cleanups.push(() => s.stop())
  return s
}

/** One GET on a new connection (so the cluster may hand it to either worker). */
function get(base: string, path: string, cookie?: string): Promise<{ status: number; cache: string | undefined; body: string; setCookie: string[] }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { agent: false, headers: { connection: 'close', ...(cookie === undefined ? {} : { cookie }) } }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cache: res.headers['x-cache'] as string | undefined, body, setCookie: res.headers['set-cookie'] ?? [] }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

async function admin(s: StrataProcess, method: string, path: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(`${s.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${s.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, json, text }
}

const stats = async (s: StrataProcess): Promise<Stats> => (await admin(s, 'GET', '/stats')).json as Stats

/**
 * Sends GETs on new connections until every worker has answered at least one more request than in
 * `before`; answers the responses. Bounded, so a worker that never gets traffic fails the test.
 */
async function untilEveryWorkerServed(s: StrataProcess, path: string, before: Stats, cookie?: string): Promise<Array<{ status: number; cache: string | undefined; body: string }>> {
  const base = new Map(before.workers.map((w) => [w.pid, w.requests]))
  const out = []
  for (let i = 0; i < 60; i++) {
    out.push(await get(s.url, path, cookie))
    const now = await stats(s)
    if (now.workers.length === before.workers.length && now.workers.every((w) => w.requests > (base.get(w.pid) ?? 0))) return out
  }
  throw new Error(`not every worker served ${path} within 60 requests: ${JSON.stringify((await stats(s)).workers)}`)
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('workers: 2', () => {
  it('serves from two processes with aggregated /stats and /metrics, and a purge through admin reaches every worker', async () => {
    const o = await origin('hello')
    const s = await serve([o])
    const first = await stats(s)
    expect(first.workers).toHaveLength(2)
    const pids = first.workers.map((w) => w.pid)
    expect(new Set(pids).size).toBe(2)
    expect(pids).not.toContain(s.child.pid)
    expect(first.process.pid).toBe(s.child.pid)

    const warm = await untilEveryWorkerServed(s, '/a', first)
    expect(warm.every((r) => r.status === 200 && r.body === 'hello /a')).toBe(true)
    // Each worker has its own L1: the object is fetched once per worker, then hit in each.
    expect(o.hits('/a')).toBe(2)
    // A worker counts a request as its response ends; wait for the last count to land.
    const warmStats = await waitFor(async () => {
      const st = await stats(s)
      return st.latencyMs.count === warm.length ? st : undefined
    })
    expect(warmStats.cache.misses).toBe(2)
    expect(warmStats.cache.hits).toBe(warm.length - 2)
    expect(warmStats.latencyMs.count).toBe(warm.length)
    expect(warmStats.workers.reduce((n, w) => n + w.requests, 0)).toBe(warm.length)
    for (const w of warmStats.workers) expect(w.l1Bytes).toBeGreaterThan(0)
    expect(warmStats.cache.l1.bytes).toBe(warmStats.workers.reduce((n, w) => n + w.l1Bytes, 0))

    const metrics = await admin(s, 'GET', '/metrics')
    expect(metrics.status).toBe(200)
    for (const pid of pids) expect(metrics.text).toMatch(new RegExp(`^strata_l1_bytes\\{pid="${pid}"\\} [1-9]`, 'm'))
    const hits2xx = /^strata_requests_total\{cache="HIT",code="2xx"\} (\d+)$/m.exec(metrics.text)
    expect(Number(hits2xx?.[1])).toBe(warm.length - 2)
    expect(metrics.text).toMatch(/^strata_workers 2$/m)
    // Upstream attempts carry their pool and are summed over the workers, as /stats's pool totals are.
    expect(metrics.text).toMatch(/^strata_upstream_duration_seconds_count\{pool="default",upstream="b1"\} 2$/m)
    expect(warmStats.pools['default']!.requests).toBe(2)

    // A bad purge is refused as in one process, by the workers' own validation.
    const bad = await admin(s, 'POST', '/purge', { bogus: true })
    expect(bad.status).toBe(400)
    expect(bad.json.error).toBe('STRATA_ADMIN_BAD_BODY')

    const purge = await admin(s, 'POST', '/purge', { urls: ['/a'] })
    expect(purge.status).toBe(200)
    expect(purge.json).toMatchObject({ purged: 2, l1: 2, workers: 2 })
    const purged = await stats(s)
    for (const w of purged.workers) expect(w.l1Bytes).toBe(0)
    // Every worker misses next: one more origin fetch per worker, however many requests it takes.
    const after = await untilEveryWorkerServed(s, '/a', purged)
    expect(o.hits('/a')).toBe(4)
    expect(after.filter((r) => r.cache === 'MISS')).toHaveLength(2)
  })

  it('an upstream drained through admin gets no traffic from any worker, nor from a worker that replaced a dead one', async () => {
    const a = await origin('a', 'no-store')
    const b = await origin('b', 'no-store')
    const s = await serve([a, b])
    const drained = await admin(s, 'POST', '/upstreams/b2/drain')
    expect(drained.status).toBe(200)
    expect(drained.json.upstream.state).toBe('draining')
    const bBefore = b.hits()
    const served = await untilEveryWorkerServed(s, '/page', await stats(s))
    expect(served.every((r) => r.status === 200 && r.body === 'a /page')).toBe(true)
    expect(b.hits()).toBe(bBefore)

    // Kill a worker: it is replaced, the replacement replays the drain, requests keep succeeding.
    const before = await stats(s)
    const victim = before.workers[0]!.pid
    process.kill(victim, 'SIGKILL')
    const replaced = await waitFor(async () => {
      const now = await stats(s)
      return now.workers.length === 2 && !now.workers.some((w) => w.pid === victim || w.error !== undefined) ? now : undefined
    }, 20_000)
    expect(alive(victim)).toBe(false)
    const again = await untilEveryWorkerServed(s, '/page', replaced)
    expect(again.every((r) => r.status === 200 && r.body === 'a /page')).toBe(true)
    expect(b.hits()).toBe(bBefore)
    const listed = await admin(s, 'GET', '/upstreams')
    expect(listed.json.upstreams.find((u: { id: string }) => u.id === 'b2').state).toBe('draining')
    const pools = await admin(s, 'GET', '/pools')
    expect(pools.json.pools.map((p: { name: string }) => p.name)).toEqual(['default'])
    expect(pools.json.pools[0].upstreams.find((u: { id: string }) => u.id === 'b2').state).toBe('draining')
    expect(s.logs().some((l) => l['msg'] === 'worker died; restarting it' && l['workerPid'] === victim)).toBe(true)
    expect(s.alive()).toBe(true)

    // An upstream added through admin is used by every worker.
    const c = await origin('c', 'no-store')
    expect((await admin(s, 'POST', '/upstreams', { id: 'b3', url: c.url })).status).toBe(201)
    // The pool route is the same change, fanned out and replayed like /upstreams….
    expect((await admin(s, 'POST', '/pools/default/upstreams/b1/drain')).status).toBe(200)
    expect((await admin(s, 'POST', '/pools/nope/upstreams/b1/drain')).status).toBe(404)
    const toC = await untilEveryWorkerServed(s, '/page', await stats(s))
    expect(toC.every((r) => r.body === 'c /page')).toBe(true)
  })

  it('a worker that hangs cannot hang the admin API: reads leave it out, changes answer 503 naming it', async () => {
    const o = await origin('hello')
    const s = await serve([o], { timeouts: { workerCallMs: 300 } })
    const [hung, ok] = (await stats(s)).workers.map((w) => w.pid) as [number, number]
    process.kill(hung, 'SIGSTOP')
    try {
      const partial = await stats(s)
      expect(partial.workers.find((w) => w.pid === ok)?.error).toBeUndefined()
      expect(partial.workers.find((w) => w.pid === hung)?.error).toMatch(/no answer within 300 ms/)
      const purge = await admin(s, 'POST', '/purge', { all: true })
      expect(purge.status).toBe(503)
      expect(purge.json.error).toBe('STRATA_WORKER_UNAVAILABLE')
      expect(purge.json.message).toContain(`pid ${hung}`)
    } finally {
      process.kill(hung, 'SIGCONT')
    }
    // Back: its late answers are dropped, and it answers again.
    await waitFor(async () => (await admin(s, 'POST', '/purge', { all: true })).status === 200, 10_000)
    expect(s.alive()).toBe(true)
  })

  it('with Redis, the workers share L2 and the bus as nodes do: one origin fetch for both, one purge for all', async () => {
    const redis = await startRedis()
    cleanups.push(() => redis.stop())
    const o = await origin('shared')
    const s = await serve([o], { cache: { redis: redis.url } })
    type L2 = { cache: { l2: { entries: number } } }
    // One request, then wait for its L2 write (asynchronous) before the other worker asks.
    const stored = async () => {
      expect((await get(s.url, '/r')).body).toBe('shared /r')
      await waitFor(async () => ((await stats(s)) as unknown as L2).cache.l2.entries === 1)
    }
    await stored()
    const first = await untilEveryWorkerServed(s, '/r', await stats(s))
    expect(first.every((r) => r.status === 200 && r.body === 'shared /r')).toBe(true)
    // The second worker found it in L2: the origin saw one request, not one per worker.
    expect(o.hits('/r')).toBe(1)
    const purge = await admin(s, 'POST', '/purge', { urls: ['/r'] })
    expect(purge.status).toBe(200)
    expect(purge.json.workers).toBe(2)
    expect(((await stats(s)) as unknown as L2).cache.l2.entries).toBe(0)
    await stored()
    await untilEveryWorkerServed(s, '/r', await stats(s))
    expect(o.hits('/r')).toBe(2)
  })

  it('SIGHUP reloads the config in every worker (checked by the primary first); a worker started later reads it too', async () => {
    const a = await origin('a', 'no-store')
    const b = await origin('b', 'no-store')
    const s = await serve([a])
    const file = s.child.spawnargs.at(-1)!
    const cfg = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>

    // An invalid file: refused by the primary with every problem, no worker touched.
    writeFileSync(file, JSON.stringify({ ...cfg, upstreams: [{ id: 'b2', url: 'ftp://nope' }] }))
    const refused = await admin(s, 'POST', '/config/reload')
    expect(refused.status).toBe(400)
    expect(refused.json.problems).toEqual(['upstreams[0].url: must be an http(s) URL'])

    writeFileSync(file, JSON.stringify({ ...cfg, upstreams: [{ id: 'b2', url: b.url }] }))
    process.kill(s.child.pid!, 'SIGHUP')
    await waitFor(() => s.logs().some((l) => l['msg'] === 'config reloaded in every worker'))
    const aBefore = a.hits()
    const served = await untilEveryWorkerServed(s, '/p', await stats(s))
    expect(served.every((r) => r.body === 'b /p')).toBe(true)
    expect(a.hits()).toBe(aBefore)
    expect((await admin(s, 'GET', '/status')).json.config.upstreams.map((u: { id: string }) => u.id)).toEqual(['b2'])

    // A worker started after the reload (this one replaces a killed one) serves the reloaded upstreams.
    const victim = (await stats(s)).workers[0]!.pid
    process.kill(victim, 'SIGKILL')
    const replaced = await waitFor(async () => {
      const now = await stats(s)
      return now.workers.length === 2 && !now.workers.some((w) => w.pid === victim || w.error !== undefined) ? now : undefined
    }, 20_000)
    const again = await untilEveryWorkerServed(s, '/p', replaced)
    expect(again.every((r) => r.body === 'b /p')).toBe(true)
    expect(a.hits()).toBe(aBefore)
    expect(s.alive()).toBe(true)
  })

  it('a sticky cookie issued by one worker holds in every worker, also after a reload, without a configured secret', async () => {
    const a = await origin('a', 'no-store')
    const b = await origin('b', 'no-store')
    const s = await serve([a, b], { balancer: { sticky: { mode: 'insert' } } })
    const first = await get(s.url, '/s')
    const cookie = first.setCookie.map((c) => c.split(';', 1)[0]!).find((c) => c.startsWith('strata_srv='))!
    expect(cookie).toBeDefined()
    const served = await untilEveryWorkerServed(s, '/s', await stats(s), cookie)
    expect(served.every((r) => r.body === first.body)).toBe(true)
    process.kill(s.child.pid!, 'SIGHUP')
    await waitFor(() => s.logs().some((l) => l['msg'] === 'config reloaded in every worker'))
    const after = await untilEveryWorkerServed(s, '/s', await stats(s), cookie)
    expect(after.every((r) => r.body === first.body)).toBe(true)
  })

  it('SIGTERM drains every worker (an in-flight request completes) and exits 0', async () => {
    let release!: () => void
    const hold = new Promise<void>((r) => (release = r))
    const o = await origin('slow', 'no-store', { hold })
    const s = await serve([o])
    const pids = (await stats(s)).workers.map((w) => w.pid)
    const inFlight = get(s.url, '/slow')
    await waitFor(() => o.hits('/slow') === 1)
    const exit = s.stop()
    await waitFor(() => s.logs().filter((l) => l['msg'] === 'worker shutting down').length === 2)
    release()
    expect(await inFlight).toMatchObject({ status: 200, body: 'slow /slow' })
    expect(await exit).toBe(0)
    await waitFor(() => pids.every((p) => !alive(p)))
  })
})
