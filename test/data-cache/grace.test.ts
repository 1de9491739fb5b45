import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomUUID } from 'node:crypto'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { sleep } from '../helpers/ports.js'
import { ManualClock } from '../../src/core/clock.js'
import { isStrataError } from '../../src/core/errors.js'
import { createDataCache, type DataCache, type DataCacheOptions } from '../../src/data-cache/index.js'

// TTL, grace, soft and hard timeouts with short real waits; L1-only caches plus one run through
// Redis (the stale value then comes from L2).
let server: RedisServer
const open: DataCache[] = []
beforeAll(async () => {
  server = await startRedis()
})
afterAll(async () => {
  await Promise.all(open.map((c) => c.disconnect()))
  await server.stop()
})

function local(options: DataCacheOptions = {}): DataCache {
  const c = createDataCache({ namespace: `g${randomUUID().slice(0, 8)}`, ...options })
  open.push(c)
  return c
}

const fail = () => {
  throw new Error('source down')
}

describe('TTL', () => {
  it('a value expires after its ttl (real wait)', async () => {
    const c = local()
    let n = 0
    expect(await c.getOrSet('k', () => ++n, { ttl: 80 })).toBe(1)
    expect(await c.getOrSet('k', () => ++n, { ttl: 80 })).toBe(1)
    await sleep(120)
    expect(await c.getOrSet('k', () => ++n, { ttl: 80 })).toBe(2)
  })

  it('durations accept strings; defaultTtl applies (injected clock)', async () => {
    const clock = new ManualClock()
    const c = local({ clock, defaultTtl: '2m' })
    await c.set('k', 1)
    clock.advance(119_999)
    expect(await c.get('k')).toBe(1)
    clock.advance(1)
    expect(await c.get('k')).toBeUndefined()
    await c.set('k2', 1, { ttl: '1s' })
    clock.advance(1000)
    expect(await c.has('k2')).toBe(false)
  })
})

describe('grace', () => {
  it('a failing loader yields the stale value within grace, not after it', async () => {
    const clock = new ManualClock()
    const c = local({ clock, grace: '1h', graceBackoff: 0 })
    await c.set('k', 'old', { ttl: '1m' })
    clock.advance(60_000)
    expect(await c.getOrSet('k', fail)).toBe('old')
    expect(c.stats()).toMatchObject({ staleServed: 1, loaderErrors: 1 })
    clock.advance(3_600_000) // grace is over
    await expect(c.getOrSet('k', fail)).rejects.toThrow('source down')
  })

  it('without grace a failing loader rejects', async () => {
    const clock = new ManualClock()
    const c = local({ clock })
    await c.set('k', 'old', { ttl: '1m' })
    clock.advance(60_000)
    await expect(c.getOrSet('k', fail)).rejects.toThrow('source down')
  })

  it('graceBackoff: after a failure the stale value is served without calling the loader', async () => {
    const clock = new ManualClock()
    const c = local({ clock, grace: '1h', graceBackoff: '10s' })
    await c.set('k', 'old', { ttl: '1m' })
    clock.advance(60_000)
    let calls = 0
    const failing = () => {
      calls++
      throw new Error('down')
    }
    expect(await c.getOrSet('k', failing)).toBe('old')
    expect(await c.getOrSet('k', failing)).toBe('old')
    expect(calls).toBe(1)
    clock.advance(10_000)
    expect(await c.getOrSet('k', failing)).toBe('old')
    expect(calls).toBe(2)
  })

  it('soft timeout: a slow loader yields stale after the soft timeout, then refreshes in the background', async () => {
    const c = local({ grace: '1h', timeouts: { soft: 50 } })
    await c.set('k', 'old', { ttl: 30 })
    await sleep(40)
    let done = false
    const slow = async () => {
      await sleep(200)
      done = true
      return 'new'
    }
    const started = Date.now()
    expect(await c.getOrSet('k', slow)).toBe('old')
    const took = Date.now() - started
    expect(took).toBeGreaterThanOrEqual(45)
    expect(took).toBeLessThan(190)
    expect(done).toBe(false)
    await sleep(250)
    expect(done).toBe(true)
    expect(await c.getOrSet('k', fail)).toBe('new') // the background refresh landed
  })

  it('soft timeout: a loader faster than the soft timeout gives the fresh value', async () => {
    const c = local({ grace: '1h', timeouts: { soft: 200 } })
    await c.set('k', 'old', { ttl: 20 })
    await sleep(30)
    expect(await c.getOrSet('k', async () => (await sleep(20), 'new'))).toBe('new')
  })

  it('soft timeout 0 (default) serves stale at once and refreshes once in the background', async () => {
    const c = local({ grace: '1h' })
    await c.set('k', 'old', { ttl: 20 })
    await sleep(30)
    let calls = 0
    const slow = async () => {
      calls++
      await sleep(50)
      return 'new'
    }
    expect(await Promise.all([c.getOrSet('k', slow), c.getOrSet('k', slow)])).toEqual(['old', 'old'])
    await sleep(80)
    expect(await c.getOrSet('k', slow)).toBe('new')
    expect(calls).toBe(1)
  })

  it('hard timeout: fails with STRATA_DATA_CACHE_TIMEOUT when nothing can be served; the load still lands', async () => {
    const c = local({ timeouts: { hard: 50 } })
    const slow = async () => {
      await sleep(150)
      return 'late'
    }
    const err = await c.getOrSet('k', slow).catch((e: unknown) => e)
    expect(isStrataError(err, 'STRATA_DATA_CACHE_TIMEOUT')).toBe(true)
    expect((err as Error).message).toMatch(/"k".*50 ms/)
    await sleep(150)
    expect(await c.get('k')).toBe('late')
  })

  it('per-call timeouts override the cache defaults', async () => {
    const c = local({ timeouts: { hard: 10_000 } })
    const err = await c.getOrSet('k', () => sleep(100).then(() => 1), { timeouts: { hard: 20 } }).catch((e: unknown) => e)
    expect(isStrataError(err, 'STRATA_DATA_CACHE_TIMEOUT')).toBe(true)
  })

  it('the stale value can come from L2 (another node wrote it)', async () => {
    const ns = `g${randomUUID().slice(0, 8)}`
    const a = createDataCache({ namespace: ns, redis: server.url, grace: '1h' })
    const b = createDataCache({ namespace: ns, redis: server.url, grace: '1h' })
    open.push(a, b)
    await Promise.all([a.ready(), b.ready()])
    await a.set('k', 'from-a', { ttl: 30 })
    await sleep(50)
    // b has nothing in L1; L2 holds the graced record.
    expect(await b.getOrSet('k', fail)).toBe('from-a')
    expect(b.stats().staleServed).toBe(1)
    expect(await b.get('k', { allowStale: true })).toBe('from-a')
  })

  it('a loader returning undefined is not cached', async () => {
    const c = local()
    let n = 0
    expect(await c.getOrSet('k', () => (n++, undefined))).toBeUndefined()
    expect(await c.getOrSet('k', () => (n++, undefined))).toBeUndefined()
    expect(n).toBe(2)
  })

  it('the loader sees the stale value', async () => {
    const clock = new ManualClock()
    const c = local({ clock, grace: '1h', timeouts: { soft: 1000 } })
    await c.set('k', 1, { ttl: 10 })
    clock.advance(10)
    expect(await c.getOrSet<number>('k', ({ stale }) => (stale ?? 0) + 1)).toBe(2)
  })
})

describe('L1 bounds and tags', () => {
  it('L1 is bounded by bytes', async () => {
    const c = local({ l1: { maxBytes: 64 * 1024 } })
    const big = 'x'.repeat(1000)
    for (let i = 0; i < 500; i++) await c.set(`k${i}`, big)
    const s = c.stats()
    expect(s.l1Bytes).toBeLessThanOrEqual(64 * 1024)
    expect(s.l1Entries).toBeLessThan(70)
    expect(await c.get('k499')).toBe(big)
    expect(await c.get('k0')).toBeUndefined()
  })

  it('deleteByTag in a view does not touch the same tag in another view', async () => {
    const c = local()
    const a = c.namespace('a')
    const b = c.namespace('b')
    await a.set('k', 1, { tags: ['t'] })
    await b.set('k', 2, { tags: ['t'] })
    await a.deleteByTag('t')
    expect(await a.get('k')).toBeUndefined()
    expect(await b.get('k')).toBe(2)
  })

  it('overwriting a key without tags removes it from the old tag', async () => {
    const c = local()
    await c.set('k', 1, { tags: ['t'] })
    await c.set('k', 2)
    await c.deleteByTag('t')
    expect(await c.get('k')).toBe(2)
  })
})
