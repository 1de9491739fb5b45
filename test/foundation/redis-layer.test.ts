// The one Redis layer in core/: the deadline + breaker wrapper, the outage queue and the bus,
// against a real redis-server where Redis behaviour is the point (a CLIENT PAUSE stands in for a
// stalled Redis).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { CircuitBreaker } from '../../src/core/breaker.js'
import { systemClock } from '../../src/core/clock.js'
import { OutageQueue } from '../../src/core/outage-queue.js'
import { decodeEnvelope, RedisBus } from '../../src/core/redis-bus.js'
import { RedisCall } from '../../src/core/redis-call.js'
import { pauseRedis, startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/ports.js'

const logger = pino({ level: 'silent' })
let server: RedisServer
beforeAll(async () => {
  server = await startRedis()
})
afterAll(async () => {
  await server.stop()
})

function client(): Redis {
  const c = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  c.on('error', () => {})
  return c
}

describe('RedisCall (deadline + breaker)', () => {
  it('a stalled Redis costs each call its deadline, then nothing; a late answer closes the circuit and is announced', async () => {
    const c = client()
    await waitFor(() => c.status === 'ready')
    try {
      const call = new RedisCall({ timeoutMs: 80, breaker: new CircuitBreaker({ threshold: 2, duration: 60_000, clock: systemClock }), logger })
      let answered = 0
      call.onAnswer(() => answered++)
      await pauseRedis(server, 1000)
      expect(await call.run('get', () => c.get('k'), 'fallback')).toBe('fallback')
      expect(await call.run('get', () => c.get('k'), 'fallback')).toBe('fallback')
      expect(call.breakerState).toBe('open')
      expect(call.usable).toBe(false)
      let sent = false
      expect(
        await call.run('get', () => {
          sent = true
          return c.get('k')
        }, 'skipped'),
      ).toBe('skipped')
      expect(sent).toBe(false)
      expect(call.errors).toBe(2)
      // The two timed-out GETs are answered when the pause ends: proof Redis is back.
      await waitFor(() => answered > 0, 5000)
      expect(call.breakerState).toBe('closed')
      expect(await call.run('set', () => c.set('k', 'v'), 'fallback')).toBe('OK')
    } finally {
      c.disconnect()
    }
  })

  it('calls off the request path neither trip nor probe the breaker', async () => {
    const c = client()
    await waitFor(() => c.status === 'ready')
    try {
      const breaker = new CircuitBreaker({ threshold: 1, duration: 60_000, clock: systemClock })
      const call = new RedisCall({ timeoutMs: 50, breaker, logger })
      await pauseRedis(server, 500)
      expect(await call.run('stats', () => c.dbsize(), -1, { breaker: false })).toBe(-1)
      expect(call.breakerState).toBe('closed')
      expect(await call.run('stats', () => c.dbsize(), -1, { breaker: false, timeoutMs: 5000 })).toBeGreaterThanOrEqual(0)
    } finally {
      c.disconnect()
    }
  })

  it('a throwing or rejecting function is a failure, never an exception', async () => {
    const call = new RedisCall({ timeoutMs: 50, breaker: new CircuitBreaker({ threshold: 5, duration: 1000, clock: systemClock }), logger })
    expect(await call.run('x', () => {
      throw new Error('sync')
    }, 'f')).toBe('f')
    expect(await call.run('x', () => Promise.reject(new Error('async')), 'f')).toBe('f')
    expect(call.errors).toBe(2)
  })
})

describe('OutageQueue', () => {
  it('keeps order, keeps what failed, and sends it when flushed', async () => {
    let up = false
    const sent: number[] = []
    const q = new OutageQueue<number>({ max: 10, retryMs: 60_000, overflow: () => -1, send: async (n) => (up ? (sent.push(n), true) : false) })
    for (const n of [1, 2, 3]) q.push(n)
    await q.flush()
    expect(q.size).toBe(3)
    up = true
    await Promise.all([q.flush(), q.flush()])
    expect(sent).toEqual([1, 2, 3])
    expect(q.empty).toBe(true)
    q.close()
  })

  it('past its bound one overflow item replaces everything queued', async () => {
    const sent: number[] = []
    const q = new OutageQueue<number>({ max: 3, retryMs: 60_000, overflow: () => -1, send: async (n) => (sent.push(n), true) })
    for (let n = 0; n < 10; n++) q.push(n)
    expect(q.size).toBe(1)
    await q.flush()
    expect(sent).toEqual([-1])
    q.close()
  })

  it('retries by itself while items wait', async () => {
    let attempts = 0
    const q = new OutageQueue<string>({ max: 10, retryMs: 20, overflow: () => 'all', send: async () => ++attempts >= 3 })
    q.push('a')
    await waitFor(() => q.empty)
    expect(attempts).toBe(3)
    q.close()
  })
})

describe('RedisBus', () => {
  it('decodes only [node, ...fields] with a non-empty string node', () => {
    expect(decodeEnvelope('["n", 1, "x"]')).toEqual({ node: 'n', fields: [1, 'x'] })
    for (const bad of ['null', '', '{', '{"node":"n"}', '[]', '[""]', '[1]', '"n"']) expect(decodeEnvelope(bad)).toBeUndefined()
  })

  it('a receiver that throws does not stop the next message; its own messages are ignored', async () => {
    const pub = client()
    const sub = new Redis(server.url)
    const raw = new Redis(server.url)
    const got: string[] = []
    const bus = new RedisBus<string>({
      channel: 'test:bus',
      nodeId: 'me',
      codec: { encode: (p) => [p], decode: (f) => (f.length === 1 && typeof f[0] === 'string' ? f[0] : undefined) },
      publisher: { publish: (ch, m) => pub.publish(ch, m).then(() => true, () => false) },
      subscriber: sub,
      logger,
      overflow: () => 'all',
      onMessage: (p) => {
        got.push(p)
        if (p === 'boom') throw new Error('receiver bug')
      },
      onResync: () => {},
    })
    try {
      await bus.whenSubscribed()
      await waitFor(() => pub.status === 'ready')
      bus.publish('mine')
      await raw.publish('test:bus', '["other", "boom"]')
      await raw.publish('test:bus', '["other", 5]')
      await raw.publish('test:bus', '["other", "after"]')
      await waitFor(() => got.includes('after'))
      expect(got).toEqual(['boom', 'after'])
      expect({ published: bus.published, received: bus.received, rejected: bus.rejected }).toEqual({ published: 1, received: 2, rejected: 1 })
    } finally {
      await bus.close()
      pub.disconnect()
      raw.disconnect()
    }
  })
})
