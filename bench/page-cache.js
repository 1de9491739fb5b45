// Page-hit throughput: a 10 KB page served from strata's cache against a bare fastify route
// returning the same bytes, measured in the same run. Target (issue 14): ≥ 0.95× bare fastify.
// With --peers: also nginx proxy_cache and Varnish serving the same page from their caches.
// How it measures (lib.js compare): a 1 s warm-up load per candidate, then BENCH_ROUNDS (3)
// rounds of BENCH_SECONDS (5 s) per candidate, order reversed every other round, so drift and
// other jobs on this shared machine hit every candidate alike; each row is the median of its
// rounds (req/s, p50, p99, and the server process's CPU µs per request), and the ratios come
// from those medians. About a minute with the defaults.
import { join } from 'node:path'
import { BENCH_ROUTES, ROOT, compare, startNode, startStrata, startStrataWorkers, report, warm } from './lib.js'
import * as peers from './peers/index.js'

const SIZE = 10 * 1024
const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)

const started = []
const start = async (p) => {
  const s = await p
  if (s !== undefined) started.push(s) // a peer that is not installed
  return s
}
try {
  const origin = await start(startNode(join(ROOT, 'bench/servers/origin.js'), [String(SIZE), 'public, max-age=3600']))
  const bare = await start(startNode(join(ROOT, 'bench/servers/bare-fastify.js'), [String(SIZE)]))
  const strataCfg = (access) => ({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { enabled: false },
    upstreams: [{ id: 'origin', url: origin.info.listening }],
    log: { level: 'info', access },
  })
  const strata = await start(startStrata(strataCfg(true)))
  const quiet = await start(startStrata(strataCfg(false)))
  // Issue 13: the route matcher on the hit path. Eight routes the page matches none of, so every
  // hit runs the whole list (host, wildcard host, prefixes, methods, header) before the lookup.
  const routed = await start(startStrata({
    ...strataCfg(true),
    pools: { api: { upstreams: [{ id: 'api', url: origin.info.listening }] }, static: { upstreams: [{ id: 'static', url: origin.info.listening }] } },
    routes: BENCH_ROUTES,
  }))

  const page = '/page'
  const candidates = {
    'bare fastify': { url: `${bare.info.listening}${page}`, pid: bare.child.pid },
    'strata hit (access log on)': { url: `${strata.url}${page}`, pid: strata.child.pid },
    'strata hit (access log off)': { url: `${quiet.url}${page}`, pid: quiet.child.pid },
    'strata hit, 8 routes (access log on)': { url: `${routed.url}${page}`, pid: routed.child.pid },
  }
  const workers = await start(startStrataWorkers(strataCfg(true), peers.notes))
  if (workers !== undefined) candidates['strata hit, workers: 2 (access log on)'] = { url: `${workers.url}${page}`, pid: workers.child.pid }
  const peerVersions = {}
  if (peers.wanted) {
    for (const [label, startPeer] of [['nginx proxy_cache hit', peers.startNginx], ['varnish hit', peers.startVarnish]]) {
      const p = await start(startPeer([origin.info.listening]))
      if (p === undefined) continue
      candidates[label] = { url: `${p.url}${page}`, pid: p.pid }
      peerVersions[p.name] = p.version
    }
  }
  for (const [name, { url }] of Object.entries(candidates)) {
    await warm(url)
    // Measure pages, not error pages or misses: the same bytes everywhere, a hit from strata.
    const res = await fetch(url)
    const body = await res.arrayBuffer()
    const xCache = res.headers.get('x-cache')
    if (res.status !== 200 || body.byteLength !== SIZE) throw new Error(`${name}: ${res.status}, ${Buffer.from(body).toString().slice(0, 300)}`)
    if (name.startsWith('strata') && xCache !== 'HIT') throw new Error(`${name}: x-cache ${xCache}, not a hit`)
    if (name.startsWith('nginx') && res.headers.get('x-cache-status') !== 'HIT') throw new Error(`${name}: ${res.headers.get('x-cache-status')}, not a hit`)
  }
  const rows = await compare(candidates, { rounds, seconds, connections, name: 'page-cache' })
  const base = rows['bare fastify'].rps
  const on = rows['strata hit (access log on)']
  const ratios = {
    'hit/bare (log on)': on.rps / base,
    'hit/bare (log off)': rows['strata hit (access log off)'].rps / base,
    'hit with 8 routes / hit with none (log on)': rows['strata hit, 8 routes (access log on)'].rps / on.rps,
  }
  if (rows['strata hit, workers: 2 (access log on)'] !== undefined) ratios['workers: 2 / 1 (log on)'] = rows['strata hit, workers: 2 (access log on)'].rps / on.rps
  for (const peer of ['nginx proxy_cache hit', 'varnish hit']) {
    if (rows[peer] === undefined) continue
    ratios[`hit (log on)/${peer}`] = on.rps / rows[peer].rps
    if (on.cpuUsPerReq !== undefined && rows[peer].cpuUsPerReq !== undefined) ratios[`CPU/req (log on)/${peer}`] = on.cpuUsPerReq / rows[peer].cpuUsPerReq
  }
  report('page-cache', rows, ratios, { sizeBytes: SIZE, connections, seconds, rounds, peers: peerVersions, notes: peers.notes }, { 'hit/bare (log on)': { min: 0.95 }, 'hit/bare (log off)': { min: 0.95 }, 'hit with 8 routes / hit with none (log on)': { min: 0.95 } })
  const failed = Object.entries(rows).filter(([, r]) => r.errors + r.non2xx > 0)
  if (failed.length > 0) {
    console.error(`errors or non-2xx answers in: ${failed.map(([k]) => k).join(', ')}`)
    process.exitCode = 1
  }
} finally {
  await Promise.all(started.map((s) => s.stop()))
}
