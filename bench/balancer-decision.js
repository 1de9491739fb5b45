// Balancer decision cost per algorithm: one pick → begin → done cycle (what the proxy does per
// upstream request), on the compiled Balancer with the config defaults, for 2, 10 and 100
// upstreams (weights 1–3), over 1000 distinct client requests (ip, path) in turn. Also sticky
// insert mode with a returning visitor's cookie. Reports ns per decision: the median of
// BENCH_ROUNDS (5) timed slices of BENCH_DECISIONS (200k) decisions each, after a warm-up slice.
// No target in the issue: the number to compare with a request's whole CPU cost (tens of µs).
import { Balancer } from '../dist/balancer/index.js'
import { resolveConfig } from '../dist/config/load.js'
import { median, progress, report, round } from './lib.js'

const N = Number(process.env.BENCH_DECISIONS ?? 200_000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const ALGORITHMS = ['round-robin', 'weighted', 'least-connections', 'random', 'p2c', 'consistent-hash']
const SIZES = [2, 10, 100]
const reqs = Array.from({ length: 1000 }, (_, i) => ({ ip: `10.0.${i >> 8}.${i & 255}`, path: `/page/${i}`, headers: {} }))
const OK = { ok: true, statusCode: 200, durationMs: 1 }

function balancerFor(algorithm, size, sticky = null) {
  const cfg = resolveConfig({
    upstreams: Array.from({ length: size }, (_, i) => ({ id: `u${i}`, url: `http://127.0.0.1:${10_000 + i}`, weight: 1 + (i % 3) })),
    balancer: { algorithm, sticky },
  })
  return new Balancer({ upstreams: cfg.upstreams, config: cfg.balancer })
}

/** ns per pick → begin → done over `n` decisions. */
function time(b, requests, n) {
  let sink = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) {
    const p = b.pick(requests[i % requests.length])
    const done = b.begin(p.upstream)
    done(OK)
    sink += p.upstream.id.length
  }
  const ns = Number(process.hrtime.bigint() - t0) / n
  if (sink === -1) console.log(sink)
  return ns
}

const cases = []
for (const a of ALGORITHMS) for (const s of SIZES) cases.push({ label: `${a}, ${s} upstreams`, make: () => balancerFor(a, s), requests: () => reqs })
cases.push({
  label: 'round-robin + sticky insert (returning visitor), 10 upstreams',
  make: () => balancerFor('round-robin', 10, { mode: 'insert', cookie: 'srv' }),
  requests: (b) => {
    // One visit without the cookie gives the Set-Cookie a returning visitor sends back.
    return reqs.map((r) => {
      const first = b.pick(r)
      const token = first.setCookie.split(';')[0]
      return { ...r, headers: { cookie: token } }
    })
  },
})

const bar = progress('balancer-decision', cases.length * (rounds + 1) * 0.05 * (N / 200_000))
const rows = {}
for (const c of cases) {
  bar.step(c.label)
  const b = c.make()
  const requests = c.requests(b)
  time(b, requests, N) // warm-up: JIT, and the candidate lists built
  const ns = []
  for (let r = 0; r < rounds; r++) ns.push(time(b, requests, N))
  await b.close()
  rows[c.label] = { nsPerDecision: median(ns), min: Math.min(...ns), max: Math.max(...ns) }
}
bar.done()
console.log(`\n## balancer-decision  (pick → begin → done, ns per decision, median of ${rounds} × ${N})`)
console.log('| algorithm | ns/decision | min–max |')
console.log('| --- | ---: | ---: |')
for (const [k, v] of Object.entries(rows)) console.log(`| ${k} | ${round(v.nsPerDecision, 0)} | ${round(v.min, 0)}–${round(v.max, 0)} |`)
report('balancer-decision', {}, {}, { decisions: N, rounds, decisionsNs: rows })
