import { describe, expect, it, onTestFinished } from 'vitest'
import { readFileSync, readdirSync } from 'node:fs'
import { request } from 'undici'
import { startOrigin } from '../helpers/origin.js'
import { spawnStrata, type StrataProcess } from '../helpers/strata-process.js'
import { waitFor } from '../helpers/ports.js'
import { loadFor, tally, type Outcome } from './load.js'

/**
 * A soak with random keys over a cache smaller than the key space (issue #10, chaos): the cache
 * keeps to maxBytes, RSS stays within maxBytes plus a fixed overhead, and the process's descriptors
 * (sockets) do not grow from one phase to the next. One minute with STRATA_SOAK=1 (.ci/run sets it);
 * a few seconds otherwise. strata runs as its own process; its memory and descriptors are read from /proc.
 */

const SOAK_MS = process.env['STRATA_SOAK'] === '1' ? 60_000 : 4_500
const MAX_BYTES = 2 * 1024 * 1024
const BODY = 8 * 1024
const KEYS = 2000 // 16 MB of pages for a 2 MB cache
/** Node, V8, fastify, undici and garbage not yet collected; not a function of the load's length. */
const FIXED_OVERHEAD = 160 * 1024 * 1024

interface Sample {
  rss: number
  fds: number
}

/** strata's own process, read from /proc: resident memory and open file descriptors (sockets). */
function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN)
  return { rss: kb * 1024, fds: readdirSync(`/proc/${pid}/fd`).length }
}

async function stats(s: StrataProcess): Promise<{ cache: { bytes: number; entries: number; hits: number; misses: number } }> {
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
    // strata runs as its own process (the built CLI), so what is measured is strata, not the test
    // runner that also holds this test's load generator.
    const s = await spawnStrata([origin.url], { cache: { maxBytes: MAX_BYTES } })
    onTestFinished(async () => void (await s.stop()))
    const pid = s.child.pid!
    const start = sample(pid)
    const pick = () => `/k/${Math.floor(Math.random() * KEYS)}`
    // Each phase is summed up and its outcomes dropped at once: the samples must measure strata's
    // memory, not this test's record of 150k answers.
    const summary = { requests: 0, statuses: {} as Record<string, number>, wrongBodies: 0 }
    const phase = async (): Promise<void> => {
      const out: Outcome[] = await loadFor(s.url, { ms: SOAK_MS / 3, concurrency: 8, pick, min: 200 })
      summary.requests += out.length
      for (const [status, n] of Object.entries(tally(out))) summary.statuses[status] = (summary.statuses[status] ?? 0) + n
      summary.wrongBodies += out.filter((o) => o.bytes !== BODY).length
    }

    await phase()
    const afterFirst = sample(pid)
    await phase()
    await phase()
    expect(summary.statuses).toEqual({ 200: summary.requests })
    expect(summary.wrongBodies).toBe(0)

    const st = (await stats(s)).cache
    // The cache was full and evicting: hits and misses both, bytes within the bound.
    expect(st.hits).toBeGreaterThan(0)
    expect(st.misses).toBeGreaterThan(MAX_BYTES / BODY) // more pages than fit: it evicted
    expect(st.bytes).toBeLessThanOrEqual(MAX_BYTES)
    expect(st.bytes).toBeGreaterThan(MAX_BYTES / 2)

    // The load's connections are closed; once strata's side has seen them go, its descriptors are
    // back to what they were after the first phase: nothing accumulates per request.
    const end = await waitFor(() => {
      const now = sample(pid)
      return now.fds <= afterFirst.fds ? now : undefined
    }, 10_000, 50).catch(() => sample(pid))
    console.info(
      `soak ${SOAK_MS / 1000} s: ${summary.requests} requests, ${st.hits} hits, ${st.misses} misses, cache ${st.bytes} B; ` +
        `rss ${(start.rss / 2 ** 20).toFixed(0)} → ${(afterFirst.rss / 2 ** 20).toFixed(0)} → ${(end.rss / 2 ** 20).toFixed(0)} MB; ` +
        `fds ${start.fds} → ${afterFirst.fds} → ${end.fds}`,
    )
    expect(end.fds).toBeLessThanOrEqual(afterFirst.fds)
    expect(end.rss - start.rss).toBeLessThan(MAX_BYTES + FIXED_OVERHEAD)
    expect(s.alive()).toBe(true)
  })
})
