// Page-hit throughput: a 10 KB page served from strata's cache against a bare fastify route
// returning the same bytes, measured in the same run. Target: ≥ 0.9× bare fastify.
import { join } from 'node:path'
import { ROOT, startNode, startStrata, load, report, warm } from './lib.js'

const SIZE = 10 * 1024
const seconds = Number(process.env.BENCH_SECONDS ?? 8)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50)

const origin = await startNode(join(ROOT, 'bench/servers/origin.js'), [String(SIZE), 'public, max-age=3600'])
const bare = await startNode(join(ROOT, 'bench/servers/bare-fastify.js'), [String(SIZE)])
const strataCfg = (access) => ({
  listen: { host: '127.0.0.1', port: 0 },
  admin: { enabled: false },
  upstreams: [{ id: 'origin', url: origin.info.listening }],
  log: { level: 'info', access },
})
const strata = await startStrata(strataCfg(true))
const quiet = await startStrata(strataCfg(false))
try {
  const page = '/page'
  await warm(`${strata.url}${page}`)
  await warm(`${quiet.url}${page}`)
  await warm(`${bare.info.listening}${page}`)
  const rows = {}
  rows['bare fastify'] = await load(`${bare.info.listening}${page}`, { connections, seconds })
  rows['strata hit (access log on)'] = await load(`${strata.url}${page}`, { connections, seconds })
  rows['strata hit (access log off)'] = await load(`${quiet.url}${page}`, { connections, seconds })
  const base = rows['bare fastify'].rps
  report('page-cache', rows, {
    'hit/bare (log on)': rows['strata hit (access log on)'].rps / base,
    'hit/bare (log off)': rows['strata hit (access log off)'].rps / base,
  }, { sizeBytes: SIZE, connections, seconds })
} finally {
  await Promise.all([origin.stop(), bare.stop(), strata.stop(), quiet.stop()])
}
