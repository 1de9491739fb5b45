import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { randomUUID } from 'node:crypto'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { sleep } from '../helpers/ports.js'
import { createDataCache, type DataCache, type DataCacheOptions } from '../../src/data-cache/index.js'
import { nextBus } from './helpers.js'

let server: RedisServer
let raw: Redis
const open: DataCache[] = []

beforeAll(async () => {
  server = await startRedis()
  raw = new Redis(server.url)
})

afterAll(async () => {
  await Promise.all(open.map((c) => c.disconnect()))
  raw.disconnect()
  await server.stop()
})

/** A fresh namespace per test so tests never see each other's keys. */
async function make(options: DataCacheOptions = {}, namespace = `t${randomUUID().slice(0, 8)}`): Promise<DataCache> {
  const cache = createDataCache({ namespace, redis: server.url, ...options })
  open.push(cache)
  await cache.ready()
  return cache
}

async function pair(options: DataCacheOptions = {}): Promise<[DataCache, DataCache]> {
  const ns = `t${randomUUID().slice(0, 8)}`
  return [await make(options, ns), await make(options, ns)]
}


describe('tier flow', () => {
  it('miss → loader → L1 and L2; second call is an L1 hit; another node gets an L2 hit', async () => {
    const [a, b] = await pair()
    let calls = 0
    const loader = () => ({ id: 42, n: ++calls })
    expect(await a.getOrSet('user:42', loader)).toEqual({ id: 42, n: 1 })
    expect(await a.getOrSet('user:42', loader)).toEqual({ id: 42, n: 1 })
    expect(a.stats()).toMatchObject({ l1Hits: 1, l2Hits: 0, misses: 1, loaderCalls: 1 })
    expect(await raw.exists(`${a.name}::user:42`)).toBe(1)

    expect(await b.getOrSet('user:42', loader)).toEqual({ id: 42, n: 1 })
    expect(b.stats()).toMatchObject({ l2Hits: 1, loaderCalls: 0 })
    expect(await b.getOrSet('user:42', loader)).toEqual({ id: 42, n: 1 })
    expect(b.stats().l1Hits).toBe(1)
    expect(calls).toBe(1)
  })

  it('an L2 hit fills L1 with the remaining TTL, not a new full TTL', async () => {
    const [a, b] = await pair()
    await a.set('k', 'v', { ttl: 300 })
    await sleep(150)
    expect(await b.get('k')).toBe('v') // L2 hit, L1 filled
    await sleep(200) // 350 ms after the write: expired, although b's L1 copy is only 200 ms old
    expect(await b.get('k')).toBeUndefined()
    expect(b.stats().l1Hits).toBe(0)
  })

  it('stores value and metadata in one Redis string with PX = ttl + grace', async () => {
    const c = await make({ grace: '10s' })
    await c.set('k', { a: 1 }, { ttl: '5s' })
    const pttl = await raw.pttl(`${c.name}::k`)
    expect(pttl).toBeGreaterThan(14_000)
    expect(pttl).toBeLessThanOrEqual(15_000)
    expect(await raw.type(`${c.name}::k`)).toBe('string')
  })

  it('get / has / delete', async () => {
    const [a, b] = await pair()
    expect(await a.get('nope')).toBeUndefined()
    expect(await a.has('nope')).toBe(false)
    await a.set('x', [1, 2, 3])
    expect(await b.has('x')).toBe(true)
    expect(await b.get('x')).toEqual([1, 2, 3])
    await a.delete('x')
    expect(await raw.exists(`${a.name}::x`)).toBe(0)
    expect(await a.get('x')).toBeUndefined()
  })

  it('namespaces are separate views in L1 and L2', async () => {
    const c = await make()
    const carts = c.namespace('carts')
    expect(carts.name).toBe(`${c.name}:carts`)
    await c.set('k', 'root')
    await carts.set('k', 'cart')
    expect(await c.get('k')).toBe('root')
    expect(await carts.get('k')).toBe('cart')
    expect(await raw.get(`${c.name}:carts::k`)).not.toBeNull()
    await carts.clear()
    expect(await carts.get('k')).toBeUndefined()
    expect(await c.get('k')).toBe('root')
    await c.clear() // the root clears its views too
    await carts.set('k2', 1)
    await c.clear()
    expect(await carts.get('k2')).toBeUndefined()
    expect(await raw.keys(`${c.name}:*`)).toEqual([])
  })

  it('L1 only (no redis) is a valid configuration', async () => {
    const c = createDataCache({ namespace: 'local' })
    let n = 0
    expect(await c.getOrSet('a', () => ++n)).toBe(1)
    expect(await c.getOrSet('a', () => ++n)).toBe(1)
    await c.set('b', 2, { tags: ['t'] })
    await c.deleteByTag('t')
    expect(await c.get('b')).toBeUndefined()
    expect(c.stats().redis).toBe('none')
    await c.disconnect()
  })

  it('with l1: false every read goes to Redis', async () => {
    const c = await make({ l1: false })
    await c.set('k', 1)
    expect(await c.get('k')).toBe(1)
    expect(await c.getOrSet('k', () => 2)).toBe(1)
    expect(c.stats()).toMatchObject({ l1Hits: 0, l2Hits: 2 })
  })
})

describe('stampede protection', () => {
  it('1000 concurrent cold getOrSet calls run the loader once', async () => {
    const c = await make()
    let calls = 0
    const loader = async () => {
      calls++
      await sleep(50)
      return { v: 'x' }
    }
    const results = await Promise.all(Array.from({ length: 1000 }, () => c.getOrSet('hot', loader)))
    expect(calls).toBe(1)
    expect(new Set(results).size).toBe(1)
    expect(results[0]).toEqual({ v: 'x' })
  })

  it('lock: true across two instances runs the loader once in total', async () => {
    const [a, b] = await pair({ lock: { wait: '5s', pollInterval: 10 } })
    let calls = 0
    const loader = async () => {
      calls++
      await sleep(200)
      return 'computed'
    }
    const all = await Promise.all([
      ...Array.from({ length: 20 }, () => a.getOrSet('k', loader)),
      ...Array.from({ length: 20 }, () => b.getOrSet('k', loader)),
    ])
    expect(calls).toBe(1)
    expect(all.every((v) => v === 'computed')).toBe(true)
    expect(await raw.exists(`${a.name}:#l:k`)).toBe(0) // released
    // One instance loaded; the other's single flight waited for its lock (once).
    expect(a.stats().lockWaits + b.stats().lockWaits).toBe(1)
  })

  it('without the lock each instance loads once (the lock is what makes it 1)', async () => {
    const [a, b] = await pair()
    let calls = 0
    const loader = async () => {
      calls++
      await sleep(100)
      return 'v'
    }
    await Promise.all([a.getOrSet('k', loader), b.getOrSet('k', loader)])
    expect(calls).toBe(2)
  })

  it('a lock waiter loads itself after lock.wait when the holder never writes', async () => {
    const [a, b] = await pair({ lock: { wait: 150, pollInterval: 10, ttl: '10s' } })
    // Another node holds the lock and never finishes.
    await raw.set(`${a.name}:#l:k`, 'someone-else', 'PX', 10_000)
    const started = Date.now()
    expect(await b.getOrSet('k', () => 'mine')).toBe('mine')
    expect(Date.now() - started).toBeGreaterThanOrEqual(140)
    expect(await a.getOrSet('k', () => 'other')).toBe('mine')
  })
})

describe('coherence between nodes', () => {
  it('set on one node drops the other node’s L1 copy', async () => {
    const [a, b] = await pair()
    await a.set('k', 1)
    expect(await b.get('k')).toBe(1) // now in b's L1
    const got = nextBus(b, 'set')
    await a.set('k', 2)
    expect(await got).toMatchObject({ keys: ['k'] })
    expect(await b.get('k')).toBe(2)
  })

  it('delete', async () => {
    const [a, b] = await pair()
    await a.set('k', 1)
    expect(await b.get('k')).toBe(1)
    const got = nextBus(b, 'delete')
    await a.delete('k')
    await got
    expect(await b.get('k')).toBeUndefined()
  })

  it('deleteByTag removes tagged keys in L2 and in every L1', async () => {
    const [a, b] = await pair()
    await a.set('u1', 'one', { tags: ['users', 'u:1'] })
    await a.set('u2', 'two', { tags: ['users'] })
    await a.set('p1', 'product', { tags: ['products'] })
    for (const k of ['u1', 'u2', 'p1']) await b.get(k) // warm b's L1
    expect(await raw.smembers(`${a.name}:#t:users`)).toHaveLength(2)
    const got = nextBus(b, 'tag')
    await a.deleteByTag('users')
    expect(await got).toMatchObject({ keys: ['users'] })
    expect(await b.get('u1')).toBeUndefined()
    expect(await b.get('u2')).toBeUndefined()
    expect(await b.get('p1')).toBe('product')
    expect(await a.get('u1')).toBeUndefined()
    expect(await raw.exists(`${a.name}::u1`, `${a.name}::u2`, `${a.name}:#t:users`)).toBe(0)
  })

  it('a tag set lives as long as its longest-lived member', async () => {
    const c = await make()
    await c.set('a', 1, { ttl: '10s', tags: ['t'] })
    await c.set('b', 1, { ttl: '1s', tags: ['t'] })
    expect(await raw.pttl(`${c.name}:#t:t`)).toBeGreaterThan(9000)
  })

  it('getOrSet tags work with deleteByTag across nodes', async () => {
    const [a, b] = await pair()
    let n = 0
    const load = () => ++n
    expect(await a.getOrSet('k', load, { tags: ['x'] })).toBe(1)
    expect(await b.getOrSet('k', load, { tags: ['x'] })).toBe(1)
    const got = nextBus(a, 'tag')
    await b.deleteByTag('x')
    await got
    expect(await a.getOrSet('k', load, { tags: ['x'] })).toBe(2)
  })

  it('clear', async () => {
    const [a, b] = await pair()
    await a.set('k1', 1)
    await a.set('k2', 2)
    await b.get('k1')
    const got = nextBus(b, 'clear')
    await a.clear()
    await got
    expect(await b.get('k1')).toBeUndefined()
    expect(await raw.keys(`${a.name}:*`)).toEqual([])
  })

  it('a node does not apply its own messages', async () => {
    const [a, b] = await pair()
    const own: unknown[] = []
    a.on('bus:received', (m) => own.push(m))
    const got = nextBus(b, 'set')
    await a.set('k', 1)
    await got
    // b got it; give a's subscriber the same chance, then check a ignored its own message.
    await sleep(50)
    expect(own).toEqual([])
    expect(a.stats().busReceived).toBe(0)
    expect(await a.get('k')).toBe(1)
    expect(a.stats().l1Hits).toBe(1) // still in a's L1: not dropped by its own message
  })
})

describe('serializers through Redis', () => {
  it('msgpack round-trips Buffers, Dates and Maps between nodes', async () => {
    const [a, b] = await pair({ serializer: 'msgpack' })
    const value = { buf: Buffer.from([0, 1, 2, 255]), when: new Date('2024-01-02T03:04:05.678Z'), map: new Map<unknown, unknown>([[1, 'one'], ['k', { x: [1] }]]) }
    await a.set('v', value)
    const got = await b.get<typeof value>('v')
    expect(b.stats().l2Hits).toBe(1)
    expect(Buffer.isBuffer(got!.buf)).toBe(true)
    expect(got!.buf.equals(value.buf)).toBe(true)
    expect(got!.when).toBeInstanceOf(Date)
    expect(got!.when.getTime()).toBe(value.when.getTime())
    expect(got!.map).toBeInstanceOf(Map)
    expect([...got!.map]).toEqual([...value.map])
  })

  it('a custom serializer is used for L2', async () => {
    const upper = {
      serialize: (v: unknown) => String(v).toUpperCase(),
      deserialize: (b: Buffer) => `<${b.toString()}>`,
    }
    const [a, b] = await pair({ serializer: upper })
    await a.set('k', 'hello')
    expect(await b.get('k')).toBe('<HELLO>')
  })
})
