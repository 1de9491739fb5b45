// Interleaved before/after CPU per pass request (issue 14), against the Node floor in the same run:
// each round starts every build in turn (and bench/servers/min-proxy.js), loads it with
// wrk -t1 -c50 on a 1 KB `no-store` pass (pass-profile.js's setup), and reads the server's CPU
// from /proc. Medians over rounds; a tool, not part of `npm run bench`.
//   node bench/tools/pass-compare.js dist-base dist      (dirs under the repo, each a build)
//   ROUNDS=5 BENCH_SECONDS=6 PASS_LOG=on|off
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, load, startNode, startStrata } from '../lib.js'

const builds = process.argv.slice(2)
if (builds.length === 0) builds.push('dist')
const rounds = Number(process.env.ROUNDS ?? 5)
const seconds = Number(process.env.BENCH_SECONDS ?? 6)
const access = (process.env.PASS_LOG ?? 'on') === 'on'
const tick = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(f[11]) + Number(f[12])
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
/** CPU µs per request and req/s of the process `pid` under load on `url`. */
async function measure(url, pid) {
  await load(url, { seconds: 2 })
  const c0 = cpu(pid)
  const r = await load(url, { seconds })
  return { us: ((cpu(pid) - c0) * 1e6) / tick / r.requests, rps: r.rps, bad: r.errors + r.non2xx }
}

const origins = []
const results = new Map([...builds, 'min-proxy'].map((b) => [b, []]))
try {
  for (let i = 0; i < 2; i++) origins.push(await startNode(join(ROOT, 'bench/servers/origin.js'), ['1024', 'no-store']))
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { enabled: false },
    upstreams: origins.map((o, i) => ({ id: `o${i + 1}`, url: o.info.listening })),
    balancer: { algorithm: 'round-robin' },
    log: { level: 'info', access },
  }
  for (let round = 0; round < rounds; round++) {
    for (const b of [...builds, 'min-proxy']) {
      const s = b === 'min-proxy'
        ? await startNode(join(ROOT, 'bench/servers/min-proxy.js'), origins.map((o) => o.info.listening))
        : await startStrata(config, { cli: join(ROOT, b, 'cli.js') })
      try {
        const url = b === 'min-proxy' ? `${s.info.listening}/item` : `${s.url}/item`
        const m = await measure(url, s.child.pid)
        results.get(b).push(m)
        process.stderr.write(`round ${round + 1} ${b}: ${m.us.toFixed(1)} µs/req, ${Math.round(m.rps)} req/s${m.bad ? `, ${m.bad} bad` : ''}\n`)
      } finally {
        await s.stop()
      }
    }
  }
  const floor = results.get('min-proxy')
  console.log(`| build | CPU µs/req (median, min–max) | req/s (median) | ÷ min-proxy (median of per-round ratios) |\n| --- | ---: | ---: | ---: |`)
  for (const [b, ms] of results) {
    const us = ms.map((m) => m.us)
    const ratio = median(ms.map((m, i) => m.us / floor[i].us))
    console.log(`| ${b} | ${median(us).toFixed(1)} (${Math.min(...us).toFixed(1)}–${Math.max(...us).toFixed(1)}) | ${Math.round(median(ms.map((m) => m.rps)))} | ${ratio.toFixed(2)} |`)
  }
} finally {
  await Promise.all(origins.map((o) => o.stop()))
}
