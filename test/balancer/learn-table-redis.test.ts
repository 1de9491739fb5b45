// The learn table's Redis calls go through the shared deadline + breaker wrapper: a stalled Redis
// costs a lookup its deadline a few times, then nothing, and the table recovers by itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { LearnTable } from '../../src/balancer/learn-table.js'
import { systemClock } from '../../src/core/clock.js'
import { pauseRedis, startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/ports.js'

let server: RedisServer
beforeAll(async () => {
  server = await startRedis()
})
afterAll(async () => {
  await server.stop()
})

describe('learn table on a stalled Redis', () => {
  it('after three timed-out lookups the rest answer at once (a miss) while Redis is still paused; it recovers after', async () => {
    const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
    redis.on('error', () => {})
    await waitFor(() => redis.status === 'ready')
    try {
      const writer = new LearnTable('sid', { ttlMs: 60_000, clock: systemClock, logger: pino({ level: 'silent' }), redis, redisTimeoutMs: 100 })
      writer.set('s1', 'b2')
      const reader = () => new LearnTable('sid', { ttlMs: 60_000, clock: systemClock, logger: pino({ level: 'silent' }), redis, redisTimeoutMs: 100 })
      expect(await reader().fetch('s1')).toBe('b2')

      const table = reader()
      const pausedAt = await pauseRedis(server, 3000)
      for (const sid of ['a', 'b', 'c']) expect(await table.fetch(sid)).toBeUndefined()
      const t0 = Date.now()
      for (let i = 0; i < 20; i++) expect(await table.fetch(`x${i}`)).toBeUndefined()
      // Twenty lookups with the breaker open take no deadline each (20 × 100 ms would be 2 s), and
      // all of it happened well before the 3 s pause ended.
      expect(Date.now() - t0).toBeLessThan(1000)
      expect(Date.now() - pausedAt).toBeLessThan(2500)
      await waitFor(async () => (await table.fetch('s1')) === 'b2', 10_000, 100)
    } finally {
      redis.disconnect()
    }
  })
})
