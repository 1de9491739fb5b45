import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type LabelValues } from 'prom-client'
import type { AccessLog, AccessRecord } from './access-log.js'
import { DURATION_BUCKETS, RequestTally } from './request-tally.js'
import { UpstreamTally } from './upstream-tally.js'

export { CACHE_STATUSES } from './request-tally.js'

/**
 * strata's Prometheus metrics, through prom-client (the exposition format is prom-client's, not
 * ours). The per-request counters are a RequestTally: a cache hit increments numbers in typed
 * arrays in place and builds no label object. Everything the
 * tiers already count (L1 size, L2 hits and breaker, upstream health…) is read when Prometheus
 * scrapes (`collect`), so it costs the request path nothing.
 */

/** Seconds; from 100 µs (a memory hit) to 10 s (a slow origin). */
const BUCKETS = [...DURATION_BUCKETS]

/** What the scrape-time collectors read; each tier answers from counters it keeps anyway. */
export interface MetricSources {
  cache?: () => {
    hits: number
    misses: number
    staleHits: number
    revalidated: number
    coalescedWaits: number
    passes: number
    bus: { enabled: true; published: number; received: number; rejected: number; queued: number } | { enabled: false; rejected: number }
    l1: { entries: number; bytes: number }
    l2: { enabled: false } | { enabled: true; hits: number; misses: number; errors: number; breaker: 'closed' | 'open' | 'half-open' }
  }
  /** Every upstream of every pool; `pool` labels its series (ids are unique across pools). */
  upstreams?: () => ReadonlyArray<UpstreamSample & { pool: string }>
}

/** One upstream as the collectors read it (a balancer snapshot). */
export interface UpstreamSample {
  id: string
  state: string
  health: string
  active: number
  failures: number
  latencyEwmaMs: number | null
  weight?: number
}

/** A counter whose value is owned elsewhere: each scrape adds what grew since the last one. */
export function mirrorCounter(counter: Counter<string>, labels: LabelValues<string>, key: string, seen: Map<string, number>, value: number): void {
  const last = seen.get(key) ?? 0
  // A source that restarted from zero (a reset tier) starts the mirror again from its new value.
  const delta = value >= last ? value - last : value
  seen.set(key, value)
  // inc(0) too: a series that exists at 0 lets rate() see its first increment.
  counter.inc(labels, delta)
}

/** What GET /stats adds from the metrics (the dashboard's numbers). */
export interface MetricsSummary {
  /** Requests answered since start, by cache status. */
  requests: Record<string, number>
  /** Upstream attempts since start, by upstream id. */
  upstreamRequests: Record<string, number>
  /** Upstream attempts since start, by pool (removed upstreams still count in theirs). */
  poolRequests: Record<string, number>
  /** Whole-request percentiles since start, from the histogram's buckets (upper bounds). */
  latencyMs: { p50: number | null; p90: number | null; p99: number | null; count: number }
}

export class StrataMetrics {
  readonly registry: Registry
  /** The per-request counters (see RequestTally for why they are not prom-client instruments). */
  readonly requests = new RequestTally()
  /** Upstream attempt times and failures, in typed arrays for the same reason. */
  readonly #upstreams = new UpstreamTally()
  readonly #esiDuration: { observe(v: number): void }
  readonly #esiIncludes: Counter<'outcome'>
  readonly #purges: Counter<'kind'>
  readonly #sources: MetricSources

  constructor(opts: { registry?: Registry; sources?: MetricSources; defaultMetrics?: boolean } = {}) {
    const registry = (this.registry = opts.registry ?? new Registry())
    this.#sources = opts.sources ?? {}
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 })

    this.requests.register(registry)

    this.#upstreams.register(registry)
    this.#esiDuration = new Histogram({ name: 'strata_esi_assembly_duration_seconds', help: 'Time to assemble an ESI page on the full path (fragments fetched as needed).', buckets: BUCKETS, registers: [registry] })
    this.#esiIncludes = new Counter({ name: 'strata_esi_includes_total', help: 'ESI includes by outcome.', labelNames: ['outcome'], registers: [registry] })
    this.#purges = new Counter({ name: 'strata_purges_total', help: 'Purge commands by kind (urls, prefix, pattern, tags, all).', labelNames: ['kind'], registers: [registry] })
    for (const kind of ['urls', 'prefix', 'pattern', 'tags', 'all']) this.#purges.labels(kind).inc(0)
    for (const outcome of ['hit', 'miss', 'error', 'timeout']) this.#esiIncludes.labels(outcome).inc(0)

    this.#cacheCollectors(registry)
    this.#upstreamCollectors(registry)
  }

  /** Counts one finished request, from the access record every request builds anyway. */
  readonly record = (r: AccessRecord): void => {
    this.requests.add(r.cache, r.status, r.ms)
  }

  /** The access log with the request metrics in front of it (metrics are always on; the log may be off). */
  recorder(log: AccessLog | undefined): AccessLog {
    const record = this.record
    return log === undefined ? record : (r) => {
      record(r)
      log(r)
    }
  }

  /** One upstream attempt ended (the forwarder's hook), in the pool `pool`. */
  upstreamAttempt(pool: string, upstreamId: string, o: { ok: boolean; statusCode?: number | undefined; aborted?: boolean | undefined; durationMs: number }): void {
    if (o.aborted === true) return
    this.#upstreams.observe(pool, upstreamId, o.durationMs, !o.ok || (o.statusCode ?? 0) >= 500)
  }

  esiAssembled(ms: number): void {
    this.#esiDuration.observe(ms / 1000)
  }

  esiInclude(outcome: 'hit' | 'miss' | 'error' | 'timeout', n = 1): void {
    if (n > 0) this.#esiIncludes.labels(outcome).inc(n)
  }

  /** A purge command was accepted; `cmd` is the validated body. */
  purged(cmd: unknown): void {
    if (cmd === null || typeof cmd !== 'object') return
    for (const kind of ['urls', 'prefix', 'pattern', 'tags', 'all']) if (kind in cmd) this.#purges.labels(kind).inc()
  }

  /** The Prometheus text exposition. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }

  /** Request totals and duration percentiles for the dashboard's JSON (read from the same instruments). */
  async summary(): Promise<MetricsSummary> {
    const t = this.requests
    const byUpstream = new Map<string, number>()
    const byPool = new Map<string, number>()
    for (const { pool, upstream, count } of this.#upstreams.series()) {
      // Summed: an id a reload moved to another pool has a series in each.
      byUpstream.set(upstream, (byUpstream.get(upstream) ?? 0) + count)
      byPool.set(pool, (byPool.get(pool) ?? 0) + count)
    }
    // fromEntries defines own keys: an id or pool named `__proto__` stays a plain key.
    const upstreamRequests = Object.fromEntries(byUpstream)
    const poolRequests = Object.fromEntries(byPool)
    return { requests: t.byStatus(), upstreamRequests, poolRequests, latencyMs: { p50: t.percentileMs(0.5), p90: t.percentileMs(0.9), p99: t.percentileMs(0.99), count: t.total } }
  }

  #cacheCollectors(registry: Registry): void {
    const source = this.#sources.cache
    if (source === undefined) return
    // Each instrument reads the tier's stats when it is scraped (a few counters, no I/O).
    const seen = new Map<string, number>()
    const registers = [registry]
    new Gauge({ name: 'strata_l1_entries', help: 'Entries in the memory tier (L1).', registers, collect() { this.set(source().l1.entries) } })
    new Gauge({ name: 'strata_l1_bytes', help: 'Bytes held by the memory tier (L1).', registers, collect() { this.set(source().l1.bytes) } })
    new Counter({
      name: 'strata_cache_lookups_total',
      help: "Page-cache lookups by result (the page cache's own counters).",
      labelNames: ['result'],
      registers,
      collect() {
        const s = source()
        mirrorCounter(this, { result: 'hit' }, 'hit', seen, s.hits)
        mirrorCounter(this, { result: 'miss' }, 'miss', seen, s.misses)
        mirrorCounter(this, { result: 'stale' }, 'stale', seen, s.staleHits)
        mirrorCounter(this, { result: 'revalidated' }, 'revalidated', seen, s.revalidated)
        mirrorCounter(this, { result: 'pass' }, 'pass', seen, s.passes)
      },
    })
    new Counter({ name: 'strata_coalesced_waits_total', help: "Requests that waited for another request's origin fetch of the same key.", registers, collect() { mirrorCounter(this, {}, 'coalesced', seen, source().coalescedWaits) } })
    new Counter({
      name: 'strata_bus_messages_total',
      help: 'Page-cache invalidation bus messages: published by this node (out), received from others (in).',
      labelNames: ['direction'],
      registers,
      collect() {
        const bus = source().bus
        if (!bus.enabled) return
        mirrorCounter(this, { direction: 'out' }, 'busOut', seen, bus.published)
        mirrorCounter(this, { direction: 'in' }, 'busIn', seen, bus.received)
      },
    })
    new Counter({
      name: 'strata_bus_rejected_total',
      help: 'Page-cache bus messages dropped as malformed or invalid (never applied).',
      registers,
      collect() { mirrorCounter(this, {}, 'busRejected', seen, source().bus.rejected) },
    })
    new Gauge({
      name: 'strata_bus_queued',
      help: 'Page-cache invalidations waiting for Redis to come back before they are published.',
      registers,
      collect() {
        const bus = source().bus
        this.set(bus.enabled ? bus.queued : 0)
      },
    })
    new Counter({
      name: 'strata_l2_lookups_total',
      help: 'L2 (Redis) lookups by result.',
      labelNames: ['result'],
      registers,
      collect() {
        const l2 = source().l2
        if (!l2.enabled) return
        mirrorCounter(this, { result: 'hit' }, 'l2hit', seen, l2.hits)
        mirrorCounter(this, { result: 'miss' }, 'l2miss', seen, l2.misses)
      },
    })
    new Counter({
      name: 'strata_l2_errors_total',
      help: 'L2 (Redis) operations that failed or timed out.',
      registers,
      collect() {
        const l2 = source().l2
        if (l2.enabled) mirrorCounter(this, {}, 'l2err', seen, l2.errors)
      },
    })
    new Gauge({
      name: 'strata_l2_breaker_state',
      help: 'L2 circuit breaker: 0 closed, 1 half-open, 2 open (absent without L2).',
      registers,
      collect() {
        const l2 = source().l2
        if (l2.enabled) this.set(l2.breaker === 'closed' ? 0 : l2.breaker === 'half-open' ? 1 : 2)
      },
    })
  }

  #upstreamCollectors(registry: Registry): void {
    const source = this.#sources.upstreams
    if (source === undefined) return
    const registers = [registry]
    // Reset first: a removed upstream disappears from the gauges.
    const gauge = <L extends string>(name: string, help: string, labelNames: L[], set: (g: Gauge<L>, u: UpstreamSample & { pool: string }) => void) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset()
          for (const u of source()) set(this, u)
        },
      })
    gauge('strata_upstream_up', 'Whether the upstream takes new requests (1) or not (0: down, ejected or draining).', ['pool', 'upstream', 'state', 'health'], (g, u) =>
      g.set({ pool: u.pool, upstream: u.id, state: u.state, health: u.health }, u.state === 'up' || u.state === 'slow-start' ? 1 : 0),
    )
    gauge('strata_upstream_active_requests', 'Requests in flight to the upstream.', ['pool', 'upstream'], (g, u) => g.set({ pool: u.pool, upstream: u.id }, u.active))
    gauge('strata_upstream_weight', 'Configured weight of the upstream.', ['pool', 'upstream'], (g, u) => g.set({ pool: u.pool, upstream: u.id }, u.weight ?? 1))
    gauge('strata_upstream_latency_ewma_seconds', "Moving average of the upstream's response-head time.", ['pool', 'upstream'], (g, u) => {
      if (u.latencyEwmaMs !== null) g.set({ pool: u.pool, upstream: u.id }, u.latencyEwmaMs / 1000)
    })
    gauge('strata_upstream_consecutive_failures', 'Consecutive failures seen by passive health checks.', ['pool', 'upstream'], (g, u) => g.set({ pool: u.pool, upstream: u.id }, u.failures))
  }
}
