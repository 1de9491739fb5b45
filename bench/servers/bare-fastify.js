// Baseline: a bare fastify route returning the same bytes strata serves from cache.
import { fastify } from 'fastify'
const size = Number(process.argv[2] ?? 10240)
const body = Buffer.alloc(size, 'x')
const app = fastify({ logger: false })
app.get('/*', (_req, reply) => {
  reply.header('content-type', 'text/html; charset=utf-8').header('cache-control', 'public, max-age=3600').send(body)
})
await app.listen({ host: '127.0.0.1', port: 0 })
console.log(JSON.stringify({ listening: `http://127.0.0.1:${app.server.address().port}` }))
process.on('SIGTERM', () => app.close().then(() => process.exit(0)))
