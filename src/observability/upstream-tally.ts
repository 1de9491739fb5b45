import type { Registry } from 'prom-client'
import { DURATION_BUCKETS } from './request-tally.js'

/**
 * The upstream attempt counters, kept in typed arrays per (pool, upstream) and handed to
 * prom-client when it scrapes, for the reason RequestTally gives: prom-client's `observe`, even
 * through a child bound with `labels()`, hashes the label set on every call, and every pass
 * request makes at least one attempt (the pass profile showed ~1.5% of busy time there).
 * Here an attempt is two map lookups, a bucket search and three additions.
 */

const NB = DURATION_BUCKETS.length + 1 // the last one is +Inf

/** One upstream's series. */
interface UpstreamSeries {
  readonly pool: string
  readonly upstream: string
  /** Observations per bucket alone (not cumulative). */
  readonly buckets: Float64Array
  sumMs: number
  count: number
  failures: number
}

/** A metric prom-client's registry formats from what `get()` returns (as it does its own). */
type RegisteredMetric = Parameters<Registry['registerMetric']>[0]

export class UpstreamTally {
  /** By pool, then upstream id. */
  readonly #pools = new Map<string, Map<string, UpstreamSeries>>()
  /** Every series in the order it was first seen, as prom-client's own instruments list them. */
  readonly #order: UpstreamSeries[] = []
  /** The series with failures, in the order of their first failure (as a prom-client counter lists them). */
  readonly #failedOrder: UpstreamSeries[] = []
  readonly #boundsMs = Float64Array.from(DURATION_BUCKETS, (s) => s * 1000)

  #series(pool: string, upstream: string): UpstreamSeries {
    let byId = this.#pools.get(pool)
    if (byId === undefined) this.#pools.set(pool, (byId = new Map()))
    let s = byId.get(upstream)
    if (s === undefined) {
      byId.set(upstream, (s = { pool, upstream, buckets: new Float64Array(NB), sumMs: 0, count: 0, failures: 0 }))
      this.#order.push(s)
    }
    return s
  }

  /** One attempt's time to the response head, in milliseconds. */
  observe(pool: string, upstream: string, ms: number, failed: boolean): void {
    const s = this.#series(pool, upstream)
    const bounds = this.#boundsMs
    let b = 0
    while (b < bounds.length && ms > bounds[b]!) b++
    s.buckets[b]!++
    s.sumMs += ms
    s.count++
    if (failed && s.failures++ === 0) this.#failedOrder.push(s)
  }

  /** Every series, in first-seen order. */
  series(): readonly Readonly<UpstreamSeries>[] {
    return this.#order
  }

  /** Registers `strata_upstream_duration_seconds` and `strata_upstream_failures_total` with prom-client. */
  register(registry: Registry): void {
    const durationHelp = 'Time to the upstream response head, per upstream attempt.'
    registry.registerMetric({
      name: 'strata_upstream_duration_seconds',
      help: durationHelp,
      type: 'histogram',
      get: async () => ({
        name: 'strata_upstream_duration_seconds',
        help: durationHelp,
        type: 'histogram',
        aggregator: 'sum',
        values: this.#order.flatMap(({ pool, upstream, buckets, sumMs, count }) => {
          const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = []
          let cumulative = 0
          for (let b = 0; b < NB; b++) {
            cumulative += buckets[b]!
            values.push({ metricName: 'strata_upstream_duration_seconds_bucket', labels: { le: b < DURATION_BUCKETS.length ? DURATION_BUCKETS[b]! : '+Inf', pool, upstream }, value: cumulative })
          }
          values.push({ metricName: 'strata_upstream_duration_seconds_sum', labels: { pool, upstream }, value: sumMs / 1000 })
          values.push({ metricName: 'strata_upstream_duration_seconds_count', labels: { pool, upstream }, value: count })
          return values
        }),
      }),
    } as unknown as RegisteredMetric)
    const failuresHelp = 'Upstream attempts that failed (connect error, timeout, reset or 5xx).'
    registry.registerMetric({
      name: 'strata_upstream_failures_total',
      help: failuresHelp,
      type: 'counter',
      get: async () => ({
        name: 'strata_upstream_failures_total',
        help: failuresHelp,
        type: 'counter',
        aggregator: 'sum',
        // As a prom-client counter: a series exists from its first failure on.
        values: this.#failedOrder.map(({ pool, upstream, failures }) => ({ labels: { pool, upstream }, value: failures })),
      }),
    } as unknown as RegisteredMetric)
  }
}
