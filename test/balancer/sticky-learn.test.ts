import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { Balancer } from '../../src/balancer/index.js'
import { ManualClock } from '../../src/core/clock.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/ports.js'
import { balancerConfig, req, upstreams } from './fixtures.js'

const learn = (ttlMs = 60_000) => balancerConfig({ sticky: { mode: 'learn', cookie: 'sid', ttlMs } })
const withSid = (sid: string) => req({ headers: { cookie: `theme=dark; sid=${sid}` } })

describe('sticky learn mode (in memory)', () => {
  it('sticks a session to the server that set its cookie, until ttlMs', () => {
    const clock = new ManualClock()
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: learn(10_000), clock })
    const first = b.pick(req())!
    expect(first.setCookie).toBeUndefined()
    b.learnFromResponse(first.upstream, ['lang=en; Path=/', 'sid=s1; Path=/; HttpOnly'])
    for (let i = 0; i < 6; i++) expect(b.pick(withSid('s1'))!.upstream.id).toBe(first.upstream.id)
    // Unknown sessions are balanced normally.
    expect(new Set(Array.from({ length: 3 }, () => b.pick(withSid('other'))!.upstream.id)).size).toBe(3)
    // Idle beyond the ttl: forgotten.
    clock.advance(10_001)
    const seen = new Set(Array.from({ length: 3 }, () => b.pick(withSid('s1'))!.upstream.id))
    expect(seen.size).toBe(3)
  })

  it('moves a session whose server is out, and remembers the move', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1, c: 1 }), config: learn() })
    const first = b.pick(req())!
    b.learnFromResponse(first.upstream, 'sid=s2; Path=/')
    b.remove(first.upstream.id)
    const moved = b.pick(withSid('s2'))!.upstream.id
    expect(moved).not.toBe(first.upstream.id)
    for (let i = 0; i < 4; i++) expect(b.pick(withSid('s2'))!.upstream.id).toBe(moved)
  })

  it('does not learn deleted cookies or other cookie names', () => {
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: learn() })
    const a = b.get('a')!
    b.learnFromResponse(a, ['sid=; Max-Age=0', 'sidx=zzz'])
    b.learnFromResponse(a, 'sid=gone; Max-Age=0; Path=/')
    const ids = new Set(Array.from({ length: 4 }, () => b.pick(withSid('zzz'))!.upstream.id))
    expect(ids.size).toBe(2)
    expect(new Set(Array.from({ length: 4 }, () => b.pick(withSid('gone'))!.upstream.id)).size).toBe(2)
  })
})

describe('sticky learn mode across two nodes sharing a real redis-server', () => {
  let redis: RedisServer
  const clients: Redis[] = []
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit()))
    await redis.stop()
  })

  it('a session learned on one node is honoured by the other', async () => {
    const [r1, r2] = [new Redis(redis.url), new Redis(redis.url)]
    clients.push(r1, r2)
    const cfg = upstreams({ a: 1, b: 1, c: 1 })
    const one = new Balancer({ upstreams: cfg, config: learn(), redis: r1 })
    const two = new Balancer({ upstreams: cfg, config: learn(), redis: r2 })
    one.pick(req())
    const picked = one.pick(req())!.upstream // "b": node two, left alone, would pick "a" next
    expect(picked.id).toBe('b')
    one.learnFromResponse(picked, 'sid=shared-1; Path=/; HttpOnly')
    // The write is fire-and-forget; wait until Redis has it instead of sleeping.
    await waitFor(async () => (await r2.keys('strata:learn:sid:*')).length === 1)
    const viaTwo = await two.pickAsync(withSid('shared-1'))
    expect(viaTwo!.upstream.id).toBe('b')
    // Now known locally on node two as well: the synchronous pick agrees.
    expect(two.pick(withSid('shared-1'))!.upstream.id).toBe('b')
    // The session id itself is not readable from Redis (only a digest).
    const keys = await r2.keys('strata:learn:sid:*')
    expect(keys[0]).not.toContain('shared-1')
    expect(await r2.pttl(keys[0]!)).toBeGreaterThan(0)
    await Promise.all([one.close(), two.close()])
  })

  it('a dead Redis turns into a miss within the timeout, not a hang', async () => {
    const tmp = await startRedis()
    const r = new Redis(tmp.url, { maxRetriesPerRequest: null })
    r.on('error', () => {}) // expected: the server is killed below
    const b = new Balancer({ upstreams: upstreams({ a: 1, b: 1 }), config: learn(), redis: r, redisTimeoutMs: 100 })
    await tmp.kill()
    const started = Date.now()
    const res = await b.pickAsync(withSid('unknown'))
    expect(res).toBeDefined()
    expect(Date.now() - started).toBeLessThan(1000)
    r.disconnect()
    await tmp.stop()
    await b.close()
  })
})
