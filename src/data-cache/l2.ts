import type { Logger } from '../observability/logger.js'
import type { Clock } from '../core/clock.js'
import { CircuitBreaker, type BreakerState } from '../core/breaker.js'
import { decodeRecord, type Entry } from './entry.js'
import type { Serializer } from './serializer.js'
import { isCluster, type RedisClient } from '../core/redis.js'
import { RedisCall } from '../core/redis-call.js'
import { addToTags, popTag } from '../core/tag-index.js'

export const REDIS_STATES = { connecting: 'connecting', ready: 'ready', down: 'down' } as const
export type RedisState = (typeof REDIS_STATES)[keyof typeof REDIS_STATES]

const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

const DELETE_BATCH = 500

export interface RedisTierOptions {
  timeout: number
  breakerThreshold: number
  breakerDuration: number
  connectWait: number
  clock: Clock
  serializer: Serializer
  logger: Logger
  onState: (state: RedisState) => void
  onBreaker: (state: BreakerState) => void
}

/**
 * L2: Redis behind a circuit breaker. No method rejects because Redis is down, slow or erroring:
 * each returns a fallback (a miss, `false`) and the cache carries on with L1 and the loader.
 * Every command has a deadline; failures feed the breaker; state changes are logged once.
 */
export class RedisTier {
  readonly client: RedisClient
  readonly #breaker: CircuitBreaker
  readonly #call: RedisCall
  readonly #opts: RedisTierOptions
  readonly #log: Logger
  readonly #cluster: boolean
  #state: RedisState = REDIS_STATES.connecting
  /** Set until the first connection is ready or connectWait passed: early calls wait for it. */
  #startup: Promise<void> | undefined
  #clearErrors = 0

  constructor(client: RedisClient, opts: RedisTierOptions) {
    this.client = client
    this.#opts = opts
    this.#log = opts.logger
    this.#cluster = isCluster(client)
    this.#breaker = new CircuitBreaker({
      threshold: opts.breakerThreshold,
      duration: opts.breakerDuration,
      clock: opts.clock,
      onChange: (state) => {
        if (state === 'open') this.#log.warn({ breaker: state }, 'redis circuit breaker opened: L2 is skipped')
        else this.#log.info({ breaker: state }, `redis circuit breaker ${state}`)
        opts.onBreaker(state)
      },
    })
    this.#call = new RedisCall({ timeoutMs: opts.timeout, breaker: this.#breaker, logger: this.#log, available: () => client.status === 'ready' })
    client.on('ready', () => {
      this.#setState(REDIS_STATES.ready)
      this.#call.recovered()
    })
    const down = () => {
      if (this.#state === REDIS_STATES.ready) this.#setState(REDIS_STATES.down)
    }
    client.on('close', down)
    client.on('end', down)
    // Without a listener ioredis prints every reconnect error; the state change is what we log.
    client.on('error', (err: Error) => {
      this.#log.debug({ err }, 'redis error')
      down()
    })
    if (client.status === 'ready') this.#state = REDIS_STATES.ready
    else {
      const ready = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, opts.connectWait)
        client.once('ready', () => {
          clearTimeout(timer)
          resolve()
        })
      })
      this.#startup = ready.then(() => {
        this.#startup = undefined
        if (this.#state === REDIS_STATES.connecting) this.#setState(REDIS_STATES.down)
      })
    }
  }

  get state(): RedisState {
    return this.#state
  }

  get breakerState(): BreakerState {
    return this.#breaker.state
  }

  /** Resolves once the first connection attempt is over (ready or given up); never rejects. */
  whenStarted(): Promise<void> {
    return this.#startup ?? Promise.resolve()
  }

  /** Could a command be sent right now? Does not consume the breaker's half-open probe. */
  get usable(): boolean {
    return this.client.status === 'ready' && this.#breaker.state !== 'open'
  }

  get errors(): number {
    return this.#call.errors + this.#clearErrors
  }

  /** Runs `fn` when the first connection attempt is over, under the deadline and the breaker (core/redis-call.ts). */
  #run<T, F>(op: string, fn: (c: RedisClient) => Promise<T>, fallback: F): Promise<T | F> {
    if (this.#startup !== undefined) return this.#startup.then(() => this.#run(op, fn, fallback))
    return this.#call.run(op, () => fn(this.client), fallback)
  }

  /** Runs when Redis answers again after failures (reconnect, or a late answer during an outage). */
  onAnswer(listener: () => void): void {
    this.#call.onAnswer(listener)
  }

  /** One GET; the record carries value and metadata, so this is the whole L2 read. */
  get(rkey: string): Promise<Entry | undefined> {
    return this.#run('get', (c) => c.getBuffer(rkey), null).then((buf) => {
      if (buf === null) return undefined
      try {
        return decodeRecord(buf, this.#opts.serializer)
      } catch (err) {
        // A record this serializer cannot read (e.g. after switching serializers) is a miss.
        this.#log.warn({ err, key: rkey }, 'unreadable L2 record, treated as a miss')
        return undefined
      }
    })
  }

  /** SET with PX (one atomic command), then the key joins its tags in the shared tag index. */
  set(rkey: string, record: Buffer, pttl: number, tagKeys: readonly string[]): Promise<boolean> {
    const ms = Math.max(1, Math.ceil(pttl))
    return this.#run('set', async (c) => {
      // Issued together so they share the socket write; each still targets a single slot.
      await Promise.all([c.set(rkey, record, 'PX', ms), addToTags(c, tagKeys, rkey, ms)])
      return true
    }, false)
  }

  delete(rkeys: readonly string[]): Promise<boolean> {
    if (rkeys.length === 0) return Promise.resolve(true)
    return this.#run('delete', async (c) => {
      await this.#unlinkAll(c, rkeys)
      return true
    }, false)
  }

  /** Pops the tag set and unlinks its members; true if Redis was reached. */
  deleteTag(tagKey: string): Promise<boolean> {
    return this.#run('deleteTag', async (c) => {
      const members = await popTag(c, tagKey)
      await this.#unlinkAll(c, members)
      return true
    }, false)
  }

  /**
   * Deletes every key matching `pattern` with SCAN (never KEYS) on every master. Not bounded by
   * the per-command deadline, which is meant for reads: a big namespace takes a while.
   */
  async clear(pattern: string): Promise<boolean> {
    if (this.#startup !== undefined) await this.#startup
    if (!this.usable) return false
    const nodes: RedisClient[] = isCluster(this.client) ? this.client.nodes('master') : [this.client]
    try {
      for (const node of nodes) {
        let cursor = '0'
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
          cursor = next
          await this.#unlinkAll(this.client, keys)
        } while (cursor !== '0')
      }
      return true
    } catch (err) {
      this.#clearErrors++
      this.#log.debug({ err }, 'redis clear failed')
      this.#breaker.failure()
      return false
    }
  }

  /** SET NX PX. `undefined` means Redis could not be asked (the caller proceeds without lock). */
  tryLock(lockKey: string, token: string, ttl: number): Promise<boolean | undefined> {
    return this.#run('lock', (c) => c.set(lockKey, token, 'PX', Math.max(1, ttl), 'NX'), undefined).then((r) =>
      r === undefined ? undefined : r === 'OK',
    )
  }

  unlock(lockKey: string, token: string): Promise<unknown> {
    return this.#run('unlock', (c) => c.eval(UNLOCK, 1, lockKey, token), 0)
  }

  publish(channel: string, message: string): Promise<boolean> {
    return this.#run('publish', (c) => c.publish(channel, message).then(() => true), false)
  }

  async #unlinkAll(c: RedisClient, keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH)
      // On a cluster one UNLINK with keys of different slots is a CROSSSLOT error, so each key
      // gets its own command (ioredis writes them back to back and routes each to its node).
      if (this.#cluster) await Promise.all(batch.map((k) => c.unlink(k)))
      else await c.unlink(...batch)
    }
  }

  #setState(state: RedisState): void {
    if (state === this.#state) return
    this.#state = state
    if (state === REDIS_STATES.ready) this.#log.info('redis is ready: L2 in use')
    else this.#log.warn('redis is unavailable: serving from L1 and loaders')
    this.#opts.onState(state)
  }

  async close(owns: boolean): Promise<void> {
    if (!owns) return
    try {
      await Promise.race([this.client.quit(), new Promise((r) => setTimeout(r, 500))])
    } catch {
      // quit fails when already disconnected; disconnect below is what matters.
    }
    this.client.disconnect()
  }
}
