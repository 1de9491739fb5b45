/**
 * What `strata load` reads from each response's header fields: the cache outcome (X-Cache, else
 * the RFC 9211 Cache-Status field), the upstream that served it (a header the origin sets, when
 * the user names one) and the ESI assembly time (Server-Timing `esi;dur=`, W3C Server Timing).
 * Pure and synchronous: one call per response, on the load generator's own event loop.
 */
import { parseList } from 'structured-headers'

/** strata's X-Cache values, and what a response without any cache field counts as. */
export const CACHE_OUTCOMES = ['HIT', 'STALE', 'REVALIDATED', 'MISS', 'PASS', 'NONE'] as const
export type CacheOutcome = (typeof CACHE_OUTCOMES)[number]

const X_CACHE: Readonly<Record<string, CacheOutcome>> = { HIT: 'HIT', STALE: 'STALE', REVALIDATED: 'REVALIDATED', MISS: 'MISS', PASS: 'PASS' }

/**
 * The cache outcome of one response. X-Cache (strata's, and many CDNs') wins; else the last
 * member of Cache-Status, the cache nearest the client (RFC 9211 §2): `hit` is a hit (stale when
 * its ttl is negative, §2.8), `fwd=stale` a revalidation, `fwd=bypass|method|request` a pass,
 * any other `fwd` a miss. A field that does not parse counts as NONE, never throws.
 */
export function cacheOutcome(xCache: string | undefined, cacheStatus: string | undefined): CacheOutcome {
  if (xCache !== undefined) {
    // "HIT from host" (Squid-style) counts by its first word.
    const word = xCache.trim().split(/[\s,;]/, 1)[0]!.toUpperCase()
    const o = X_CACHE[word]
    if (o !== undefined) return o
  }
  if (cacheStatus === undefined) return 'NONE'
  let members
  try {
    members = parseList(cacheStatus)
  } catch {
    return 'NONE'
  }
  const last = members[members.length - 1]
  if (last === undefined) return 'NONE'
  const params = last[1]
  if (params.get('hit') === true) {
    const ttl = params.get('ttl')
    return typeof ttl === 'number' && ttl < 0 ? 'STALE' : 'HIT'
  }
  const fwd = params.get('fwd')
  if (fwd === undefined) return 'NONE'
  const reason = String(fwd)
  if (reason === 'stale') return 'REVALIDATED'
  if (reason === 'bypass' || reason === 'method' || reason === 'request') return 'PASS'
  return 'MISS'
}

/**
 * The `dur` (ms) of the `esi` metric in a Server-Timing field (`esi;dur=1.2, upstream;dur=30`),
 * or undefined. Server-Timing is not a structured field, so a small scan; junk is ignored.
 */
export function esiDurationMs(serverTiming: string | undefined): number | undefined {
  if (serverTiming === undefined) return undefined
  for (const metric of serverTiming.split(',')) {
    const parts = metric.split(';')
    if (parts[0]!.trim().toLowerCase() !== 'esi') continue
    for (const p of parts.slice(1)) {
      const m = /^\s*dur\s*=\s*"?(\d+(?:\.\d+)?)"?\s*$/i.exec(p)
      if (m) return Number(m[1])
    }
  }
  return undefined
}

/** What one response said, as read from its header list. */
export interface ResponseFacts {
  cache: CacheOutcome
  upstream: string | undefined
  esiMs: number | undefined
}

/**
 * Reads the facts from a raw header list ([name, value, name, value…], as an HTTP parser gives
 * them). `upstreamHeader` is lower-case, or undefined to not look for one.
 */
export function readFacts(raw: readonly string[], upstreamHeader: string | undefined): ResponseFacts {
  let xCache: string | undefined
  let cacheStatus: string | undefined
  let serverTiming: string | undefined
  let upstream: string | undefined
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (name === 'x-cache') xCache = raw[i + 1]
    else if (name === 'cache-status') cacheStatus = cacheStatus === undefined ? raw[i + 1] : `${cacheStatus}, ${raw[i + 1]}`
    else if (name === 'server-timing') serverTiming = serverTiming === undefined ? raw[i + 1] : `${serverTiming}, ${raw[i + 1]}`
    else if (name === upstreamHeader) upstream = raw[i + 1]
  }
  return { cache: cacheOutcome(xCache, cacheStatus), upstream, esiMs: esiDurationMs(serverTiming) }
}

/** How many ESI durations are kept for percentiles (a uniform sample beyond that: Algorithm R). */
const ESI_SAMPLE = 10_000

/** Counts over a run: cache outcomes, upstreams, ESI durations. */
export class LoadTally {
  readonly cache: Record<CacheOutcome, number> = { HIT: 0, STALE: 0, REVALIDATED: 0, MISS: 0, PASS: 0, NONE: 0 }
  /** Responses that reached an upstream (not HIT or STALE), by the upstream header's value. */
  readonly upstreams = new Map<string, number>()
  total = 0
  #esiCount = 0
  #esiSum = 0
  #esiMax = 0
  readonly #esiSample: number[] = []
  readonly #random: () => number

  constructor(random: () => number = Math.random) {
    this.#random = random
  }

  add(f: ResponseFacts): void {
    this.total++
    this.cache[f.cache]++
    // A hit carries the header of the response it was stored from: only answers that reached an
    // upstream on this request say where the load went.
    if (f.upstream !== undefined && f.cache !== 'HIT' && f.cache !== 'STALE') this.upstreams.set(f.upstream, (this.upstreams.get(f.upstream) ?? 0) + 1)
    if (f.esiMs !== undefined) {
      this.#esiCount++
      this.#esiSum += f.esiMs
      if (f.esiMs > this.#esiMax) this.#esiMax = f.esiMs
      if (this.#esiSample.length < ESI_SAMPLE) this.#esiSample.push(f.esiMs)
      else {
        const j = Math.floor(this.#random() * this.#esiCount)
        if (j < ESI_SAMPLE) this.#esiSample[j] = f.esiMs
      }
    }
  }

  /**
   * Hits (fresh and stale) over responses that carried a cache field; undefined when none did.
   * A revalidated response counts as a hit too: the origin sent no body.
   */
  hitRatio(): number | undefined {
    const seen = this.total - this.cache.NONE
    if (seen === 0) return undefined
    return (this.cache.HIT + this.cache.STALE + this.cache.REVALIDATED) / seen
  }

  /** ESI assembly times from Server-Timing, or undefined when no response had one. */
  esi(): { count: number; meanMs: number; p50Ms: number; p99Ms: number; maxMs: number } | undefined {
    if (this.#esiCount === 0) return undefined
    const s = [...this.#esiSample].sort((a, b) => a - b)
    const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!
    return { count: this.#esiCount, meanMs: this.#esiSum / this.#esiCount, p50Ms: q(0.5), p99Ms: q(0.99), maxMs: this.#esiMax }
  }
}
