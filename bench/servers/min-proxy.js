// The Node floor for the pass path (bench/pass-profile.js): node:http server → undici Pool per
// origin (round-robin) → the response headers and body written back as they come, and nothing
// else: no cache lookup, no balancer state, no hop-by-hop filtering, no access log, no metrics.
// What a Node proxy costs per request on this machine before it does any of a proxy's work.
import { createServer } from 'node:http'
import { Pool } from 'undici'

const pools = process.argv.slice(2).map((u) => new Pool(u, { connections: 64 }))
let next = 0
const server = createServer((req, res) => {
  const pool = pools[next++ % pools.length]
  pool.dispatch(
    { method: req.method, path: req.url, headers: { host: req.headers.host ?? '' } },
    {
      onConnect() {},
      onHeaders(status, raw) {
        const flat = []
        for (let i = 0; i < raw.length; i += 2) {
          const name = raw[i].toString('latin1')
          if (name.length === 10 && name.toLowerCase() === 'connection') continue
          if (name.length === 10 && name.toLowerCase() === 'keep-alive') continue
          flat.push(name, raw[i + 1].toString('latin1'))
        }
        res.writeHead(status, flat)
        return true
      },
      onData(chunk) {
        return res.write(chunk)
      },
      onComplete() {
        res.end()
      },
      onError(err) {
        if (!res.headersSent) res.writeHead(502)
        res.end(String(err))
      },
    },
  )
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ listening: `http://127.0.0.1:${server.address().port}` })))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
