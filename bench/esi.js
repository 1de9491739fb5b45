// ESI page-hit throughput, in one run: pages of 5 and of 10 cached fragments (~10 KB assembled)
// against a plain cached page through the same strata; the 5-fragment page also against nodesi
// (with an LRU in front of its fetches, bench/servers/nodesi.js) and, when varnishd is on PATH,
// Varnish ESI on the same template. Targets (issue 6): esi5 ≥ 0.6× plain, ≥ 1.5× Varnish,
// ≥ 2× nodesi.
// How it measures (lib.js compare): a 1 s warm-up load per candidate, then BENCH_ROUNDS (3)
// rounds of BENCH_SECONDS (4 s) per candidate, order reversed every other round, so drift and
// other jobs on this shared machine hit every candidate alike; each row is the median of its
// rounds (req/s, p50, p99, and the server's CPU µs per request, varnishd's counted with its
// cache child), and the ratios come from those medians. About 1.5 minutes with the defaults.
// Every child process is stopped at the end.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, compare, freePort, startNode, startStrata, report, warm } from './lib.js'

const SIZE = 10 * 1024
const seconds = Number(process.env.BENCH_SECONDS ?? 4)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)

async function text(url) {
  const res = await fetch(url)
  return { status: res.status, body: await res.text() }
}

async function waitUntilUp(url, ms = 15_000) {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      await text(url)
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

/** varnishd in the foreground on a free port, ESI on for /esi/, everything cached for an hour. */
async function startVarnish(originUrl) {
  if (spawnSync('varnishd', ['-V']).error !== undefined) return undefined
  const o = new URL(originUrl)
  const dir = mkdtempSync(join(tmpdir(), 'strata-bench-varnish-'))
  // varnishd drops privileges to its own user, which must be able to read the VCL.
  chmodSync(dir, 0o755)
  const vcl = join(dir, 'esi.vcl')
  writeFileSync(
    vcl,
    `vcl 4.1;
backend origin { .host = "${o.hostname}"; .port = "${o.port}"; }
sub vcl_backend_response {
  if (bereq.url ~ "^/esi/") { set beresp.do_esi = true; }
  set beresp.ttl = 1h;
  set beresp.grace = 1h;
}
`,
  )
  const port = await freePort()
  const child = spawn('varnishd', ['-F', '-a', `127.0.0.1:${port}`, '-f', vcl, '-n', join(dir, 'n'), '-s', 'malloc,64m', '-p', 'thread_pool_min=50'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 5000))])
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitUntilUp(`${url}/__up`)
  } catch (err) {
    await stop()
    console.log(`varnishd did not start (${err.message}); skipping Varnish`)
    return undefined
  }
  return { url, pid: child.pid, stop, version: spawnSync('varnishd', ['-V']).stderr.toString().split('\n')[0] }
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
  const varnish = await startVarnish(originUrl)
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

  const rows = await compare(targets, { rounds, seconds, connections })
  const plain = rows['strata plain hit'].rps
  const esi5 = rows['strata esi5'].rps
  const ratios = {
    'esi5/plain': esi5 / plain,
    'esi10/plain': rows['strata esi10'].rps / plain,
    'esi5/nodesi': esi5 / rows['nodesi esi5 (LRU)'].rps,
    ...(varnish ? { 'esi5/varnish esi5': esi5 / rows['varnish esi5'].rps } : {}),
  }
  report('esi', rows, ratios, { sizes, connections, seconds, rounds, varnish: varnish?.version ?? 'not installed' })
  const failed = Object.entries(rows).filter(([, r]) => r.errors + r.non2xx > 0)
  if (failed.length > 0) {
    console.error(`errors or non-2xx answers in: ${failed.map(([k]) => k).join(', ')}`)
    process.exitCode = 1
  }
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {})
}
