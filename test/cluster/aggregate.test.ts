import { describe, expect, it } from 'vitest'
import { aggregateChange, aggregateStats, sumNumbers, type WorkerReply } from '../../src/admin/cluster-aggregate.js'
import { parsePrimaryMessage, parseWorkerMessage } from '../../src/cluster/ipc.js'
import { restartDelay, STABLE_AFTER_MS } from '../../src/cluster/backoff.js'
import { StrataMetrics } from '../../src/observability/metrics.js'
import { aggregateMetricsText, workerMetricsJson } from '../../src/observability/cluster-metrics.js'

const ok = (pid: number, status: number, body: unknown): WorkerReply => ({ pid, answer: { status, contentType: 'application/json; charset=utf-8', body: JSON.stringify(body) } })

function workerStats(hits: number, misses: number, l1Bytes: number, active: number) {
  return {
    cache: { hits, misses, staleHits: 0, revalidated: 0, coalescedWaits: 0, passes: 0, hitRatio: 0, entries: 1, bytes: l1Bytes, l1: { hits, misses, entries: 1, bytes: l1Bytes }, l2: { enabled: true, hits: 1, misses: 1, entries: 7, bytes: 700, breaker: 'closed', errors: 0, pendingPurges: 0 }, bus: { enabled: true, published: 1, received: 2, rejected: 0, queued: 0 } },
    requests: { HIT: hits, MISS: misses },
    upstreamRequests: { b1: misses },
    latencyMs: { p50: 1, p90: hits, p99: hits, count: hits + misses },
    upstreams: [{ id: 'b1', state: 'up', health: 'unchecked', active, failures: 0, latencyEwmaMs: 3 }],
    pools: {
      default: { upstreams: [{ id: 'b1', state: 'up', health: 'unchecked', active, failures: 0, latencyEwmaMs: 3 }], requests: misses },
      api: { upstreams: [{ id: 'api1', state: 'up', health: 'healthy', active: active * 10, failures: 0, latencyEwmaMs: 5 }, { id: 'api2', state: 'draining', health: 'healthy', active: 0, failures: 1, latencyEwmaMs: null }], requests: hits },
    },
    process: { uptimeSeconds: 1 },
  }
}

describe('cluster admin aggregation', () => {
  it('sums numbers at any depth and keeps the rest from the first', () => {
    expect(sumNumbers({ a: 1, b: { c: 2, s: 'x' }, only: 1 }, { a: 2, b: { c: 3, s: 'y' }, more: 4 })).toEqual({ a: 3, b: { c: 5, s: 'x' }, only: 1, more: 4 })
  })

  it('/stats: counters and L1 summed, L2 size once, active requests summed, one line per worker', () => {
    const a = aggregateStats([ok(11, 200, workerStats(3, 1, 100, 2)), ok(12, 200, workerStats(5, 1, 50, 1))], { pid: 10 })
    expect(a.status).toBe(200)
    const s = JSON.parse(a.body)
    expect(s.cache).toMatchObject({ hits: 8, misses: 2, hitRatio: 0.8, bytes: 150, l1: { bytes: 150 }, l2: { hits: 2, entries: 7, bytes: 700, breaker: 'closed' } })
    expect(s.requests).toEqual({ HIT: 8, MISS: 2 })
    expect(s.latencyMs).toEqual({ p50: 1, p90: 5, p99: 5, count: 10 })
    expect(s.upstreams[0].active).toBe(3)
    // Each pool merged like the top-level list: first worker's lines, in-flight summed, requests summed.
    expect(s.pools.default).toEqual({ upstreams: [{ id: 'b1', state: 'up', health: 'unchecked', active: 3, failures: 0, latencyEwmaMs: 3 }], requests: 2 })
    expect(s.pools.api.requests).toBe(8)
    expect(s.pools.api.upstreams).toEqual([
      { id: 'api1', state: 'up', health: 'healthy', active: 30, failures: 0, latencyEwmaMs: 5 },
      { id: 'api2', state: 'draining', health: 'healthy', active: 0, failures: 1, latencyEwmaMs: null },
    ])
    expect(s.process).toEqual({ pid: 10 })
    expect(s.workers).toEqual([
      { pid: 11, requests: 4, l1Bytes: 100 },
      { pid: 12, requests: 6, l1Bytes: 50 },
    ])
  })

  it('/stats: a pool one worker lacks (a change not yet replayed to it) counts only where it exists', () => {
    const older = workerStats(5, 1, 50, 1) as Record<string, any>
    delete older['pools'].api
    const s = JSON.parse(aggregateStats([ok(11, 200, workerStats(3, 1, 100, 2)), ok(12, 200, older)], { pid: 10 }).body)
    expect(s.pools.api.requests).toBe(3)
    expect(s.pools.api.upstreams[0].active).toBe(20)
    expect(s.pools.default.requests).toBe(2)
    // A worker without pools at all (from before pools) leaves the merge as it was.
    const bare = workerStats(1, 1, 1, 1) as Record<string, any>
    delete bare['pools']
    expect(JSON.parse(aggregateStats([ok(11, 200, bare)], { pid: 10 }).body).pools).toBeUndefined()
  })

  it('/stats: a worker that did not answer is listed with why, and left out of the totals', () => {
    const s = JSON.parse(aggregateStats([ok(11, 200, workerStats(3, 1, 100, 0)), { pid: 12, error: 'no answer within 5 ms' }], { pid: 10 }).body)
    expect(s.cache.hits).toBe(3)
    expect(s.workers[1]).toEqual({ pid: 12, requests: 0, l1Bytes: 0, error: 'no answer within 5 ms' })
    expect(aggregateStats([{ pid: 12, error: 'gone' }], { pid: 10 }).status).toBe(503)
  })

  it('a purge answers the counts summed; another change answers the first worker', () => {
    const p = aggregateChange('/purge', [ok(1, 200, { purged: 2, l1: 2, l2: 0 }), ok(2, 200, { purged: 1, l1: 1, l2: 0 })])
    expect(JSON.parse(p.body)).toEqual({ purged: 3, l1: 3, l2: 0, workers: 2 })
    const d = aggregateChange('/upstreams/b1/drain', [ok(1, 200, { upstream: { id: 'b1', active: 1 } }), ok(2, 200, { upstream: { id: 'b1', active: 0 } })])
    expect(JSON.parse(d.body)).toEqual({ upstream: { id: 'b1', active: 1 } })
    // A pool's upstream routes are changes like the default pool's: the first worker's answer.
    const pd = aggregateChange('/pools/api/upstreams/api1/drain', [ok(1, 200, { upstream: { id: 'api1', active: 2 } }), ok(2, 200, { upstream: { id: 'api1', active: 0 } })])
    expect(JSON.parse(pd.body)).toEqual({ upstream: { id: 'api1', active: 2 } })
    expect(aggregateChange('/pools/api/upstreams', [ok(1, 201, { upstream: { id: 'api3' } }), ok(2, 201, { upstream: { id: 'api3' } })]).status).toBe(201)
    expect(aggregateChange('/pools/nope/upstreams/x', [ok(1, 404, { error: 'STRATA_ADMIN_NOT_FOUND' }), ok(2, 404, { error: 'STRATA_ADMIN_NOT_FOUND' })]).status).toBe(404)
  })

  it('a refused change is refused; workers that disagree answer the most severe; a silent worker makes it a 503', () => {
    expect(aggregateChange('/purge', [ok(1, 400, { error: 'STRATA_ADMIN_BAD_BODY' }), ok(2, 400, { error: 'STRATA_ADMIN_BAD_BODY' })]).status).toBe(400)
    expect(aggregateChange('/upstreams', [ok(1, 201, {}), ok(2, 409, { error: 'STRATA_ADMIN_CONFLICT' })]).status).toBe(409)
    const u = aggregateChange('/purge', [ok(1, 200, { purged: 1 }), { pid: 2, error: 'the worker exited (SIGKILL)' }])
    expect(u.status).toBe(503)
    expect(JSON.parse(u.body)).toMatchObject({ error: 'STRATA_WORKER_UNAVAILABLE', workers: [{ pid: 1, status: 200 }, { pid: 2, error: 'the worker exited (SIGKILL)' }] })
    expect(aggregateChange('/purge', []).status).toBe(503)
  })
})

describe('cluster metrics merge with pools', () => {
  it('sums each (pool, upstream) counter and histogram across workers; gauges stay one series per worker', async () => {
    const sample = (pool: string, id: string, active: number) => ({ pool, id, state: 'up', health: 'unchecked', active, failures: 0, latencyEwmaMs: 2, weight: 1 })
    const worker = (active: number) => new StrataMetrics({ defaultMetrics: false, sources: { upstreams: () => [sample('default', 'b1', active), sample('api', 'api1', active + 1)] } })
    const w1 = worker(1)
    const w2 = worker(2)
    w1.upstreamAttempt('default', 'b1', { ok: true, statusCode: 200, durationMs: 3 })
    w1.upstreamAttempt('api', 'api1', { ok: false, durationMs: 3 })
    w2.upstreamAttempt('api', 'api1', { ok: true, statusCode: 503, durationMs: 3 })
    w2.upstreamAttempt('api', 'api1', { ok: true, statusCode: 200, durationMs: 3 })
    const { body } = await aggregateMetricsText([await workerMetricsJson(w1.registry, 11), await workerMetricsJson(w2.registry, 12)])
    const lines = body.split('\n')
    expect(lines).toContain('strata_upstream_duration_seconds_count{pool="api",upstream="api1"} 3')
    expect(lines).toContain('strata_upstream_duration_seconds_count{pool="default",upstream="b1"} 1')
    expect(lines).toContain('strata_upstream_failures_total{pool="api",upstream="api1"} 2')
    expect(lines).toContain('strata_upstream_active_requests{pool="api",upstream="api1",pid="11"} 2')
    expect(lines).toContain('strata_upstream_active_requests{pool="api",upstream="api1",pid="12"} 3')
    expect(lines).toContain('strata_upstream_up{pool="default",upstream="b1",state="up",health="unchecked",pid="12"} 1')
  })
})

describe('cluster IPC messages', () => {
  it('accepts the strata shapes and refuses anything else', () => {
    expect(parseWorkerMessage({ strata: 'hello' })).toEqual({ strata: 'hello' })
    expect(parseWorkerMessage({ strata: 'reply', id: 3, answer: { status: 200, contentType: 'x', body: '{}' } })).toBeDefined()
    expect(parseWorkerMessage({ strata: 'reply', id: 3, metrics: [] })).toBeDefined()
    expect(parseWorkerMessage({ strata: 'reply', id: 3, error: 'boom' })).toBeDefined()
    for (const bad of [null, 'ready', [], { strata: 'reply', id: -1, error: 'x' }, { strata: 'reply', id: 1, answer: { status: '200', contentType: 'x', body: '' } }, { strata: 'ready', proxy: { host: 'h' } }, { type: 'prom-client:getMetricsRes' }, { strata: 'nope' }]) {
      expect(parseWorkerMessage(bad), JSON.stringify(bad)).toBeUndefined()
    }
    expect(parsePrimaryMessage({ strata: 'call', id: 1, call: { op: 'admin', request: { method: 'POST', url: '/purge', body: { all: true } } } })).toBeDefined()
    expect(parsePrimaryMessage({ strata: 'call', id: 1, call: { op: 'metrics' } })).toBeDefined()
    for (const bad of [{ strata: 'call', id: 1, call: { op: 'admin', request: { method: 'post', url: '/purge' } } }, { strata: 'call', id: 1, call: { op: 'admin', request: { method: 'GET', url: 'http://x/' } } }, { strata: 'start', config: {}, journal: [{}] }, { strata: 'call', id: 1, call: { op: 'exec' } }]) {
      expect(parsePrimaryMessage(bad), JSON.stringify(bad)).toBeUndefined()
    }
  })
})

describe('worker restart backoff', () => {
  it('restarts at once after a steady run, doubles the wait for each quick death in a row, up to a cap', () => {
    expect(restartDelay(STABLE_AFTER_MS, 5)).toEqual({ delayMs: 100, quickDeaths: 0 })
    let quick = 0
    const delays: number[] = []
    for (let i = 0; i < 12; i++) {
      const r = restartDelay(10, quick)
      quick = r.quickDeaths
      delays.push(r.delayMs)
    }
    expect(delays.slice(0, 4)).toEqual([200, 400, 800, 1600])
    expect(delays.at(-1)).toBe(30_000)
  })
})
