// A bench origin: every path answers a body of `size` bytes with the given Cache-Control.
// `/esi/<n>` answers an ESI template with n includes of `/frag/<i>` (see bench/esi.js);
// `/slow/<ms>/…` answers the page after `ms` milliseconds (bench/coalesce.js); `/bytes/<n>/…`
// answers n bytes, cacheable (bench/rss.js). `/__hits?prefix=/x` counts requests under a prefix.
import { createServer } from 'node:http'
const size = Number(process.argv[2] ?? 10240)
const cacheControl = process.argv[3] ?? 'public, max-age=3600'
const body = Buffer.alloc(size, 'x')
let hits = 0
const byPath = new Map()
const server = createServer((req, res) => {
  hits++
  const url = req.url ?? '/'
  if (url === '/__hits') return res.end(String(hits))
  if (url.startsWith('/__hits?prefix=')) {
    const prefix = decodeURIComponent(url.slice('/__hits?prefix='.length))
    let n = 0
    for (const [path, count] of byPath) if (path.startsWith(prefix)) n += count
    return res.end(String(n))
  }
  byPath.set(url, (byPath.get(url) ?? 0) + 1)
  const slow = /^\/slow\/(\d+)\//.exec(url)
  if (slow) {
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'public, max-age=3600', 'content-length': body.length })
      res.end(body)
    }, Number(slow[1]))
    return
  }
  const bytes = /^\/bytes\/(\d+)\//.exec(url)
  if (bytes) {
    const n = Number(bytes[1])
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'public, max-age=3600', 'content-length': n })
    return res.end(Buffer.alloc(n, url.length % 256))
  }
  const esi = /^\/esi\/(\d+)/.exec(url)
  if (esi) {
    const n = Number(esi[1])
    const part = Math.floor(size / (n + 1))
    let t = `<html><body>${'t'.repeat(part)}`
    for (let i = 0; i < n; i++) t += `<esi:include src="/frag/${i}?n=${n}"/>`
    t += '</body></html>'
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'public, max-age=3600', 'surrogate-control': 'content="ESI/1.0"' })
    return res.end(t)
  }
  const frag = /^\/frag\/(\d+)\?n=(\d+)/.exec(url)
  if (frag) {
    const n = Number(frag[2])
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'public, max-age=3600' })
    return res.end('f'.repeat(Math.floor(size / (n + 1))))
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': cacheControl, 'content-length': body.length })
  res.end(body)
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ listening: `http://127.0.0.1:${server.address().port}` })))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
