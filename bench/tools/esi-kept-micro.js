// The ESI template branch of the fast path, in process, without sockets: freshLookup + freshResult +
// EsiDelivery.assembleFromMemory for bench/esi.js's esi5 page (10 KB, 5 fragments), as
// EdgePipeline.serveEarly runs it. Prints µs per page (median of 7 batches) so a change to the
// assembled-page path can be measured without the noise of a shared machine's HTTP load.
//   node bench/tools/esi-kept-micro.js [root=.] [assembledPagesBytes|default] [iterations=200000]
// `root` is a checkout with a build in dist/ (so an older build can be measured the same way);
// `default` leaves esi.assembledPagesBytes out of the config (an older build has no such key).
// With iterations 0 it only sets up: `perf stat -e instructions:u` of a run minus a 0 run, divided by
// the iterations, is a noise-free instructions-per-page figure. MICRO_NO_KEPT_HIT=1 skips keptHit
// (a kept page then comes through freshResult + assembleFromMemory).
import { Readable } from 'node:stream'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const root = resolve(process.argv[2] ?? '.')
const bytesArg = process.argv[3] ?? 'default'
const iterations = Number(process.argv[4] ?? 200_000)
const load = (p) => import(pathToFileURL(join(root, 'dist', p)).href)
const { resolveConfig } = await load('config/load.js')
const { PageCache } = await load('page-cache/index.js')
const { EsiDelivery } = await load('proxy/esi-delivery.js')
const { silentLogger } = await load('observability/logger.js')

const config = resolveConfig({
  upstreams: [{ id: 'o', url: 'http://127.0.0.1:9' }],
  ...(bytesArg === 'default' ? {} : { esi: { assembledPagesBytes: Number(bytesArg) } }),
})
let esi
const cache = new PageCache({ config: config.cache, logger: silentLogger, prepare: (e) => esi.prepare(e) })
esi = new EsiDelivery({ config: config.esi, cache, logger: silentLogger, maxBodyBytes: config.cache.maxObjectBytes })

// The same bytes as bench/servers/origin.js's /esi/5 and /frag/<i>?n=5.
const SIZE = 10 * 1024
const n = 5
const part = Math.floor(SIZE / (n + 1))
let template = `<html><body>${'t'.repeat(part)}`
for (let i = 0; i < n; i++) template += `<esi:include src="/frag/${i}?n=${n}"/>`
template += '</body></html>'
const origin = (req) => {
  const esiPage = req.url.startsWith('/esi/')
  const headers = esiPage
    ? { 'content-type': 'text/html', 'cache-control': 'public, max-age=3600', 'surrogate-control': 'content="ESI/1.0"' }
    : { 'content-type': 'text/html', 'cache-control': 'public, max-age=3600' }
  return Promise.resolve({ statusCode: 200, headers, body: Readable.from([Buffer.from(esiPage ? template : 'f'.repeat(part))]) })
}
const request = (url) => ({ method: 'GET', scheme: 'http', host: 'bench.test', url, headers: { host: 'bench.test' } })
async function fill(url) {
  const r = await cache.handle(request(url), origin)
  if (r.body instanceof Readable) for await (const _ of r.body);
  for (let i = 0; i < 100 && cache.freshEntry(request(url), false) === undefined; i++) await new Promise((ok) => setImmediate(ok))
  if (cache.freshEntry(request(url), false) === undefined) throw new Error(`${url} was not stored`)
}
await fill('/esi/5')
for (let i = 0; i < n; i++) await fill(`/frag/${i}?n=${n}`)

const creq = request('/esi/5')
const req = { url: '/esi/5', headers: creq.headers }
// As serveEarly: a kept page's flat head first (builds that have keptHit), else the full response.
const keptHit = typeof esi.keptHit === 'function' && process.env.MICRO_NO_KEPT_HIT === undefined
function once() {
  const now = cache.now()
  const entry = cache.freshLookup(creq, now)
  if (keptHit) {
    const kept = esi.keptHit(entry, req, now)
    if (kept !== undefined) return kept.page.length
  }
  const result = cache.freshResult(entry, creq, now)
  const page = esi.assembleFromMemory(result, entry.prepared, req, now)
  if (page === undefined) throw new Error('not assembled from memory')
  return page.page.length
}
const size = once()
if (iterations > 0) {
  for (let i = 0; i < 20_000; i++) once()
  const batch = Math.max(1, Math.floor(iterations / 7))
  const us = []
  for (let b = 0; b < 7; b++) {
    const t = process.hrtime.bigint()
    for (let i = 0; i < batch; i++) once()
    us.push(Number(process.hrtime.bigint() - t) / 1000 / batch)
  }
  us.sort((a, b) => a - b)
  const stats = typeof esi.stats === 'function' ? esi.stats().assembledPages : undefined
  console.log(JSON.stringify({ root, assembledPagesBytes: bytesArg, pageBytes: size, usPerPage: Number(us[3].toFixed(3)), min: Number(us[0].toFixed(3)), max: Number(us[6].toFixed(3)), ...(stats ? { kept: stats.kept, hits: stats.hits } : {}) }))
}
await cache.close()
