import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { freePort, waitFor } from '../helpers/ports.js'
import { createDataCache, type DataCache } from '../../src/data-cache/index.js'

// A real Redis Sentinel (redis-server --sentinel) watching one master: the `sentinels` form of
// the redis option resolves the master through it.
let master: RedisServer
let sentinel: ChildProcess
let sentinelPort: number
let dir: string
const open: DataCache[] = []

beforeAll(async () => {
  master = await startRedis()
  dir = mkdtempSync(join(tmpdir(), 'strata-sentinel-'))
  sentinelPort = await freePort()
  const conf = join(dir, 'sentinel.conf')
  writeFileSync(conf, [`port ${sentinelPort}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor strata-master 127.0.0.1 ${master.port} 1`, ''].join('\n'))
  sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
  await waitFor(async () => {
    const probe = new Redis({ port: sentinelPort, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await probe.connect()
      const addr = (await probe.call('SENTINEL', 'get-master-addr-by-name', 'strata-master')) as string[] | null
      return addr?.[1] === String(master.port)
    } finally {
      probe.disconnect()
    }
  }, 10_000, 50)
}, 30_000)

afterAll(async () => {
  await Promise.all(open.map((c) => c.disconnect()))
  if (sentinel && sentinel.exitCode === null) {
    await new Promise<void>((r) => {
      sentinel.once('exit', () => r())
      sentinel.kill('SIGKILL')
    })
  }
  await master.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('Redis Sentinel', () => {
  it('finds the master through the sentinel and shares values and invalidations between nodes', async () => {
    const ns = `s${randomUUID().slice(0, 8)}`
    const redis = { sentinels: [`redis://127.0.0.1:${sentinelPort}`], name: 'strata-master' }
    const a = createDataCache({ namespace: ns, redis })
    const b = createDataCache({ namespace: ns, redis })
    open.push(a, b)
    await Promise.all([a.ready(), b.ready()])
    expect(a.stats().redis).toBe('ready')
    await a.set('k', { v: 1 }, { tags: ['t'] })
    expect(await b.get('k')).toEqual({ v: 1 })
    expect(b.stats().l2Hits).toBe(1)
    const direct = new Redis(master.url)
    expect(await direct.exists(`${ns}::k`)).toBe(1)
    direct.disconnect()
    const got = new Promise((r) => b.once('bus:received', r))
    await a.deleteByTag('t')
    await got
    expect(await b.get('k')).toBeUndefined()
  })
})
