import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomUUID } from 'node:crypto'
import { Cluster } from 'ioredis'
import { startRedisCluster, type RedisCluster } from '../helpers/redis.js'
import { createDataCache, type DataCache } from '../../src/data-cache/index.js'
import { nextBus } from './helpers.js'

// A real 3-master Redis Cluster from redis-server binaries, created with redis-cli.
let cluster: RedisCluster
let raw: Cluster
const open: DataCache[] = []

beforeAll(async () => {
  cluster = await startRedisCluster(3)
  raw = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })))
}, 60_000)

afterAll(async () => {
  await Promise.all(open.map((c) => c.disconnect()))
  raw?.disconnect()
  await cluster?.stop()
})

async function make(ns: string): Promise<DataCache> {
  const c = createDataCache({ namespace: ns, redis: { cluster: [...cluster.urls] } })
  open.push(c)
  await c.ready()
  return c
}


describe('Redis Cluster (3 masters)', () => {
  it('get/set/getOrSet across slots, between two nodes', async () => {
    const ns = `c${randomUUID().slice(0, 8)}`
    const a = await make(ns)
    const b = await make(ns)
    expect(a.stats().redis).toBe('ready')
    const keys = Array.from({ length: 30 }, (_, i) => `item:${i}`)
    for (const k of keys) await a.set(k, { k })
    // The keys really are spread over the three masters.
    const perNode = await Promise.all(raw.nodes('master').map((n) => n.dbsize()))
    expect(perNode.filter((n) => n > 0).length).toBe(3)
    for (const k of keys) expect(await b.get(k)).toEqual({ k })
    expect(b.stats().l2Hits).toBe(30)
    let calls = 0
    expect(await b.getOrSet('fresh', () => ++calls)).toBe(1)
    expect(await a.getOrSet('fresh', () => ++calls)).toBe(1)
    expect(calls).toBe(1)
    expect(a.stats().l2Errors).toBe(0)
  })

  it('deleteByTag removes keys living in different slots, in L2 and in the other node’s L1', async () => {
    const ns = `c${randomUUID().slice(0, 8)}`
    const a = await make(ns)
    const b = await make(ns)
    const keys = Array.from({ length: 20 }, (_, i) => `u:${i}`)
    for (const k of keys) await a.set(k, k, { tags: ['users'] })
    await a.set('other', 'stays', { tags: ['products'] })
    for (const k of keys) expect(await b.get(k)).toBe(k) // warm b's L1
    const got = nextBus(b, 'tag')
    await a.deleteByTag('users')
    await got
    for (const k of keys) {
      expect(await b.get(k)).toBeUndefined()
      expect(await raw.exists(`${ns}::${k}`)).toBe(0)
    }
    expect(await b.get('other')).toBe('stays')
    expect(a.stats().l2Errors).toBe(0)
  })

  it('delete of several keys and clear work across slots', async () => {
    const ns = `c${randomUUID().slice(0, 8)}`
    const a = await make(ns)
    const view = a.namespace('v')
    for (let i = 0; i < 20; i++) await view.set(`k${i}`, i)
    await view.delete(['k0', 'k1', 'k2', 'k3'])
    for (const k of ['k0', 'k1', 'k2', 'k3']) expect(await raw.exists(`${ns}:v::${k}`)).toBe(0)
    expect(await raw.exists(`${ns}:v::k4`)).toBe(1)
    await a.clear()
    for (let i = 0; i < 20; i++) expect(await raw.exists(`${ns}:v::k${i}`)).toBe(0)
    expect(a.stats().l2Errors).toBe(0)
  })

  it('lock: true works on the cluster', async () => {
    const ns = `c${randomUUID().slice(0, 8)}`
    const mk = async () => {
      const c = createDataCache({ namespace: ns, redis: { cluster: [...cluster.urls] }, lock: { pollInterval: 10 } })
      open.push(c)
      await c.ready()
      return c
    }
    const [a, b] = [await mk(), await mk()]
    let calls = 0
    const loader = async () => {
      calls++
      await new Promise((r) => setTimeout(r, 100))
      return 'v'
    }
    await Promise.all([a.getOrSet('k', loader), b.getOrSet('k', loader)])
    expect(calls).toBe(1)
  })
})
