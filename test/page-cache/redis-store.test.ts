import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { ManualClock } from '../../src/core/clock.js'
import { CircuitBreaker } from '../../src/core/breaker.js'
import { RedisStore, decodeEntry, encodeEntry } from '../../src/page-cache/redis-store.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { makeEntry, runStoreContract } from './store-contract.js'

let redis: RedisServer
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})

runStoreContract('redis', async () => {
  const clock = new ManualClock()
  const admin = new Redis(redis.url)
  await admin.flushall()
  admin.disconnect()
  const store = new RedisStore({ redis: redis.url, timeoutMs: 1000, clock })
  await store.ready()
  return { store, clock, close: () => store.close() }
})

describe('RedisStore specifics', () => {
  it('encodes entries with msgpack, binary-safe, without the prepared field', () => {
    const clock = new ManualClock()
    const e = makeEntry(clock, { body: Buffer.from([0, 255, 128, 10, 13]) })
    e.prepared = { program: [1, 2, 3] }
    const back = decodeEntry(encodeEntry(e))
    expect(back.body.equals(e.body)).toBe(true)
    expect(back.prepared).toBeUndefined()
    expect(back.headers).toEqual(e.headers)
  })

  it('expires keys in Redis with the entry', async () => {
    const clock = new ManualClock()
    const store = new RedisStore({ redis: redis.url, timeoutMs: 1000, clock })
    await store.ready()
    await store.set(makeEntry(clock, { key: 'http://h/ttl', ttl: 30 }))
    const pttl = await (store.client as Redis).pttl('strata:pc:e:http://h/ttl')
    expect(pttl).toBeGreaterThan(29_000)
    expect(pttl).toBeLessThanOrEqual(30_000)
    await store.close()
  })
})

describe('CircuitBreaker', () => {
  it('opens after consecutive failures, probes once after the cooldown, closes on success', () => {
    const clock = new ManualClock()
    const b = new CircuitBreaker({ threshold: 2, duration: 1000, clock })
    b.failure()
    expect(b.state).toBe('closed')
    b.success()
    b.failure()
    b.failure()
    expect(b.state).toBe('open')
    expect(b.allow()).toBe(false)
    clock.advance(1000)
    expect(b.state).toBe('half-open')
    expect(b.allow()).toBe(true)
    expect(b.allow()).toBe(false) // one probe at a time
    b.failure()
    expect(b.state).toBe('open')
    clock.advance(1000)
    expect(b.allow()).toBe(true)
    b.success()
    expect(b.state).toBe('closed')
  })
})
