import { describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { isStrataError } from '../../src/core/errors.js'
import { ManualClock } from '../../src/core/clock.js'
import { resolveOptions, DEFAULTS } from '../../src/data-cache/options.js'
import { createDataCache, jsonSerializer, msgpackSerializer, type DataCacheOptions } from '../../src/data-cache/index.js'

function errorOf(fn: () => unknown): Error & { code?: string } {
  try {
    fn()
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a throw')
}

describe('options: bad input throws a clear STRATA_DATA_CACHE_OPTIONS error at creation', () => {
  const bad: Array<[string, unknown, RegExp]> = [
    ['unknown key (typo)', { ttl: '5m' }, /option ttl: unknown option/],
    ['namespace with a colon', { namespace: 'a:b' }, /namespace: must match/],
    ['empty namespace', { namespace: '' }, /namespace/],
    ['bad duration string', { defaultTtl: '5 minutes' }, /defaultTtl: "5 minutes" is not a duration/],
    ['negative duration', { grace: -1 }, /grace/],
    ['zero ttl', { defaultTtl: 0 }, /defaultTtl: must be greater than 0/],
    ['duration of wrong type', { grace: true }, /grace: must be a number of ms/],
    ['l1.maxBytes not a positive integer', { l1: { maxBytes: -5 } }, /l1.maxBytes: must be a positive integer/],
    ['unknown l1 key', { l1: { max: 5 } }, /l1.max: unknown option/],
    ['no tier at all', { l1: false }, /l1: cannot be false without `redis`/],
    ['redis URL with another scheme', { redis: 'http://127.0.0.1:6379' }, /redis: "http:.*" must use redis:\/\//],
    ['redis not a URL', { redis: 'localhost' }, /redis: "localhost" is not a URL/],
    ['redis number', { redis: 6379 }, /redis: must be a URL, an ioredis instance/],
    ['empty cluster list', { redis: { cluster: [] } }, /redis.cluster: must be a non-empty array/],
    ['cluster node not a URL', { redis: { cluster: ['redis://a:1', 'nope'] } }, /redis.cluster\[1\]/],
    ['sentinel without name', { redis: { sentinels: ['redis://127.0.0.1:26379'] } }, /redis.name: the sentinel master name is required/],
    ['redis object of unknown shape', { redis: { host: 'x' } }, /must have `cluster` or `sentinels`/],
    ['serializer name', { serializer: 'yaml' }, /serializer: must be 'json', 'msgpack'/],
    ['serializer half object', { serializer: { serialize: JSON.stringify } }, /serializer/],
    ['lock without redis', { lock: true }, /lock: needs `redis`/],
    ['lock wrong type', { lock: 'yes', redis: 'redis://127.0.0.1:1' }, /lock: must be a boolean/],
    ['unknown timeouts key', { timeouts: { medium: 1 } }, /timeouts.medium: unknown option/],
    ['l2.timeout zero', { l2: { timeout: 0 } }, /l2.timeout/],
    ['breaker threshold fractional', { l2: { breakerThreshold: 1.5 } }, /l2.breakerThreshold/],
    ['bus not boolean', { bus: 'on' }, /bus: must be a boolean/],
    ['clock without now', { clock: {} }, /clock: must have a now\(\) method/],
    ['logger not pino', { logger: console.log }, /logger: must be a pino logger/],
    ['options not an object', 'redis://x', /options must be an object/],
  ]
  for (const [name, input, message] of bad) {
    it(name, () => {
      const err = errorOf(() => createDataCache(input as DataCacheOptions))
      expect(isStrataError(err, 'STRATA_DATA_CACHE_OPTIONS')).toBe(true)
      expect(err.message).toMatch(message)
    })
  }

  it('bad per-call options reject with the same code', async () => {
    const c = createDataCache()
    await expect(c.set('k', 1, { ttl: 'soon' })).rejects.toMatchObject({ code: 'STRATA_DATA_CACHE_OPTIONS' })
    await expect(c.set('k', 1, { tags: [''] })).rejects.toMatchObject({ code: 'STRATA_DATA_CACHE_OPTIONS' })
    await expect(c.set('k', undefined)).rejects.toMatchObject({ code: 'STRATA_DATA_CACHE_OPTIONS' })
    await expect(c.getOrSet('k', () => 1, { grace: 'x' })).rejects.toMatchObject({ code: 'STRATA_DATA_CACHE_OPTIONS' })
    await expect(c.getOrSet('k', 'nope' as never)).rejects.toMatchObject({ code: 'STRATA_DATA_CACHE_OPTIONS' })
    expect(() => c.namespace('a:b')).toThrow(/namespace\(\)/)
  })
})

describe('options: defaults and resolution', () => {
  it('fills every default, resolves durations to ms, freezes, never mutates the input', () => {
    const input = { defaultTtl: '10m', grace: '1h', timeouts: { soft: '250ms' } } as const
    const copy = JSON.parse(JSON.stringify(input))
    const r = resolveOptions(input)
    expect(input).toEqual(copy)
    expect(r).toMatchObject({
      namespace: DEFAULTS.namespace,
      l1: { maxBytes: 64 * 1024 * 1024 },
      defaultTtl: 600_000,
      grace: 3_600_000,
      softTimeout: 250,
      hardTimeout: 10_000,
      bus: false,
      lock: { enabled: false, wait: 5000, ttl: 10_000, pollInterval: 25 },
      l2: { timeout: 500, breakerThreshold: 3, breakerDuration: 5000 },
    })
    expect(r.serializer).toBe(jsonSerializer)
    expect(Object.isFrozen(r)).toBe(true)
    expect(Object.isFrozen(r.lock)).toBe(true)
    expect(resolveOptions({ serializer: 'msgpack' }).serializer).toBe(msgpackSerializer)
  })

  it('ttl and grace of 0 are kept (?? not ||); the bus defaults on with redis', () => {
    const r = resolveOptions({ grace: 0, graceBackoff: 0, redis: 'redis://127.0.0.1:1' })
    expect(r.grace).toBe(0)
    expect(r.graceBackoff).toBe(0)
    expect(r.bus).toBe(true)
    expect(resolveOptions({ redis: 'redis://127.0.0.1:1', bus: false }).bus).toBe(false)
  })

  it('accepts every redis form', () => {
    const client = new Redis({ lazyConnect: true })
    for (const redis of [
      'redis://127.0.0.1:6379',
      'rediss://user:pw@example.com:6380/2',
      client,
      { cluster: ['redis://127.0.0.1:7000', 'redis://127.0.0.1:7001'] },
      { sentinels: ['redis://127.0.0.1:26379'], name: 'mymaster' },
    ]) {
      expect(resolveOptions({ redis }).redis).toBe(redis)
    }
    client.disconnect()
  })

  it('lock in object form is enabled by default', () => {
    expect(resolveOptions({ redis: 'redis://x:1', lock: { wait: '1s' } }).lock).toEqual({ enabled: true, wait: 1000, ttl: 10_000, pollInterval: 25 })
  })

  it('takes the injected clock', () => {
    const clock = new ManualClock()
    expect(resolveOptions({ clock }).clock).toBe(clock)
  })
})
