import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { randomUUID } from 'node:crypto'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/ports.js'
import { isStrataError } from '../../src/core/errors.js'
import { createDataCache, type DataCache, type DataCacheOptions } from '../../src/data-cache/index.js'
import { resolveOptions } from '../../src/data-cache/options.js'

// A loader that never settles must not wedge its key: after the hard timeout waiting callers get
// stale data or STRATA_DATA_CACHE_TIMEOUT, and the next call starts a fresh load. Real Redis
// behind one run, L1-only elsewhere.
let server: RedisServer
const open: DataCache[] = []
beforeAll(async () => {
  server = await startRedis()
})
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.disconnect()))
})
afterAll(async () => {
  await server.stop()
})

function cache(options: DataCacheOptions = {}): DataCache {
  const c = createDataCache({ namespace: `h${randomUUID().slice(0, 8)}`, ...options })
  open.push(c)
  return c
}

const hang = () => new Promise<never>(() => {})

describe('data-cache hard timeout', () => {
  it("defaults to 10 s", () => {
    expect(resolveOptions({}).hardTimeout).toBe(10_000)
  })

  it('a hung loader fails its callers with STRATA_DATA_CACHE_TIMEOUT and the next call loads again', async () => {
    const c = cache({ timeouts: { hard: 60 } })
    let calls = 0
    const hung = () => {
      calls++
      return hang()
    }
    const errs = await Promise.all([c.getOrSet('k', hung).catch((e: unknown) => e), c.getOrSet('k', hung).catch((e: unknown) => e)])
    for (const e of errs) expect(isStrataError(e, 'STRATA_DATA_CACHE_TIMEOUT')).toBe(true)
    expect(calls).toBe(1)
    expect(c.stats().inFlight).toBe(0)
    expect(await c.getOrSet('k', () => 'fresh')).toBe('fresh')
    expect(await c.get('k')).toBe('fresh')
  })

  it('with a stale value: callers get it, and once the hard timeout passed the next call refreshes', async () => {
    const c = cache({ redis: server.url, timeouts: { hard: 60 }, grace: '1h' })
    await c.ready()
    await c.set('k', 'old', { ttl: 1 })
    await waitFor(async () => (await c.get('k')) === undefined)
    const reasons: string[] = []
    c.on('stale', (e) => reasons.push(e.reason))
    expect(await c.getOrSet('k', hang, { timeouts: { soft: 20 } })).toBe('old')
    // The hung flight is given up after its hard timeout, not kept forever.
    await waitFor(() => c.stats().inFlight === 0)
    expect(await c.getOrSet('k', () => 'new', { timeouts: { soft: 1000 } })).toBe('new')
    expect(await c.get('k')).toBe('new')
    expect(reasons).toEqual(['soft-timeout'])
  })

  it('a caller still waiting when the flight is given up gets the stale value', async () => {
    const c = cache({ timeouts: { hard: 40 }, grace: '1h' })
    await c.set('k', 'old', { ttl: 1 })
    await waitFor(async () => (await c.get('k')) === undefined)
    const reasons: string[] = []
    c.on('stale', (e) => reasons.push(e.reason))
    expect(await c.getOrSet('k', hang, { timeouts: { soft: '1m' } })).toBe('old')
    expect(reasons).toEqual(['hard-timeout'])
  })
})
