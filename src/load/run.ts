/**
 * `strata load <url>`: load-tests a site through strata with autocannon's programmatic API and
 * reports what only strata can tell besides latency and req/s: the hit ratio, the spread over
 * upstreams, the ESI assembly time, and whether the load generator itself was the bottleneck.
 */
import autocannon from 'autocannon'
import { CACHE_OUTCOMES, LoadTally, readFacts, type CacheOutcome, type ResponseFacts } from './tally.js'

export interface LoadOptions {
  url: string
  connections: number
  durationSeconds: number
  /** Request paths (with query), taken in turn by every connection; default: the url's own. */
  paths?: readonly string[]
  /** A response header naming the upstream that served it (e.g. the demo's `x-served-by`). */
  upstreamHeader?: string
  /** The admin API, read before and after the run for the per-upstream attempt counts. */
  admin?: { url: string; token: string }
  /** Where autocannon draws its progress bar (a TTY); none when undefined. */
  progress?: NodeJS.WritableStream
}

export interface LoadReport {
  url: string
  connections: number
  durationSeconds: number
  paths: number
  /** Responses received (any status). */
  responses: number
  reqPerSec: { mean: number; p50: number; min: number; max: number }
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number }
  statusCodes: Record<string, number>
  /** Connection errors and timeouts (no response at all). */
  errors: number
  timeouts: number
  cache: Record<CacheOutcome, number>
  /** Hits (fresh, stale, revalidated) over responses with a cache field; null when none had one. */
  hitRatio: number | null
  /**
   * Spread over upstreams: from `upstreamHeader` (responses that were not served from the cache),
   * or from the admin API (upstream attempts, fragments and retries included).
   */
  upstreams: { source: 'header' | 'admin'; counts: Record<string, number> } | null
  /** Server-Timing `esi;dur` (ms), when strata sent it. */
  esi: { count: number; meanMs: number; p50Ms: number; p99Ms: number; maxMs: number } | null
  /** The load generator's own CPU: near 100% of one core, it measured itself, not the server. */
  generator: { cpuPercentOfOneCore: number; saturated: boolean }
  warnings: string[]
}

/** Above this share of one core, the load generator is its own bottleneck. */
export const SATURATION = 0.9

/** Checks and parses a `--paths` file: one path per line, `#` comments and blank lines skipped. */
export function parsePaths(text: string, file = 'paths file'): string[] {
  const paths: string[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    if (!line.startsWith('/') || /\s/.test(line)) throw new Error(`${file}:${i + 1}: "${line.slice(0, 80)}" is not a path (one per line, starting with "/")`)
    paths.push(line)
  }
  if (paths.length === 0) throw new Error(`${file}: no paths in it`)
  return paths
}

interface StatsBody {
  upstreamRequests?: Record<string, number>
}

async function upstreamAttempts(admin: { url: string; token: string }): Promise<Record<string, number>> {
  const res = await fetch(new URL('/stats', admin.url), { headers: { authorization: `Bearer ${admin.token}` } })
  if (res.status !== 200) {
    await res.body?.cancel()
    throw new Error(`admin ${admin.url}/stats answered ${res.status}${res.status === 401 ? ' (check --token)' : ''}`)
  }
  const body = (await res.json()) as StatsBody
  return body.upstreamRequests ?? {}
}

/** Runs the load and returns the report; rejects when the target cannot be reached at all. */
export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const target = new URL(opts.url)
  const upstreamHeader = opts.upstreamHeader?.toLowerCase()
  const before = opts.admin === undefined ? undefined : await upstreamAttempts(opts.admin)

  const tally = new LoadTally()
  // Header fields arrive before the response completes; autocannon counts a response when it
  // completes, so the facts wait on their connection until then (responses on one connection
  // complete in order) and the tally counts exactly the responses autocannon counts.
  const pending = new WeakMap<object, ResponseFacts>()
  const requests = (opts.paths ?? [`${target.pathname}${target.search}`]).map((path) => ({ method: 'GET' as const, path }))
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  let finished!: (err: unknown, result: autocannon.Result) => void
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finished = (err, result) => (err ? reject(err as Error) : resolve(result))
  })
  // The callback form returns the instance (the promise form does not).
  const instance = autocannon(
    {
      url: target.origin,
      connections: opts.connections,
      duration: opts.durationSeconds,
      requests,
      setupClient(client) {
        // http-parser-js's headers-complete info: the raw [name, value, …] list (@types says otherwise).
        ;(client as NodeJS.EventEmitter).on('headers', (info: { headers: string[] }) => {
          pending.set(client, readFacts(info.headers, upstreamHeader))
        })
      },
    },
    (err, result) => finished(err, result),
  )
  instance.on('response', (client: object) => {
    const f = pending.get(client)
    if (f !== undefined) {
      tally.add(f)
      pending.delete(client)
    }
  })
  if (opts.progress !== undefined) autocannon.track(instance, { outputStream: opts.progress, renderProgressBar: true, renderResultsTable: false, renderLatencyTable: false })
  const result = await done
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const after = opts.admin === undefined ? undefined : await upstreamAttempts(opts.admin)

  const statusCodes: Record<string, number> = {}
  for (const [code, s] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = (s as { count: number }).count
  const responses = Object.values(statusCodes).reduce((a, b) => a + b, 0)
  const share = wallUs > 0 ? (cpu.user + cpu.system) / wallUs : 0
  const warnings: string[] = []
  if (responses === 0) throw new Error(`no response from ${target.origin} in ${opts.durationSeconds}s (${result.errors} connection errors, ${result.timeouts} timeouts)`)
  if (share >= SATURATION) {
    warnings.push(
      `the load generator used ${Math.round(share * 100)}% of a CPU core: it was the bottleneck, so req/s and latency measure it as much as the server. Run it on another machine, or with fewer connections.`,
    )
  }
  let upstreams: LoadReport['upstreams'] = null
  if (tally.upstreams.size > 0) upstreams = { source: 'header', counts: Object.fromEntries([...tally.upstreams].sort((a, b) => b[1] - a[1])) }
  else if (before !== undefined && after !== undefined) {
    const counts: Record<string, number> = {}
    for (const [id, n] of Object.entries(after)) counts[id] = n - (before[id] ?? 0)
    upstreams = { source: 'admin', counts }
  }
  if (tally.total !== responses) warnings.push(`cache fields were read on ${tally.total} of ${responses} responses`)
  const esi = tally.esi()
  const ratio = tally.hitRatio()
  return {
    url: opts.url,
    connections: opts.connections,
    durationSeconds: opts.durationSeconds,
    paths: requests.length,
    responses,
    reqPerSec: { mean: result.requests.average, p50: result.requests.p50, min: result.requests.min, max: result.requests.max },
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max, mean: result.latency.average },
    statusCodes,
    errors: result.errors,
    timeouts: result.timeouts,
    cache: { ...tally.cache },
    hitRatio: ratio ?? null,
    upstreams,
    esi: esi ?? null,
    generator: { cpuPercentOfOneCore: Math.round(share * 1000) / 10, saturated: share >= SATURATION },
    warnings,
  }
}

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
const pct = (n: number) => `${fmt(n * 100, 1)}%`

/** The report as the plain-text table `strata load` prints. */
export function formatReport(r: LoadReport): string {
  const out: string[] = []
  const row = (k: string, v: string) => out.push(`  ${k.padEnd(18)} ${v}`)
  out.push(`strata load ${r.url}: ${r.connections} connections, ${r.durationSeconds}s${r.paths > 1 ? `, ${r.paths} paths` : ''}`)
  out.push('')
  row('requests', `${fmt(r.responses)} answered, ${fmt(r.reqPerSec.mean)} req/s (per second: min ${fmt(r.reqPerSec.min)}, median ${fmt(r.reqPerSec.p50)}, max ${fmt(r.reqPerSec.max)})`)
  row('latency ms', `p50 ${fmt(r.latencyMs.p50, 1)}  p90 ${fmt(r.latencyMs.p90, 1)}  p99 ${fmt(r.latencyMs.p99, 1)}  max ${fmt(r.latencyMs.max, 1)}`)
  row('status', Object.entries(r.statusCodes).map(([c, n]) => `${c}: ${fmt(n)}`).join('  '))
  row('errors', `${fmt(r.errors)} (${fmt(r.timeouts)} timeouts)`)
  const seen = CACHE_OUTCOMES.filter((o) => r.cache[o] > 0)
  row('cache', seen.map((o) => `${o === 'NONE' ? 'no cache field' : o} ${fmt(r.cache[o])}`).join('  '))
  row('hit ratio', r.hitRatio === null ? 'n/a (no X-Cache or Cache-Status in the responses)' : pct(r.hitRatio))
  if (r.upstreams !== null) {
    const total = Object.values(r.upstreams.counts).reduce((a, b) => a + b, 0)
    const spread = Object.entries(r.upstreams.counts).map(([id, n]) => `${id} ${fmt(n)}${total > 0 ? ` (${pct(n / total)})` : ''}`)
    row(r.upstreams.source === 'admin' ? 'upstream attempts' : 'origin answers', spread.length === 0 ? 'none' : spread.join('  '))
  }
  if (r.esi !== null) row('ESI assembly ms', `mean ${fmt(r.esi.meanMs, 2)}  p50 ${fmt(r.esi.p50Ms, 2)}  p99 ${fmt(r.esi.p99Ms, 2)}  max ${fmt(r.esi.maxMs, 2)} (${fmt(r.esi.count)} pages)`)
  row('load generator', `${fmt(r.generator.cpuPercentOfOneCore, 1)}% of one core`)
  for (const w of r.warnings) out.push(`\nwarning: ${w}`)
  return `${out.join('\n')}\n`
}
