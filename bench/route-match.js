// Route matching cost (issue 13): what `Router.match` adds to every request, for no routes (the
// default config), and for 8 routes a request matches none of (host, wildcard host, prefixes,
// methods, header: the whole list runs), the first and the last. Reports ns per match: the
// median of BENCH_ROUNDS (5) timed slices of BENCH_MATCHES (2M) after a warm-up slice. No target
// of its own: compare with a page hit's whole CPU cost (tens of µs); the page-cache bench
// measures the same 8 routes on real hits ("hit with 8 routes / hit with none").
import { Router } from '../dist/routing/router.js'
import { BENCH_ROUTES as ROUTES, median, progress, report, round } from './lib.js'

const N = Number(process.env.BENCH_MATCHES ?? 2_000_000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const headers = { host: 'www.example.com:2001', 'user-agent': 'wrk', accept: '*/*' }
const cases = [
  { label: 'no routes', router: Router.compile([]), req: ['GET', 'www.example.com:2001', '/page', headers] },
  { label: '8 routes, first matches (host)', router: Router.compile(ROUTES), req: ['GET', 'api.example.com', '/page', headers] },
  { label: '8 routes, last matches (header)', router: Router.compile(ROUTES), req: ['GET', 'www.example.com:2001', '/page', { ...headers, 'x-internal': '1' }] },
  { label: '8 routes, none matches', router: Router.compile(ROUTES), req: ['GET', 'www.example.com:2001', '/page', headers] },
]

function time(router, [method, host, path, h], n) {
  let sink = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) sink += router.match(method, host, path, h).index
  const ns = Number(process.hrtime.bigint() - t0) / n
  if (sink === 0.5) console.log(sink)
  return ns
}

const bar = progress('route-match', cases.length * (rounds + 1) * 0.02 * (N / 2_000_000))
const rows = {}
for (const c of cases) {
  bar.step(c.label)
  time(c.router, c.req, N)
  const ns = []
  for (let r = 0; r < rounds; r++) ns.push(time(c.router, c.req, N))
  rows[c.label] = { nsPerMatch: median(ns), min: Math.min(...ns), max: Math.max(...ns) }
}
bar.done()
console.log(`\n## route-match  (Router.match, ns per request, median of ${rounds} × ${N})`)
console.log('| routes | ns/match | min–max |')
console.log('| --- | ---: | ---: |')
for (const [k, v] of Object.entries(rows)) console.log(`| ${k} | ${round(v.nsPerMatch, 1)} | ${round(v.min, 1)}–${round(v.max, 1)} |`)
report('route-match', {}, {}, { matches: N, rounds, matchNs: rows })
