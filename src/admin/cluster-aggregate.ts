import { ERROR_CODES } from '../core/errors.js'

/**
 * How the primary of a multi-process strata (`"workers": N`) answers admin requests from its
 * workers' answers, as pure functions. Each worker runs the same admin routes as a single process
 * (in-process, never listening); the primary sends a change to every worker and a read to one, and
 * these functions fold the answers into one.
 */

/** An admin request the primary hands to a worker's admin routes. */
export interface AdminCall {
  method: string
  /** Path and query, as the client sent them. */
  url: string
  authorization?: string
  /** The parsed JSON body, if any. */
  body?: unknown
}

/** The HTTP answer a worker's admin routes gave. */
export interface AdminAnswer {
  status: number
  contentType: string
  body: string
}

/** One worker's part in a fanned-out call: its answer, or why there is none (timeout, exit). */
export type WorkerReply = { pid: number; answer: AdminAnswer } | { pid: number; error: string }

const JSON_TYPE = 'application/json; charset=utf-8'

/** Adds the numbers of `b` into a copy of `a`, key by key, at any depth; other values stay `a`'s. */
export function sumNumbers(a: unknown, b: unknown): unknown {
  if (typeof a === 'number' && typeof b === 'number') return a + b
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) || Array.isArray(b)) return a
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) }
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = k in out ? sumNumbers(out[k], v) : v
  return out
}

function parse(answer: AdminAnswer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(answer.body)
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

const json = (status: number, body: unknown): AdminAnswer => ({ status, contentType: JSON_TYPE, body: JSON.stringify(body) })

/** 503 naming the workers that did not answer: a change may now be applied in some workers only. */
function unavailable(replies: readonly WorkerReply[]): AdminAnswer {
  const missing = replies.filter((r) => 'error' in r) as Array<{ pid: number; error: string }>
  return json(ERROR_CODES.STRATA_WORKER_UNAVAILABLE.statusCode, {
    error: 'STRATA_WORKER_UNAVAILABLE',
    message: `${missing.length} of ${replies.length} workers did not answer (${missing.map((m) => `pid ${m.pid}: ${m.error}`).join('; ')}); the change may be applied in the others only`,
    workers: replies.map((r) => ('error' in r ? { pid: r.pid, error: r.error } : { pid: r.pid, status: r.answer.status })),
  })
}

/**
 * A change sent to every worker (purge, upstream add/drain/enable/remove…). Every worker answered
 * the same status: a purge answers its counts summed (`purged`, `l1`, `l2`: an object held by two
 * workers' memories is counted twice) and `workers`; any other change answers the first worker's
 * body, as they are alike. Workers that disagree (they should not: each replays the same changes)
 * answer the most severe status; a worker that did not answer makes it a 503.
 */
export function aggregateChange(path: string, replies: readonly WorkerReply[]): AdminAnswer {
  if (replies.length === 0) return json(503, { error: 'STRATA_WORKER_UNAVAILABLE', message: 'no worker is running' })
  if (replies.some((r) => 'error' in r)) return unavailable(replies)
  const answers = replies.map((r) => (r as { answer: AdminAnswer }).answer)
  const status = answers[0]!.status
  if (answers.some((a) => a.status !== status)) return answers.reduce((worst, a) => (a.status > worst.status ? a : worst))
  if (path === '/purge' && status === 200) {
    const bodies = answers.map(parse)
    if (bodies.every((b) => b !== undefined)) return json(200, { ...(bodies.slice(1).reduce((acc: unknown, b) => sumNumbers(acc, b), bodies[0]) as object), workers: answers.length })
  }
  return answers[0]!
}

/** One worker's line in /stats. */
export interface WorkerLine {
  pid: number
  /** Requests the worker answered since it started. */
  requests: number
  /** Bytes in the worker's own memory tier (L1). */
  l1Bytes: number
  /** Why the worker is missing from the totals (it did not answer in time). */
  error?: string
}

/**
 * One upstream list over every worker: the first worker's lines (every worker holds the same
 * upstreams, replayed changes included) with each upstream's in-flight requests summed.
 */
function mergeUpstreams(lists: ReadonlyArray<unknown>): Array<Record<string, unknown>> {
  const active = new Map<string, number>()
  for (const list of lists) {
    if (!Array.isArray(list)) continue
    for (const u of list as Array<{ id: string; active: number }>) active.set(u.id, (active.get(u.id) ?? 0) + Number(u.active ?? 0))
  }
  const first = Array.isArray(lists[0]) ? (lists[0] as Array<Record<string, unknown>>) : []
  return first.map((u) => ({ ...u, active: active.get(String(u['id'])) ?? u['active'] }))
}

/**
 * GET /stats over every worker: the page-cache counters and request totals summed, L1 summed (each
 * worker holds its own), L2 taken once (shared through Redis), upstreams from the first worker with
 * their in-flight requests summed (the top-level list and each pool's alike; a pool's `requests`
 * summed), latency percentiles as the largest worker's (an upper bound: percentiles do not add),
 * and `workers` listing each one.
 */
export function aggregateStats(replies: readonly WorkerReply[], primary: Record<string, unknown>): AdminAnswer {
  const workers: WorkerLine[] = []
  const bodies: Array<Record<string, any>> = []
  for (const r of replies) {
    const body = 'answer' in r && r.answer.status === 200 ? parse(r.answer) : undefined
    if (body === undefined) {
      workers.push({ pid: r.pid, requests: 0, l1Bytes: 0, error: 'error' in r ? r.error : `answered ${(r as { answer: AdminAnswer }).answer.status}` })
      continue
    }
    bodies.push(body)
    const latency = body['latencyMs'] as { count?: unknown } | undefined
    const cache = body['cache'] as { l1?: { bytes?: unknown } } | undefined
    workers.push({ pid: r.pid, requests: Number(latency?.count ?? 0), l1Bytes: Number(cache?.l1?.bytes ?? 0) })
  }
  if (bodies.length === 0) return json(503, { error: 'STRATA_WORKER_UNAVAILABLE', message: 'no worker answered', workers })
  const first = bodies[0]!
  const out: Record<string, any> = { ...first }
  for (const key of ['cache', 'esi', 'requests', 'upstreamRequests'] as const) {
    if (first[key] !== undefined) out[key] = bodies.slice(1).reduce((acc: unknown, b) => sumNumbers(acc, b[key]), first[key])
  }
  const cache = out['cache'] as Record<string, any> | undefined
  if (cache !== undefined) {
    const lookups = Number(cache['hits']) + Number(cache['staleHits']) + Number(cache['misses'])
    cache['hitRatio'] = lookups > 0 ? (Number(cache['hits']) + Number(cache['staleHits'])) / lookups : 0
    // One shared Redis: its size is the same seen from every worker.
    if (first['cache']?.l2?.enabled === true) cache['l2'] = { ...cache['l2'], entries: first['cache'].l2.entries, bytes: first['cache'].l2.bytes, breaker: first['cache'].l2.breaker }
  }
  if (first['latencyMs'] !== undefined) {
    const pct = (k: string) => bodies.reduce<number | null>((m, b) => (typeof b['latencyMs']?.[k] === 'number' ? Math.max(m ?? 0, b['latencyMs'][k]) : m), null)
    out['latencyMs'] = { p50: pct('p50'), p90: pct('p90'), p99: pct('p99'), count: bodies.reduce((n, b) => n + Number(b['latencyMs']?.count ?? 0), 0) }
  }
  if (Array.isArray(first['upstreams'])) out['upstreams'] = mergeUpstreams(bodies.map((b) => b['upstreams']))
  const pools = first['pools']
  if (pools !== null && typeof pools === 'object' && !Array.isArray(pools)) {
    // fromEntries: pool names are keys of our own making, never a route to the prototype.
    out['pools'] = Object.fromEntries(
      Object.entries(pools as Record<string, Record<string, unknown>>).map(([name, p]) => {
        const each = bodies.map((b) => (Object.hasOwn(b['pools'] ?? {}, name) ? b['pools'][name] : undefined) as Record<string, unknown> | undefined)
        return [name, { ...p, upstreams: mergeUpstreams(each.map((e) => e?.['upstreams'])), requests: each.reduce((n, e) => n + Number(e?.['requests'] ?? 0), 0) }]
      }),
    )
  }
  out['process'] = primary
  out['workers'] = workers
  return json(200, out)
}
