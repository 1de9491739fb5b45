// The coalescing floor (bench/coalesce.js): a bare node:http server that answers every request
// for a path when `ms` have passed since the first request for that path arrived, with the same
// 10 KB body and headers the origin sends. That is perfect coalescing at no cost, so a burst's
// latency through it is what the load generator, the loopback and node:http take on this machine.
import { createServer } from 'node:http'
const size = Number(process.argv[2] ?? 10240)
const ms = Number(process.argv[3] ?? 200)
const body = Buffer.alloc(size, 'x')
/** path → responses waiting for its timer */
const held = new Map()
const server = createServer((req, res) => {
  const path = req.url ?? '/'
  let list = held.get(path)
  if (list === undefined) {
    list = []
    held.set(path, list)
    setTimeout(() => {
      held.delete(path)
      for (const r of list) {
        r.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'public, max-age=3600', 'content-length': body.length })
        r.end(body)
      }
    }, path.startsWith('/slow/') ? ms : 0)
  }
  list.push(res)
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ listening: `http://127.0.0.1:${server.address().port}` })))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
