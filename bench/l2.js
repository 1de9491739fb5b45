// L2-backed hits: two strata nodes (default config, access log on) share one redis-server as the
// page cache's L2. Node A fills BENCH_L2_PAGES (2000) distinct 10 KB pages; node B then serves
// each once — an L2 hit (`Cache-Status: strata; hit; detail=l2`, L1 cold) — then each again from
// its L1, then BENCH_L2_PAGES pages nobody has asked for (misses, from the origin). Each pass
// runs over 20 keep-alive connections; rows are medians over BENCH_ROUNDS (3) rounds, each on
// fresh pages. No target in the issue: it shows what a node joining a warm cluster costs.
import { join } from 'node:path'
import { Pool } from 'undici'
import { ROOT, median, progress, report, round, startNode, startRedis, startStrata } from './lib.js'

const PAGES = Number(process.env.BENCH_L2_PAGES ?? 2000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const CONNECTIONS = 20

const stops = []
try {
  const redis = await startRedis()
  stops.push(() => redis.stop())
  const origin = await startNode(join(ROOT, 'bench/servers/origin.js'), [String(10 * 1024), 'public, max-age=3600'])
  stops.push(() => origin.stop())
  const node = async () => {
    const s = await startStrata({ listen: { host: '127.0.0.1', port: 0 }, admin: { enabled: false }, upstreams: [{ id: 'origin', url: origin.info.listening }], cache: { redis: redis.url } })
    stops.push(() => s.stop())
    return s
  }
  const a = await node()
  const b = await node()
  const poolA = new Pool(a.url, { connections: CONNECTIONS })
  const poolB = new Pool(b.url, { connections: CONNECTIONS })

  /** GETs every path over `pool`, CONNECTIONS at a time; req/s, latency percentiles (ms), and how many answers had `detail`. */
  async function pass(pool, paths, detail) {
    const ms = []
    let matched = 0
    let bad = 0
    let next = 0
    const t0 = performance.now()
    const worker = async () => {
      while (next < paths.length) {
        const path = paths[next++]
        const s = performance.now()
        // One Host for both nodes: it is part of the cache key, and their ports differ.
        const res = await pool.request({ method: 'GET', path, headers: { host: 'bench.example' } })
        await res.body.dump({ limit: Infinity })
        ms.push(performance.now() - s)
        if (res.statusCode !== 200) bad++
        if (detail !== undefined && String(res.headers['cache-status'] ?? '').includes(detail)) matched++
      }
    }
    await Promise.all(Array.from({ length: CONNECTIONS }, worker))
    const secs = (performance.now() - t0) / 1000
    ms.sort((x, y) => x - y)
    const q = (p) => ms[Math.min(ms.length - 1, Math.ceil(p * ms.length) - 1)]
    return { rps: paths.length / secs, p50: q(0.5), p99: q(0.99), matched, bad }
  }

  const runs = { 'B: L2 hit (L1 cold)': [], 'B: L1 hit': [], 'B: miss (origin)': [] }
  const bar = progress('l2', rounds * 4 * (PAGES / 2000))
  for (let r = 0; r < rounds; r++) {
    const paths = Array.from({ length: PAGES }, (_, i) => `/page?r=${r}&i=${i}`)
    bar.step(`round ${r + 1}/${rounds}: filling ${PAGES} pages through A`)
    await pass(poolA, paths)
    // L2 writes go out in order: once the last page filled is an L2 hit on B, all are.
    const sentinel = `/page?r=${r}&sentinel`
    await pass(poolA, [sentinel])
    for (let i = 0; i < 100; i++) {
      const res = await poolB.request({ method: 'GET', path: sentinel, headers: { host: 'bench.example' } })
      await res.body.dump()
      if (/; hit/.test(String(res.headers['cache-status'] ?? ''))) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    bar.step(`round ${r + 1}/${rounds}: B reads them (L2), again (L1), and fresh pages`)
    runs['B: L2 hit (L1 cold)'].push(await pass(poolB, paths, 'detail=l2'))
    runs['B: L1 hit'].push(await pass(poolB, paths, '; hit; ttl'))
    runs['B: miss (origin)'].push(await pass(poolB, paths.map((p) => `${p}&fresh`), 'fwd=uri-miss'))
  }
  bar.done()
  await Promise.all([poolA.close(), poolB.close()])

  const rows = {}
  for (const [label, rs] of Object.entries(runs)) {
    rows[label] = {
      rps: median(rs.map((x) => x.rps)),
      p50: median(rs.map((x) => x.p50)),
      p99: median(rs.map((x) => x.p99)),
      errors: 0,
      non2xx: rs.reduce((s, x) => s + x.bad, 0),
      rounds: rs.map((x) => ({ rps: Math.round(x.rps), p99: round(x.p99), asExpected: x.matched })),
    }
  }
  const l2 = rows['B: L2 hit (L1 cold)']
  report(
    'l2',
    rows,
    { 'L2 hit req/s / L1 hit req/s': l2.rps / rows['B: L1 hit'].rps, 'L2 hit req/s / miss req/s': l2.rps / rows['B: miss (origin)'].rps, 'L2 hits seen / pages': Math.min(...runs['B: L2 hit (L1 cold)'].map((x) => x.matched)) / PAGES },
    { pages: PAGES, connections: CONNECTIONS, rounds, pageBytes: 10 * 1024 },
    { 'L2 hits seen / pages': { min: 1 } },
  )
  if (Object.values(rows).some((r) => r.non2xx > 0)) process.exitCode = 1
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {})
}
