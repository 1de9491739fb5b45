// Baseline for bench/balancer.js: @fastify/http-proxy with its defaults, pointed at one origin
// (`node bench/servers/http-proxy.js <origin url>`). Prints {"listening": url} like the others.
import { fastify } from 'fastify'
import proxy from '@fastify/http-proxy'

const upstream = process.argv[2]
if (!upstream) throw new Error('usage: http-proxy.js <origin url>')
const app = fastify({ logger: false })
await app.register(proxy, { upstream })
await app.listen({ host: '127.0.0.1', port: 0 })
console.log(JSON.stringify({ listening: `http://127.0.0.1:${app.server.address().port}` }))
process.on('SIGTERM', () => app.close().then(() => process.exit(0)))
