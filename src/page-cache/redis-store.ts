/**
 * L2: the page cache in Redis, shared by every strata node, and the Redis pub/sub invalidation
 * bus. Layout (all under the `strata:pc:` prefix):
 *   e:<primary key>  hash, field = Vary variant, value = msgpack(entry) — bodies are binary-safe
 *   t:<tag>          set of primary keys carrying the surrogate key
 *   invalidate       pub/sub channel of the invalidation bus (bus.ts)
 * Keys expire with their longest-lived variant; each variant's own deleteAt is checked on read.
 * A variant is written and its key's TTL extended in one script, so no crash or timeout between
 * two round trips can leave an entry without a TTL.
 */
import { Packr } from 'msgpackr'
import { ownedBytes } from './owned-bytes.js'
import type { Logger } from 'pino'
import type { RedisOption } from '../config/schema.js'
import { systemClock, type Clock } from '../core/clock.js'
import type { Redis } from 'ioredis'
import { createRedisClient as connect, isCluster, isRedisClient, type RedisClient } from '../core/redis.js'
import type { RedisCall } from '../core/redis-call.js'
import { RedisBus } from '../core/redis-bus.js'
import { addToTags, popTag, tagMembers } from '../core/tag-index.js'
import { silentLogger } from '../observability/logger.js'
import { purgeCodec, RedisInvalidationBus } from './bus.js'
import type { PurgeCommand } from './types.js'
import { selectsEntry, soften, type PageStore, type PurgeOptions, type PurgeSelector, type StoreStats } from './store.js'
import type { CacheEntry } from './types.js'

export const REDIS_PREFIX = 'strata:pc:'
const ENTRY = `${REDIS_PREFIX}e:`
const TAG = `${REDIS_PREFIX}t:`
export const BUS_CHANNEL = `${REDIS_PREFIX}invalidate`

type Client = RedisClient

/** L2 fails fast: connecting may take a few timeouts' worth, commands never queue. */
const createRedisClient = (opt: NonNullable<RedisOption>, timeoutMs: number, subscriber = false): Client =>
  connect(opt, { subscriber, connectTimeoutMs: Math.max(1000, timeoutMs * 4) })

export interface RedisStoreOptions {
  redis: NonNullable<RedisOption> | Client
  timeoutMs: number
  clock?: Clock
  logger?: Logger
}

/** Writes variant ARGV[1] = ARGV[2] and sets the key's TTL to ARGV[3] ms unless it already lives longer. */
const SET_VARIANT = `redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local t = redis.call('PTTL', KEYS[1])
if t >= 0 and t >= tonumber(ARGV[3]) then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[3])`

const packr = new Packr({ useRecords: false })

/** Entry → bytes; `prepared` and `wire` stay in memory (rebuilt after a fill). */
export function encodeEntry(e: CacheEntry): Buffer {
  const { prepared: _prepared, wire: _wire, ...rest } = e
  return packr.pack(rest)
}

export function decodeEntry(buf: Buffer): CacheEntry {
  const e = packr.unpack(buf) as CacheEntry
  // msgpackr hands out a view into the reply buffer: the entry gets bytes of its own.
  e.body = ownedBytes(e.body as unknown as Uint8Array)
  return e
}

function waitReady(client: Client, ms: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve()
  return new Promise((resolve) => {
    const t = setTimeout(done, ms)
    t.unref()
    function done() {
      clearTimeout(t)
      client.off('ready', done)
      resolve()
    }
    client.once('ready', done)
  })
}

export class RedisStore implements PageStore {
  readonly name = 'redis'
  readonly client: Client
  #own: boolean
  #clock: Clock
  #log: Logger

  constructor(opts: RedisStoreOptions) {
    this.#own = !isRedisClient(opts.redis)
    this.client = isRedisClient(opts.redis) ? opts.redis : createRedisClient(opts.redis, opts.timeoutMs)
    this.#clock = opts.clock ?? systemClock
    this.#log = opts.logger ?? silentLogger
    this.client.on('error', (err: Error) => this.#log.debug({ err }, 'redis (L2) connection error'))
    this.client.defineCommand('strataSetVariant', { numberOfKeys: 1, lua: SET_VARIANT })
  }

  /** Resolves when connected, or after `ms` (a store that is not ready yet simply fails fast). */
  ready(ms = 2000): Promise<void> {
    return waitReady(this.client, ms)
  }

  #setVariant(key: string, variant: string, value: Buffer, ms: number): Promise<unknown> {
    const c = this.client as unknown as { strataSetVariant(k: string, f: string, v: Buffer, ms: number): Promise<unknown> }
    return c.strataSetVariant(key, variant, value, Math.max(1, Math.ceil(ms)))
  }

  async get(key: string): Promise<readonly CacheEntry[] | undefined> {
    const raw = await this.client.hgetallBuffer(ENTRY + key)
    const now = this.#clock.now()
    const out: CacheEntry[] = []
    for (const f in raw) {
      const e = decodeEntry(raw[f]!)
      if (e.deleteAt > now) out.push(e)
    }
    return out.length === 0 ? undefined : out
  }

  async set(entry: CacheEntry): Promise<void> {
    const ttl = entry.deleteAt - this.#clock.now()
    if (ttl <= 0) return
    // The entry first, then its tags (core/tag-index.ts): issued together, one slot each.
    await Promise.all([
      this.#setVariant(ENTRY + entry.key, entry.variant, encodeEntry(entry), ttl),
      addToTags(this.client, entry.tags.map((t) => TAG + t), entry.key, ttl),
    ])
  }

  async delete(key: string): Promise<number> {
    const n = await this.client.hlen(ENTRY + key)
    if (n > 0) await this.client.del(ENTRY + key)
    return n
  }

  async purge(selector: PurgeSelector, opts: PurgeOptions): Promise<number> {
    switch (selector.kind) {
      case 'keys': {
        let n = 0
        for (const k of selector.keys) n += await this.#apply(k, selector, opts)
        return n
      }
      case 'tags': {
        let n = 0
        for (const t of selector.tags) {
          // A hard purge pops the index atomically: a key tagged meanwhile keeps its membership.
          const keys = opts.soft ? await tagMembers(this.client, TAG + t) : await popTag(this.client, TAG + t)
          for (const k of keys) n += await this.#apply(k, selector, opts)
        }
        return n
      }
      default: {
        let n = 0
        await this.#scan(async (keys) => {
          for (const rk of keys) {
            const k = rk.slice(ENTRY.length)
            if (selector.kind === 'match' && !selector.match(k)) continue
            n += await this.#apply(k, selector, opts)
          }
        })
        return n
      }
    }
  }

  /** Deletes or softens the selected variants under one key; answers how many. */
  async #apply(key: string, selector: PurgeSelector, opts: PurgeOptions): Promise<number> {
    const rk = ENTRY + key
    if (selector.kind !== 'tags' && !opts.soft) return this.delete(key)
    const raw = await this.client.hgetallBuffer(rk)
    let n = 0
    for (const field in raw) {
      const e = decodeEntry(raw[field]!)
      if (!selectsEntry(selector, e)) continue
      n++
      if (opts.soft) await this.client.hset(rk, field, encodeEntry(soften(e, opts.now)))
      else await this.client.hdel(rk, field)
    }
    return n
  }

  /** SCAN over every entry hash (on every master of a cluster), in batches. */
  async #scan(onBatch: (keys: string[]) => Promise<void>): Promise<void> {
    const nodes: Redis[] = isCluster(this.client) ? this.client.nodes('master') : [this.client]
    for (const node of nodes) {
      let cursor = '0'
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${ENTRY}*`, 'COUNT', 500)
        cursor = next
        if (keys.length > 0) await onBatch(keys)
      } while (cursor !== '0')
    }
  }

  async stats(): Promise<StoreStats> {
    let entries = 0
    let bytes = 0
    await this.#scan(async (keys) => {
      const counts = await Promise.all(keys.map((k) => Promise.all([this.client.hlen(k), this.client.memory('USAGE', k)])))
      for (const [n, b] of counts) {
        entries += n
        bytes += Number(b ?? 0)
      }
    })
    return { entries, bytes }
  }

  async close(): Promise<void> {
    if (this.#own) this.client.disconnect()
  }
}

/**
 * The invalidation bus over Redis: publishes go out on `publisherClient` under `call` (deadline +
 * breaker, queued during an outage); a dedicated connection subscribes.
 */
export function createRedisBus(opts: {
  redis: NonNullable<RedisOption>
  timeoutMs: number
  nodeId: string
  call: RedisCall
  logger: Logger
  /** A command connection to publish on; one is created (and closed with the bus) when absent. */
  publisherClient?: Client
}): RedisInvalidationBus {
  const own = opts.publisherClient === undefined
  const pub = opts.publisherClient ?? createRedisClient(opts.redis, opts.timeoutMs)
  if (own) pub.on('error', (err: Error) => opts.logger.debug({ err }, 'redis (bus publisher) connection error'))
  const sub = createRedisClient(opts.redis, opts.timeoutMs, true)
  const bus = new RedisInvalidationBus(
    (hooks) =>
      new RedisBus<PurgeCommand>({
        channel: BUS_CHANNEL,
        nodeId: opts.nodeId,
        codec: purgeCodec,
        publisher: { publish: (channel, message) => opts.call.run('publish', () => pub.publish(channel, message).then(() => true), false) },
        subscriber: sub,
        logger: opts.logger,
        // Past the queue bound, one purge of everything replaces the queued invalidations.
        overflow: () => ({ all: true }),
        ...hooks,
      }),
    async () => {
      if (own) pub.disconnect()
    },
  )
  opts.call.onAnswer(() => void bus.flush())
  return bus
}
