import { describe, expect, it, onTestFinished } from 'vitest'
import { request } from 'undici'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { startBehind, startStrata, TEST_TOKEN, type RunningStrata } from '../helpers/strata.js'
import { startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/ports.js'
import { StrataMetrics } from '../../src/observability/metrics.js'
import { DURATION_BUCKETS } from '../../src/observability/request-tally.js'
import { Histogram, Registry } from 'prom-client'

/**
 * GET /metrics on the admin port: prom-client's text format, behind the token unless
 * admin.publicMetrics, with the request counters fed by the real request path (fast-path hits,
 * misses through fastify, passes), upstream attempts, ESI includes and purges.
 */

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }

async function scrape(s: RunningStrata, headers: Record<string, string> = AUTH): Promise<{ status: number; type: string; text: string }> {
  const res = await request(`${s.adminUrl}/metrics`, { headers })
  return { status: res.statusCode, type: String(res.headers['content-type']), text: await res.body.text() }
}

/** The value of one sample (`name{a="x",b="y"}`), labels given in any order; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3])
  }
  return undefined
}

async function get(url: string, init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string } = {}) {
  const res = await request(url, init)
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

const page = (req: IncomingMessage, res: ServerResponse) => {
  if (req.url === '/boom') {
    res.writeHead(500, { 'content-type': 'text/plain' })
    return res.end('boom')
  }
  res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=60' })
  res.end(`page ${req.url}`)
}

async function setup(overrides: Record<string, unknown> = {}) {
  const b = await startBehind([page], { log: { level: 'warn', access: false }, ...overrides })
  onTestFinished(() => b.close())
  return b
}

describe('GET /metrics', () => {
  it('is behind the admin token by default', async () => {
    const { s } = await setup()
    const anon = await scrape(s, {})
    expect(anon.status).toBe(401)
    expect(anon.text).not.toContain('strata_requests_total')
    const ok = await scrape(s)
    expect(ok.status).toBe(200)
    // prom-client's Prometheus text exposition.
    expect(ok.type).toContain('text/plain')
    expect(ok.text).toContain('# TYPE strata_requests_total counter')
  })

  it('admin.publicMetrics waives the token for /metrics only', async () => {
    const { s } = await setup({ admin: { publicMetrics: true } })
    expect((await scrape(s, {})).status).toBe(200)
    expect((await get(`${s.adminUrl}/stats`)).status).toBe(401)
    expect((await get(`${s.adminUrl}/upstreams`)).status).toBe(401)
  })

  it('counts requests by cache status and status class, with durations, from every path', async () => {
    const { s, origins } = await setup()
    expect((await get(`${s.url}/a`)).headers['x-cache']).toBe('MISS')
    // The second one is a fast-path hit, answered before fastify.
    expect((await get(`${s.url}/a`)).headers['x-cache']).toBe('HIT')
    expect((await get(`${s.url}/a`)).headers['x-cache']).toBe('HIT')
    // (A POST to /a would invalidate /a: RFC 9111 §4.4.)
    expect((await get(`${s.url}/p`, { method: 'POST', body: 'x' })).status).toBe(200)
    expect((await get(`${s.url}/boom`)).status).toBe(500)
    expect(origins[0]!.hits()).toBe(3)

    const { text } = await scrape(s)
    expect(sample(text, 'strata_requests_total', { cache: 'HIT', code: '2xx' })).toBe(2)
    expect(sample(text, 'strata_requests_total', { cache: 'MISS', code: '2xx' })).toBe(1)
    expect(sample(text, 'strata_requests_total', { cache: 'PASS', code: '2xx' })).toBe(1)
    expect(sample(text, 'strata_requests_total', { cache: 'MISS', code: '5xx' })).toBe(1)
    expect(sample(text, 'strata_request_duration_seconds_count', { cache: 'HIT' })).toBe(2)
    expect(sample(text, 'strata_request_duration_seconds_bucket', { cache: 'HIT', le: '+Inf' })).toBe(2)
    // Upstream attempts: three reached the origin, one answered 500.
    expect(sample(text, 'strata_upstream_duration_seconds_count', { pool: 'default', upstream: 'b1' })).toBe(3)
    expect(sample(text, 'strata_upstream_failures_total', { pool: 'default', upstream: 'b1' })).toBe(1)
    expect(sample(text, 'strata_upstream_up', { pool: 'default', upstream: 'b1' })).toBe(1)
    expect(sample(text, 'strata_upstream_active_requests', { pool: 'default', upstream: 'b1' })).toBe(0)
    expect(sample(text, 'strata_upstream_weight', { pool: 'default', upstream: 'b1' })).toBe(1)
    expect(sample(text, 'strata_upstream_latency_ewma_seconds', { pool: 'default', upstream: 'b1' })).toBeGreaterThan(0)
    // The page cache's own counters, read at scrape time.
    expect(sample(text, 'strata_l1_entries')).toBe(1)
    expect(sample(text, 'strata_l1_bytes')).toBeGreaterThan(0)
    expect(sample(text, 'strata_cache_lookups_total', { result: 'hit' })).toBe(2)
    expect(sample(text, 'strata_coalesced_waits_total')).toBe(0)
    // Node's defaults and the event-loop delay.
    expect(sample(text, 'nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(0)
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0)

    // Mirrored counters only grow between scrapes: another hit adds one, not the total again.
    await get(`${s.url}/a`)
    const again = (await scrape(s)).text
    expect(sample(again, 'strata_cache_lookups_total', { result: 'hit' })).toBe(3)
    expect(sample(again, 'strata_requests_total', { cache: 'HIT', code: '2xx' })).toBe(3)
  })

  it('counts requests with the access log off too', async () => {
    const { s } = await setup({ log: { level: 'warn', access: false } })
    await get(`${s.url}/x`)
    await get(`${s.url}/x`)
    const { text } = await scrape(s)
    expect(sample(text, 'strata_requests_total', { cache: 'HIT', code: '2xx' })).toBe(1)
    expect(sample(text, 'strata_requests_total', { cache: 'MISS', code: '2xx' })).toBe(1)
  })

  it('counts purges by kind', async () => {
    const { s } = await setup()
    const purge = (body: unknown) => get(`${s.adminUrl}/purge`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    expect((await purge({ urls: ['/a'] })).status).toBe(200)
    expect((await purge({ tags: ['t'], soft: true })).status).toBe(200)
    expect((await purge({ all: true })).status).toBe(200)
    // A rejected command is not counted.
    expect((await purge({ prefix: 42 })).status).toBe(400)
    const { text } = await scrape(s)
    expect(sample(text, 'strata_purges_total', { kind: 'urls' })).toBe(1)
    expect(sample(text, 'strata_purges_total', { kind: 'tags' })).toBe(1)
    expect(sample(text, 'strata_purges_total', { kind: 'all' })).toBe(1)
    expect(sample(text, 'strata_purges_total', { kind: 'prefix' })).toBe(0)
    const recent = JSON.parse((await get(`${s.adminUrl}/purges`, { headers: AUTH })).body) as { purges: { command: unknown; purged: number }[] }
    expect(recent.purges.map((p) => p.command)).toEqual([{ all: true }, { tags: ['t'], soft: true }, { urls: ['/a'] }])
  })

  it('counts invalidation bus messages out of one node and into the other, and L2 lookups', async () => {
    const redis = await startRedis()
    onTestFinished(() => redis.stop())
    const b = await startBehind([page], { log: { level: 'warn', access: false }, cache: { redis: redis.url } })
    onTestFinished(() => b.close())
    const n2 = await startStrata([b.origins[0]!.url], { log: { level: 'warn', access: false }, cache: { redis: redis.url } })
    onTestFinished(() => n2.close())
    await get(`${b.s.url}/shared`)
    await waitFor(async () => (await get(`${n2.url}/shared`)).headers['x-cache'] === 'HIT')
    const purged = await get(`${b.s.adminUrl}/purge`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ urls: ['/shared'] }) })
    expect(purged.status).toBe(200)
    await waitFor(async () => sample((await scrape(n2)).text, 'strata_bus_messages_total', { direction: 'in' }) === 1)
    const one = (await scrape(b.s)).text
    expect(sample(one, 'strata_bus_messages_total', { direction: 'out' })).toBe(1)
    expect(sample(one, 'strata_bus_messages_total', { direction: 'in' })).toBe(0)
    const two = (await scrape(n2)).text
    // Its first request looked in L2 (a hit, or a miss if node 1's write had not landed yet).
    expect(sample(two, 'strata_l2_lookups_total', { result: 'hit' })! + sample(two, 'strata_l2_lookups_total', { result: 'miss' })!).toBeGreaterThanOrEqual(1)
    expect(sample(two, 'strata_l2_breaker_state')).toBe(0)
    expect(sample(two, 'strata_l2_errors_total')).toBe(0)
  })

  it('counts ESI includes by outcome and observes assembly time', async () => {
    const b = await startBehind([(req, res) => {
      if (req.url === '/frag') {
        res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'public, max-age=60' })
        return res.end('<b>frag</b>')
      }
      if (req.url === '/broken') {
        res.writeHead(500)
        return res.end()
      }
      res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'public, max-age=60', 'surrogate-control': 'content="ESI/1.0"' })
      res.end('<p><esi:include src="/frag"/><esi:include src="/broken" onerror="continue"/></p>')
    }], { log: { level: 'error', access: false }, esi: { enabled: true } })
    onTestFinished(() => b.close())
    const first = await get(`${b.s.url}/page`)
    expect(first.body).toBe('<p><b>frag</b></p>')
    await get(`${b.s.url}/page`)
    const { text } = await scrape(b.s)
    // First view: /frag fetched (a miss), /broken failed; second view: /frag from memory.
    expect(sample(text, 'strata_esi_includes_total', { outcome: 'miss' })).toBeGreaterThanOrEqual(2)
    expect(sample(text, 'strata_esi_includes_total', { outcome: 'error' })).toBeGreaterThanOrEqual(1)
    expect(sample(text, 'strata_esi_includes_total', { outcome: 'hit' })).toBeGreaterThanOrEqual(1)
    expect(sample(text, 'strata_esi_includes_total', { outcome: 'timeout' })).toBe(0)
    expect(sample(text, 'strata_esi_assembly_duration_seconds_count')).toBeGreaterThanOrEqual(1)
  })
})

describe('StrataMetrics', () => {
  it('labels every upstream series with its pool, and sums attempts by upstream and by pool for /stats', async () => {
    const up = (pool: string, id: string) => ({ pool, id, state: 'up', health: 'healthy', active: 2, failures: 1, latencyEwmaMs: 4, weight: 3 })
    const m = new StrataMetrics({ defaultMetrics: false, sources: { upstreams: () => [up('default', 'b1'), up('api', 'api1')] } })
    m.upstreamAttempt('default', 'b1', { ok: true, statusCode: 200, durationMs: 1 })
    m.upstreamAttempt('api', 'api1', { ok: true, statusCode: 502, durationMs: 1 })
    m.upstreamAttempt('api', 'api1', { ok: true, statusCode: 200, durationMs: 1 })
    const text = (await m.text()).body
    const lines = text.split('\n')
    expect(lines).toContain('strata_upstream_duration_seconds_count{pool="api",upstream="api1"} 2')
    expect(lines).toContain('strata_upstream_duration_seconds_count{pool="default",upstream="b1"} 1')
    expect(lines).toContain('strata_upstream_failures_total{pool="api",upstream="api1"} 1')
    expect(lines).toContain('strata_upstream_up{pool="api",upstream="api1",state="up",health="healthy"} 1')
    expect(lines).toContain('strata_upstream_active_requests{pool="api",upstream="api1"} 2')
    expect(lines).toContain('strata_upstream_weight{pool="default",upstream="b1"} 3')
    expect(lines).toContain('strata_upstream_latency_ewma_seconds{pool="api",upstream="api1"} 0.004')
    expect(lines).toContain('strata_upstream_consecutive_failures{pool="default",upstream="b1"} 1')
    // No upstream series without its pool.
    for (const line of lines) if (line.startsWith('strata_upstream_')) expect(line, line).toMatch(/[{,]pool="/)
    const summary = await m.summary()
    expect(summary.upstreamRequests).toEqual({ b1: 1, api1: 2 })
    expect(summary.poolRequests).toEqual({ default: 1, api: 2 })
  })

  it('maps an unknown cache status to PASS and an odd status code to 5xx instead of throwing', async () => {
    const m = new StrataMetrics({ defaultMetrics: false })
    m.record({ method: 'GET', url: '/', status: 999, ms: 1, upstream: undefined, cache: 'WEIRD', id: 'a' })
    m.record({ method: 'GET', url: '/', status: 0, ms: 1, upstream: undefined, cache: 'HIT', id: 'b' })
    const text = (await m.text()).body
    expect(sample(text, 'strata_requests_total', { cache: 'PASS', code: '5xx' })).toBe(1)
    expect(sample(text, 'strata_requests_total', { cache: 'HIT', code: '5xx' })).toBe(1)
  })

  it('exposes the same histogram as prom-client\'s own Histogram fed the same durations', async () => {
    const m = new StrataMetrics({ defaultMetrics: false })
    const reference = new Histogram({ name: 'ref', help: 'ref', labelNames: ['cache'], buckets: [...DURATION_BUCKETS], registers: [new Registry()] })
    // Bucket edges exactly, between them, beyond the last, zero.
    const ms = [0, 0.1, 0.10001, 0.3, 1, 2.5, 7, 250, 999, 10_000, 10_001, 60_000]
    for (const v of ms) {
      m.record({ method: 'GET', url: '/', status: 200, ms: v, upstream: undefined, cache: 'MISS', id: 'c' })
      reference.labels('MISS').observe(v / 1000)
    }
    const ours = (await m.text()).body
    const theirs = (await reference.get()).values.filter((v) => v.labels['cache'] === 'MISS')
    for (const v of theirs) {
      const suffix = (v as { metricName?: string }).metricName!.slice('ref'.length)
      const labels: Record<string, string> = { cache: 'MISS' }
      const le = (v.labels as Record<string, string | number | undefined>)['le']
      if (le !== undefined) labels['le'] = String(le)
      const got = sample(ours, `strata_request_duration_seconds${suffix}`, labels)
      if (suffix === '_sum') expect(got).toBeCloseTo(v.value, 9)
      else expect(got, `${suffix} ${JSON.stringify(labels)}`).toBe(v.value)
    }
  })
})
