import { Agent, request } from 'undici'

/** One request's outcome: its status, or the error code when it got no response at all. */
export interface Outcome {
  path: string
  status: number
  /** undici's error code (ECONNRESET, UND_ERR_SOCKET…) when the request failed; '' otherwise. */
  error: string
  /** Response headers (lower-case names). */
  headers: Record<string, string | string[] | undefined>
  /** The body as text (empty when the load keeps only its length). */
  body: string
  bytes: number
  ms: number
}

/**
 * A bounded load: `requests` requests, `concurrency` at a time, each path chosen by `pick(i)`.
 * Bounded by count, not by time, so a busy machine makes it slower, never different. Its own
 * undici Agent, closed at the end, so it leaves no sockets behind. `between(i)` runs before
 * request i starts (to inject a failure part-way through).
 */
export async function load(base: string, opts: { requests: number; concurrency: number; pick: (i: number) => string; between?: (i: number) => Promise<void> | void; headers?: Record<string, string> }): Promise<Outcome[]> {
  const agent = new Agent({ connections: opts.concurrency, keepAliveTimeout: 10_000 })
  const out: Outcome[] = new Array(opts.requests)
  let next = 0
  const worker = async () => {
    for (;;) {
      const i = next++
      if (i >= opts.requests) return
      await opts.between?.(i)
      out[i] = await one(base, opts.pick(i), agent, opts.headers ?? {})
    }
  }
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker))
  } finally {
    await agent.close()
  }
  return out
}

/** A load for a fixed short duration instead of a count (the soak); bodies are counted, not kept. */
export async function loadFor(base: string, opts: { ms: number; concurrency: number; pick: (i: number) => string; /** and at least this many requests */ min?: number }): Promise<Outcome[]> {
  const agent = new Agent({ connections: opts.concurrency, keepAliveTimeout: 10_000 })
  const out: Outcome[] = []
  const until = Date.now() + opts.ms
  let i = 0
  const worker = async () => {
    while (Date.now() < until || i < (opts.min ?? 0)) out.push(await one(base, opts.pick(i++), agent, {}, false))
  }
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker))
  } finally {
    await agent.close()
  }
  return out
}

export async function one(base: string, path: string, dispatcher?: Agent, headers: Record<string, string> = {}, keepBody = true): Promise<Outcome> {
  const started = performance.now()
  try {
    const res = await request(base + path, { headers, ...(dispatcher === undefined ? {} : { dispatcher }) })
    const raw = Buffer.from(await res.body.arrayBuffer())
    return { path, status: res.statusCode, error: '', headers: keepBody ? res.headers : {}, body: keepBody ? raw.toString() : '', bytes: raw.length, ms: performance.now() - started }
  } catch (err) {
    return { path, status: 0, error: (err as { code?: string }).code ?? (err as Error).message, headers: {}, body: '', bytes: 0, ms: performance.now() - started }
  }
}

/** Outcomes grouped as "status" (or the error code) → count, for readable assertion failures. */
export function tally(outcomes: readonly Outcome[]): Record<string, number> {
  const t: Record<string, number> = {}
  for (const o of outcomes) {
    const k = o.error === '' ? String(o.status) : o.error
    t[k] = (t[k] ?? 0) + 1
  }
  return t
}
