import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { startRedisSentinel, type RedisSentinel } from '../helpers/redis.js'
import { createDataCache, type DataCache } from '../../src/data-cache/index.js'

// A real Redis Sentinel (redis-server --sentinel) watching one master: the `sentinels` form of
// the redis option resolves the master through it.
let sentinel: RedisSentinel
const open: DataCache[] = []

beforeAll(async () => {
  sentinel = await startRedisSentinel()
}, 30_000)

afterAll(async () => {
  await Promise.all(open.map((c) => c.disconnect()))
  await sentinel?.stop()
})

describe('Redis Sentinel', () => {
  it('finds the master through the sentinel and shares values and invalidations between nodes', async () => {
    const ns = `s${randomUUID().slice(0, 8)}`
    const redis = sentinel.option
    const a = createDataCache({ namespace: ns, redis })
    const b = createDataCache({ namespace: ns, redis })
    open.push(a, b)
    await Promise.all([a.ready(), b.ready()])
    expect(a.stats().redis).toBe('ready')
    await a.set('k', { v: 1 }, { tags: ['t'] })
    expect(await b.get('k')).toEqual({ v: 1 })
    expect(b.stats().l2Hits).toBe(1)
    const direct = new Redis(sentinel.master.url)
    expect(await direct.exists(`${ns}::k`)).toBe(1)
    direct.disconnect()
    const got = new Promise((r) => b.once('bus:received', r))
    await a.deleteByTag('t')
    await got
    expect(await b.get('k')).toBeUndefined()
  })
})
