// Balancer pass-through: uncacheable 1 KB responses (the origins answer `Cache-Control:
// no-store`) through strata in front of 2 origin processes (round-robin), against
// @fastify/http-proxy alone in front of one of them, in the same run. Target (issue 4): ≥ 1.2×.
// With --peers: HAProxy and nginx, each round-robin over the same 2 origins. Targets (issue 14):
// ≥ 0.8× HAProxy's req/s, ≤ 1.5× its CPU per request.
// How it measures (lib.js compare): a 1 s warm-up load per candidate, then BENCH_ROUNDS (4)
// rounds of BENCH_SECONDS (4 s) per candidate, order reversed every other round, so noise from
// other jobs on the machine hits them alike; each row is the median of its rounds (req/s, p50,
// p99, and the proxy process's CPU µs per request), and the ratios come from those medians.
// Stays under 90 s with the defaults (4 rounds × 3 candidates × 4 s, plus warm-up).
import { join } from 'node:path'
import { ROOT, compare, startNode, startStrata, startStrataWorkers, report, warm } from './lib.js'
import * as peers from './peers/index.js'

const SIZE = 1024
const seconds = Number(process.env.BENCH_SECONDS ?? 4)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50)
const rounds = Number(process.env.BENCH_ROUNDS ?? 4)

const started = []
let stopping = false
const start = async (p) => {
  const s = await p
  if (s !== undefined) started.push(s) // a peer that is not installed
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
    '@fastify/http-proxy → 1 origin': { url: `${httpProxy.info.listening}/item`, pid: httpProxy.child.pid },
    'strata → 2 origins (access log on)': { url: `${strata.url}/item`, pid: strata.child.pid },
    'strata → 2 origins (access log off)': { url: `${quiet.url}/item`, pid: quiet.child.pid },
  }
  const workers = await start(startStrataWorkers(strataCfg(true), peers.notes))
  if (workers !== undefined) candidates['strata workers: 2 → 2 origins (access log on)'] = { url: `${workers.url}/item`, pid: workers.child.pid }
  const peerVersions = {}
  if (peers.wanted) {
    for (const [label, startPeer] of [['haproxy → 2 origins', peers.startHaproxy], ['nginx → 2 origins', peers.startNginx]]) {
      const p = await start(startPeer(origins.map((o) => o.info.listening)))
      if (p === undefined) continue
      candidates[label] = { url: `${p.url}/item`, pid: p.pid }
      peerVersions[p.name] = p.version
    }
  }
  for (const [name, { url }] of Object.entries(candidates)) {
    // A bench of error pages measures nothing: check each candidate answers the origin's bytes.
    const res = await fetch(url)
    const body = await res.arrayBuffer()
    if (res.status !== 200 || body.byteLength !== SIZE) throw new Error(`${name}: ${res.status}, ${Buffer.from(body).toString().slice(0, 300)}`)
    await warm(url, 20)
  }
  const rows = await compare(candidates, { rounds, seconds, connections, name: 'balancer pass-through' })
  const base = rows['@fastify/http-proxy → 1 origin'].rps
  const on = rows['strata → 2 origins (access log on)']
  const off = rows['strata → 2 origins (access log off)']
  const ratios = { 'strata/http-proxy (log on)': on.rps / base, 'strata/http-proxy (log off)': off.rps / base }
  const targets = { 'strata/http-proxy (log on)': { min: 1.2 }, 'strata/http-proxy (log off)': { min: 1.2 } }
  for (const [peer, short] of [['haproxy → 2 origins', 'haproxy'], ['nginx → 2 origins', 'nginx']]) {
    const p = rows[peer]
    if (p === undefined) continue
    for (const [log, r] of [['log on', on], ['log off', off]]) {
      ratios[`strata/${short} req/s (${log})`] = r.rps / p.rps
      if (r.cpuUsPerReq !== undefined && p.cpuUsPerReq !== undefined) ratios[`strata/${short} CPU/req (${log})`] = r.cpuUsPerReq / p.cpuUsPerReq
    }
  }
  if (rows['strata workers: 2 → 2 origins (access log on)'] !== undefined) ratios['workers: 2 / 1 (log on)'] = rows['strata workers: 2 → 2 origins (access log on)'].rps / on.rps
  if (rows['haproxy → 2 origins'] !== undefined) {
    for (const log of ['log on', 'log off']) {
      targets[`strata/haproxy req/s (${log})`] = { min: 0.8 }
      targets[`strata/haproxy CPU/req (${log})`] = { max: 1.5 }
    }
  }
  report('balancer pass-through', rows, ratios, { sizeBytes: SIZE, connections, seconds, rounds, cacheControl: 'no-store', peers: peerVersions, notes: peers.notes }, targets)
  const failed = Object.entries(rows).filter(([, r]) => r.errors + r.non2xx > 0)
  if (failed.length > 0) {
    console.error(`errors or non-2xx answers in: ${failed.map(([k]) => k).join(', ')}; these numbers are not a pass-through measurement`)
    process.exitCode = 1
  }
} finally {
  stopping = true
  await Promise.all(started.map((s) => s.stop()))
}
