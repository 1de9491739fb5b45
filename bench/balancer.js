// Balancer pass-through: uncacheable 1 KB responses (the origins answer `Cache-Control:
// no-store`) through strata in front of 2 origin processes (round-robin), against
// @fastify/http-proxy alone in front of one of them, in the same run. Target (issue 4): ≥ 1.2×.
// Short rounds alternate the candidates (order reversed every other round) so noise from other
// jobs on the machine hits them alike; each row is the median of its rounds (req/s, p50, p99).
// Stays under 90 s with the defaults (4 rounds × 3 candidates × 4 s, plus warm-up).
import { join } from 'node:path'
import { ROOT, startNode, startStrata, load, report, warm, round } from './lib.js'

const SIZE = 1024
const seconds = Number(process.env.BENCH_SECONDS ?? 4)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50)
const rounds = Number(process.env.BENCH_ROUNDS ?? 4)

const started = []
let stopping = false
const start = async (p) => {
  const s = await p
  started.push(s)
  return s
}
try {
  const origins = [
    await start(startNode(join(ROOT, 'bench/servers/origin.js'), [String(SIZE), 'no-store'])),
    await start(startNode(join(ROOT, 'bench/servers/origin.js'), [String(SIZE), 'no-store'])),
  ]
  for (const o of origins) {
    o.child.once('exit', (code, signal) => {
      if (!stopping) console.error(`origin ${o.info.listening} exited during the bench (code ${code}, signal ${signal})`)
    })
  }
  const httpProxy = await start(startNode(join(ROOT, 'bench/servers/http-proxy.js'), [origins[0].info.listening]))
  const strataCfg = (access) => ({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { enabled: false },
    upstreams: origins.map((o, i) => ({ id: `o${i + 1}`, url: o.info.listening })),
    balancer: { algorithm: 'round-robin' },
    log: { level: 'info', access },
  })
  const strata = await start(startStrata(strataCfg(true)))
  const quiet = await start(startStrata(strataCfg(false)))

  const candidates = {
    '@fastify/http-proxy → 1 origin': `${httpProxy.info.listening}/item`,
    'strata → 2 origins (access log on)': `${strata.url}/item`,
    'strata → 2 origins (access log off)': `${quiet.url}/item`,
  }
  for (const [name, url] of Object.entries(candidates)) {
    // A bench of error pages measures nothing: check each candidate answers the origin's bytes.
    const res = await fetch(url)
    const body = await res.arrayBuffer()
    if (res.status !== 200 || body.byteLength !== SIZE) throw new Error(`${name}: ${res.status}, ${Buffer.from(body).toString().slice(0, 300)}`)
    await warm(url, 20)
    await load(url, { connections, seconds: 1 }) // open every keep-alive connection, JIT warm
  }
  const runs = Object.fromEntries(Object.keys(candidates).map((k) => [k, []]))
  for (let r = 0; r < rounds; r++) {
    const order = Object.keys(candidates)
    if (r % 2 === 1) order.reverse()
    for (const k of order) runs[k].push(await load(candidates[k], { connections, seconds }))
  }
  const rows = {}
  for (const [k, rs] of Object.entries(runs)) {
    const median = (f) => {
      const v = rs.map((x) => x[f]).sort((a, b) => a - b)
      const m = v.length >> 1
      return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
    }
    rows[k] = {
      tool: rs[0].tool,
      rps: median('rps'),
      p50: median('p50'),
      p99: median('p99'),
      errors: rs.reduce((a, x) => a + x.errors, 0),
      non2xx: rs.reduce((a, x) => a + x.non2xx, 0),
      rounds: rs.map((x) => ({ rps: round(x.rps, 0), p99: x.p99 })),
    }
  }
  const base = rows['@fastify/http-proxy → 1 origin'].rps
  report('balancer pass-through', rows, {
    'strata/http-proxy (log on)': rows['strata → 2 origins (access log on)'].rps / base,
    'strata/http-proxy (log off)': rows['strata → 2 origins (access log off)'].rps / base,
  }, { sizeBytes: SIZE, connections, seconds, rounds, cacheControl: 'no-store' })
  const failed = Object.entries(rows).filter(([, r]) => r.errors + r.non2xx > 0)
  if (failed.length > 0) {
    console.error(`errors or non-2xx answers in: ${failed.map(([k]) => k).join(', ')}; these numbers are not a pass-through measurement`)
    process.exitCode = 1
  }
} finally {
  stopping = true
  await Promise.all(started.map((s) => s.stop()))
}
