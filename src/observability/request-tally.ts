import type { Registry } from 'prom-client'

/**
 * The per-request counters, kept in typed arrays and handed to prom-client when it scrapes.
 *
 * Why not prom-client's own Counter and Histogram here: their `inc`/`observe`, even on a child
 * bound with `labels()`, rebuild and hash the label set on every call, which measured ~1 µs per
 * request on this machine: a few percent of a cache hit, on every hit. Here a request is one
 * table index, one increment, a bucket search over 16 numbers and two additions; prom-client
 * still owns the exposition (`registry.metrics()` formats what `get()` returns).
 */

/** The cache statuses a request ends with (see page-cache CacheStatus), in table order. */
export const CACHE_STATUSES = ['HIT', 'MISS', 'STALE', 'PASS', 'REVALIDATED'] as const
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const
const PASS_INDEX = 3

/** Seconds; from 100 µs (a memory hit) to 10 s (a slow origin). */
export const DURATION_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

const NS = CACHE_STATUSES.length
const NC = STATUS_CLASSES.length
const NB = DURATION_BUCKETS.length + 1 // the last one is +Inf

export class RequestTally {
  /** [status * NC + class] → requests. */
  readonly counts = new Float64Array(NS * NC)
  /** [status * NB + bucket] → observations in that bucket alone (not cumulative). */
  readonly buckets = new Float64Array(NS * NB)
  readonly sums = new Float64Array(NS)
  readonly #boundsMs = Float64Array.from(DURATION_BUCKETS, (s) => s * 1000)
  readonly #index: Readonly<Record<string, number>> = Object.freeze(Object.fromEntries(CACHE_STATUSES.map((s, i) => [s, i])))

  /** One finished request: its cache status, HTTP status and duration in milliseconds. */
  add(cache: string, status: number, ms: number): void {
    const i = this.#index[cache] ?? PASS_INDEX
    const c = ((status / 100) | 0) - 1
    this.counts[i * NC + (c >= 0 && c < NC ? c : NC - 1)]!++
    const bounds = this.#boundsMs
    let b = 0
    while (b < bounds.length && ms > bounds[b]!) b++
    this.buckets[i * NB + b]!++
    // A clock step backwards must not make the sum go down.
    if (ms > 0) this.sums[i]! += ms
  }

  /** Requests so far by cache status (all status classes). */
  byStatus(): Record<string, number> {
    const out: Record<string, number> = {}
    CACHE_STATUSES.forEach((s, i) => {
      let n = 0
      for (let c = 0; c < NC; c++) n += this.counts[i * NC + c]!
      out[s] = n
    })
    return out
  }

  /** Whole-request percentiles (ms, a bucket's upper bound) over every status; null when unknown. */
  percentileMs(p: number): number | null {
    const perBucket = new Float64Array(NB)
    let total = 0
    for (let i = 0; i < NS; i++) for (let b = 0; b < NB; b++) perBucket[b]! += this.buckets[i * NB + b]!
    for (const n of perBucket) total += n
    if (total === 0) return null
    let seen = 0
    for (let b = 0; b < NB; b++) {
      seen += perBucket[b]!
      if (seen >= p * total) return b < DURATION_BUCKETS.length ? DURATION_BUCKETS[b]! * 1000 : null
    }
    return null
  }

  get total(): number {
    let n = 0
    for (const v of this.counts) n += v
    return n
  }

  /** Registers `strata_requests_total` and `strata_request_duration_seconds` with prom-client. */
  register(registry: Registry): void {
    const tally = this
    registry.registerMetric({
      name: 'strata_requests_total',
      help: 'Client requests answered, by cache status and HTTP status class.',
      type: 'counter',
      get: async () => ({
        name: 'strata_requests_total',
        help: 'Client requests answered, by cache status and HTTP status class.',
        type: 'counter',
        aggregator: 'sum',
        values: CACHE_STATUSES.flatMap((cache, i) => STATUS_CLASSES.map((code, c) => ({ labels: { cache, code }, value: tally.counts[i * NC + c]! }))),
      }),
    } as unknown as Parameters<Registry['registerMetric']>[0])
    registry.registerMetric({
      name: 'strata_request_duration_seconds',
      help: 'Whole-request time, from the request to the last byte handed to the socket, by cache status.',
      type: 'histogram',
      get: async () => ({
        name: 'strata_request_duration_seconds',
        help: 'Whole-request time, from the request to the last byte handed to the socket, by cache status.',
        type: 'histogram',
        aggregator: 'sum',
        values: CACHE_STATUSES.flatMap((cache, i) => {
          const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = []
          let cumulative = 0
          for (let b = 0; b < NB; b++) {
            cumulative += tally.buckets[i * NB + b]!
            values.push({ metricName: 'strata_request_duration_seconds_bucket', labels: { le: b < DURATION_BUCKETS.length ? DURATION_BUCKETS[b]! : '+Inf', cache }, value: cumulative })
          }
          values.push({ metricName: 'strata_request_duration_seconds_sum', labels: { cache }, value: tally.sums[i]! / 1000 })
          values.push({ metricName: 'strata_request_duration_seconds_count', labels: { cache }, value: cumulative })
          return values
        }),
      }),
    } as unknown as Parameters<Registry['registerMetric']>[0])
  }
}
