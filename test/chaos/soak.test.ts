import { describe, expect, it, onTestFinished } from 'vitest'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { request } from 'undici'
import { startOrigin } from '../helpers/origin.js'
import { startStrata, type RunningStrata } from '../helpers/strata.js'
import { waitFor } from '../helpers/ports.js'
import { loadFor, tally, type Outcome } from './load.js'

/**
 * A soak with random keys over a cache smaller than the key space (issue #10, chaos): the cache
 * keeps to maxBytes, RSS stays within maxBytes plus a fixed overhead, and the process's sockets and
 * timers do not grow from one phase to the next. One minute with STRATA_SOAK=1 (.ci/run sets it);
 * a few seconds otherwise. strata runs in this process, so its resources are this process's.
 */

const SOAK_MS = process.env['STRATA_SOAK'] === '1' ? 60_000 : 4_500
const MAX_BYTES = 2 * 1024 * 1024
const BODY = 8 * 1024
const KEYS = 2000 // 16 MB of pages for a 2 MB cache
/** Node, V8, fastify, undici, vitest and the load's own garbage; not a function of the load's length. */
const FIXED_OVERHEAD = 160 * 1024 * 1024

/** Live heap growth allowed between the first phase and the end (retained per request would show tens of MB). */
const HEAP_SLACK = 24 * 1024 * 1024

// A full GC before each sample, so the heap figures are live objects, not garbage not yet collected.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

interface Sample {
  rss: number
  heap: number
  sockets: number
  timers: number
}

function sample(): Sample {
  gc()
  const kinds = process.getActiveResourcesInfo()
  return {
    rss: process.memoryUsage.rss(),
    heap: process.memoryUsage().heapUsed,
    sockets: kinds.filter((k) => k === 'TCPSocketWrap' || k === 'TCPWrap').length,
    timers: kinds.filter((k) => k === 'Timeout').length,
  }
}

async function stats(s: RunningStrata): Promise<{ cache: { bytes: number; entries: number; hits: number; misses: number } }> {
  const res = await request(`${s.adminUrl}/stats`, { headers: { authorization: `Bearer ${s.token}` } })
  return (await res.body.json()) as { cache: { bytes: number; entries: number; hits: number; misses: number } }
}

describe('chaos: soak', () => {
  it(`random keys over a cache smaller than the key space, ${SOAK_MS / 1000} s`, { timeout: SOAK_MS * 3 + 30_000 }, async () => {
    const page = Buffer.alloc(BODY, 'x')
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600', 'content-length': String(page.length) })
      res.end(page)
    })
    onTestFinished(() => origin.close())
    const s = await startStrata([origin.url], { log: { level: 'error', access: false }, cache: { maxBytes: MAX_BYTES } })
    onTestFinished(() => s.close())
    const start = sample()
    const pick = () => `/k/${Math.floor(Math.random() * KEYS)}`
    const phase = async (): Promise<Outcome[]> => loadFor(s.url, { ms: SOAK_MS / 3, concurrency: 8, pick, min: 200 })

    const first = await phase()
    const afterFirst = sample()
    const rest = [...(await phase()), ...(await phase())]
    const all = [...first, ...rest]
    expect(tally(all)).toEqual({ 200: all.length })
    expect(all.every((o) => o.bytes === BODY)).toBe(true)

    const st = (await stats(s)).cache
    // The cache was full and evicting: hits and misses both, bytes within the bound.
    expect(st.hits).toBeGreaterThan(0)
    expect(st.misses).toBeGreaterThan(MAX_BYTES / BODY) // more pages than fit: it evicted
    expect(st.bytes).toBeLessThanOrEqual(MAX_BYTES)
    expect(st.bytes).toBeGreaterThan(MAX_BYTES / 2)

    // The load's connections are closed; once strata's side has seen them go, sockets and timers
    // are back to what they were after the first phase: nothing accumulates per request.
    const end = await waitFor(() => {
      const now = sample()
      return now.sockets <= afterFirst.sockets && now.timers <= afterFirst.timers ? now : undefined
    }, 10_000, 50).catch(() => sample())
    console.info(
      `soak ${SOAK_MS / 1000} s: ${all.length} requests, ${st.hits} hits, ${st.misses} misses, cache ${st.bytes} B; ` +
        `rss ${(start.rss / 2 ** 20).toFixed(0)} → ${(afterFirst.rss / 2 ** 20).toFixed(0)} → ${(end.rss / 2 ** 20).toFixed(0)} MB; ` +
        `heap ${(start.heap / 2 ** 20).toFixed(0)} → ${(afterFirst.heap / 2 ** 20).toFixed(0)} → ${(end.heap / 2 ** 20).toFixed(0)} MB; ` +
        `sockets ${start.sockets} → ${afterFirst.sockets} → ${end.sockets}; timers ${start.timers} → ${afterFirst.timers} → ${end.timers}`,
    )
    expect(end.sockets).toBeLessThanOrEqual(afterFirst.sockets)
    expect(end.timers).toBeLessThanOrEqual(afterFirst.timers)
    expect(end.rss - start.rss).toBeLessThan(MAX_BYTES + FIXED_OVERHEAD)
    expect(end.heap - afterFirst.heap).toBeLessThan(HEAP_SLACK)
  })
})
