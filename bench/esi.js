// ESI page-hit throughput, in one run: pages of 5 and of 10 cached fragments (~10 KB assembled)
// against a plain cached page through the same strata; the 5-fragment page also against nodesi
// (with an LRU in front of its fetches, bench/servers/nodesi.js) and, with --peers when varnishd
// is installed, Varnish ESI on the same template (bench/peers/varnish.vcl). Targets: esi5 ≥ 0.6×
// plain and ≥ 2× nodesi (issue 6), ≥ 3× Varnish (issue 14).
// How it measures (lib.js compare): a 1 s warm-up load per candidate, then BENCH_ROUNDS (3)
// rounds of BENCH_SECONDS (4 s) per candidate, order reversed every other round, so drift and
// other jobs on this shared machine hit every candidate alike; each row is the median of its
// rounds (req/s, p50, p99, and the server's CPU µs per request, varnishd's counted with its
// cache child), and the ratios come from those medians. About 1.5 minutes with the defaults.
// Every child process is stopped at the end.
import { join } from 'node:path'
import { ROOT, compare, startNode, startStrata, report, warm } from './lib.js'
import * as peers from './peers/index.js'

const SIZE = 10 * 1024
const seconds = Number(process.env.BENCH_SECONDS ?? 4)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)

async function text(url) {
  const res = await fetch(url)
  return { status: res.status, body: await res.text() }
}

const origin = await startNode(join(ROOT, 'bench/servers/origin.js'), [String(SIZE), 'public, max-age=3600'])
const originUrl = origin.info.listening
const stops = [() => origin.stop()]
try {
  const strata = await startStrata({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { enabled: false },
    upstreams: [{ id: 'origin', url: originUrl }],
    log: { level: 'info', access: false },
  })
  stops.push(() => strata.stop())
  const nodesi = await startNode(join(ROOT, 'bench/servers/nodesi.js'), [originUrl])
  stops.push(() => nodesi.stop())
  const varnish = peers.wanted ? await peers.startVarnish([originUrl]) : undefined
  if (varnish) stops.push(() => varnish.stop())

  const targets = {
    'strata plain hit': { url: `${strata.url}/page`, pid: strata.child.pid },
    'strata esi5': { url: `${strata.url}/esi/5`, pid: strata.child.pid },
    'strata esi10': { url: `${strata.url}/esi/10`, pid: strata.child.pid },
    'nodesi esi5 (LRU)': { url: `${nodesi.info.listening}/esi/5`, pid: nodesi.child.pid },
    ...(varnish
      ? { 'varnish esi5': { url: `${varnish.url}/esi/5`, pid: varnish.pid }, 'varnish plain hit': { url: `${varnish.url}/page`, pid: varnish.pid } }
      : {}),
  }
  // Every ESI server must produce the same assembled page before anything is measured.
  const sizes = {}
  const expect5 = (await text(`${strata.url}/esi/5`)).body
  for (const [label, { url }] of Object.entries(targets)) {
    await warm(url)
    const r = await text(url)
    if (r.status !== 200 || r.body.includes('<esi:')) throw new Error(`${label}: status ${r.status}, not assembled`)
    if (url.endsWith('/esi/5') && r.body !== expect5) throw new Error(`${label}: assembled page differs from strata's`)
    sizes[label] = Buffer.byteLength(r.body)
  }

  const rows = await compare(targets, { rounds, seconds, connections, name: 'esi' })
  const plain = rows['strata plain hit'].rps
  const esi5 = rows['strata esi5'].rps
  const ratios = {
    'esi5/plain': esi5 / plain,
    'esi10/plain': rows['strata esi10'].rps / plain,
    'esi5/nodesi': esi5 / rows['nodesi esi5 (LRU)'].rps,
    ...(varnish ? { 'esi5/varnish esi5': esi5 / rows['varnish esi5'].rps } : {}),
  }
  report('esi', rows, ratios, { sizes, connections, seconds, rounds, peers: varnish ? { varnish: varnish.version } : {}, notes: peers.notes }, {
    'esi5/plain': { min: 0.6 },
    'esi5/nodesi': { min: 2 },
    'esi5/varnish esi5': { min: 3 },
  })
  const failed = Object.entries(rows).filter(([, r]) => r.errors + r.non2xx > 0)
  if (failed.length > 0) {
    console.error(`errors or non-2xx answers in: ${failed.map(([k]) => k).join(', ')}`)
    process.exitCode = 1
  }
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {})
}
