// nodesi (https://github.com/Schibsted-Tech-Polska/nodesi) as an ESI edge for bench/esi.js: a
// plain node:http server that takes the template from `origin`, runs nodesi's esi.process on it
// and sends the result. The template and every fragment are kept in an LRU (lru-cache) in front of
// nodesi's fetches, so a page hit fetches nothing, as with strata's page cache.
// Usage: node bench/servers/nodesi.js <origin url>
import { createServer } from 'node:http'
import { LRUCache } from 'lru-cache'
import ESI from 'nodesi'

const origin = process.argv[2]
if (!origin) throw new Error('usage: nodesi.js <origin url>')
const lru = new LRUCache({ max: 10_000, ttl: 3_600_000 })
const base = new ESI.DataProvider({ baseUrl: origin })
const dataProvider = {
  toFullyQualifiedURL: base.toFullyQualifiedURL,
  get(src, options) {
    const url = base.toFullyQualifiedURL(src, options)
    const hit = lru.get(url)
    if (hit !== undefined) return Promise.resolve(hit)
    return base.get(src, options).then((text) => {
      lru.set(url, text)
      return text
    })
  },
}
const esi = new ESI({ baseUrl: origin, allowedHosts: [origin], dataProvider })

const server = createServer((req, res) => {
  const url = req.url ?? '/'
  dataProvider
    .get(url, { baseUrl: origin })
    .then((template) => esi.process(template, { baseUrl: origin }))
    .then((html) => {
      res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'private, max-age=0' })
      res.end(html)
    })
    .catch((err) => {
      res.writeHead(502)
      res.end(String(err))
    })
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ listening: `http://127.0.0.1:${server.address().port}` })))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
