// RSS with a full cache: strata (default config but `cache.maxBytes`, BENCH_RSS_MB = 128 MB)
// is filled with twice maxBytes of distinct 64 KB pages, so the L1 store evicts all along, and
// its resident memory (VmRSS, /proc/<pid>/status) is read before and after, with what the cache
// says it holds (admin /stats). Target (issue 14): RSS ≤ 1.3 × maxBytes + 100 MB.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Pool } from 'undici'
import { ROOT, progress, report, startNode, startStrata } from './lib.js'

const MB = 1024 * 1024
const maxBytes = Number(process.env.BENCH_RSS_MB ?? 128) * MB
const PAGE = 64 * 1024
const pages = Math.ceil((2 * maxBytes) / PAGE)
const CONCURRENCY = 16
const TOKEN = 'bench-token-0123456789'

/** VmRSS of `pid` in bytes (Linux), or undefined. */
function rss(pid) {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

const started = []
try {
  const origin = await startNode(join(ROOT, 'bench/servers/origin.js'), [String(PAGE), 'public, max-age=3600'])
  started.push(origin)
  const strata = await startStrata({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    upstreams: [{ id: 'origin', url: origin.info.listening }],
    cache: { maxBytes },
  })
  started.push(strata)
  const stats = async () => (await (await fetch(`${strata.adminUrl}/stats`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()).cache
  const rssStart = rss(strata.child.pid)
  const pool = new Pool(strata.url, { connections: CONCURRENCY })
  const bar = progress('rss', pages / 1500)
  let next = 0
  let bad = 0
  let peak = 0
  /** RSS every 500 pages: where the growth happens (before the first eviction or after). */
  const curve = []
  const worker = async () => {
    while (next < pages) {
      const i = next++
      if (i % 500 === 0) {
        bar.step(`${i}/${pages} pages (${Math.round((i * PAGE) / MB)} MB)`)
        const now = rss(strata.child.pid) ?? 0
        curve.push([i, Math.round(now / MB)])
        peak = Math.max(peak, now)
      }
      const { statusCode, body } = await pool.request({ method: 'GET', path: `/bytes/${PAGE}/${i}` })
      await body.dump({ limit: Infinity })
      if (statusCode !== 200) bad++
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  bar.done()
  await pool.close()
  const rssEnd = rss(strata.child.pid)
  peak = Math.max(peak, rssEnd ?? 0)
  const cache = await stats()
  const limit = 1.3 * maxBytes + 100 * MB
  console.log(`\n## rss  (maxBytes ${maxBytes / MB} MB, ${pages} distinct ${PAGE / 1024} KB pages = ${Math.round((pages * PAGE) / MB)} MB through the cache)`)
  console.log('| RSS at start | RSS after the fill | peak RSS seen | L1 bytes held | L1 entries | limit (1.3 × maxBytes + 100 MB) |')
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: |')
  const mb = (b) => (b === undefined ? '–' : `${(b / MB).toFixed(0)} MB`)
  console.log(`| ${mb(rssStart)} | ${mb(rssEnd)} | ${mb(peak)} | ${mb(cache.l1?.bytes)} | ${cache.l1?.entries ?? '–'} | ${mb(limit)} |`)
  console.log(`RSS (MB) by pages filled (the cache is full after ~${Math.floor(maxBytes / PAGE)}): ${curve.map(([i, m]) => `${i}: ${m}`).join(', ')}`)
  report(
    'rss',
    {},
    { 'RSS after fill / limit': rssEnd / limit, 'peak RSS / limit': peak / limit, 'L1 bytes / maxBytes': (cache.l1?.bytes ?? NaN) / maxBytes },
    { maxBytes, pageBytes: PAGE, pages, rssStart, rssEnd, peak, curve, l1: cache.l1, non200: bad },
    { 'RSS after fill / limit': { max: 1 }, 'peak RSS / limit': { max: 1 }, 'L1 bytes / maxBytes': { max: 1 } },
  )
  if (bad > 0) process.exitCode = 1
} finally {
  await Promise.all(started.map((s) => s.stop()))
}
