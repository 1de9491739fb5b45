/**
 * The page cache's Redis side, built once: one deadline + breaker (core/redis-call.ts) for every
 * Redis call, the L2 tier around the given store or a RedisStore, and the invalidation bus, set on
 * the shared context as they come up. Closing tears down what was built here.
 */
import { CircuitBreaker } from '../core/breaker.js'
import { RedisCall } from '../core/redis-call.js'
import type { InvalidationBus } from './bus.js'
import type { PageCacheContext } from './context.js'
import { L2Tier } from './l2.js'
import type { PageStore } from './store.js'

export interface RedisWiringOptions {
  /** An L2 store to use instead of the one `config.redis` would create. */
  l2?: PageStore
  /** An invalidation bus to use instead of the one `config.redis` would create. */
  bus?: InvalidationBus
  breaker?: { failureThreshold?: number; cooldownMs?: number }
}

export class RedisWiring {
  readonly #ctx: PageCacheContext
  readonly #ready: Promise<void>
  /** Whether the L2 store was created here (and is closed here), rather than handed in. */
  #ownsL2 = false

  /** `subscribe` starts listening on `ctx.bus` once it is set. */
  constructor(ctx: PageCacheContext, opts: RedisWiringOptions, subscribe: () => Promise<void>) {
    this.#ctx = ctx
    // The construction-time config: Redis keys are not reloadable.
    const config = ctx.config
    const log = ctx.log
    const breaker = new CircuitBreaker({
      threshold: opts.breaker?.failureThreshold ?? 3,
      duration: opts.breaker?.cooldownMs ?? 2000,
      clock: ctx.clock,
      // Once per state change, so an outage logs two lines, not one per request.
      onChange: (state) => {
        if (state === 'open') log.warn({ breaker: state }, 'redis circuit breaker opened: L2 is skipped')
        else log.info({ breaker: state }, `redis circuit breaker ${state}`)
      },
    })
    // One deadline + breaker for every Redis call of this cache: L2 reads, writes, purges, bus publishes.
    const call = new RedisCall({ timeoutMs: config.redisTimeoutMs, breaker, logger: log })
    const l2Tier = (store: PageStore) => new L2Tier(store, { call, now: () => ctx.clock.now() })
    const l2 = opts.l2
    const bus = opts.bus
    let ready: Promise<void>
    if ((l2 === undefined || bus === undefined) && config.redis !== null) {
      // Lazy import keeps ioredis out of processes that run without Redis.
      ready = import('./redis-store.js').then(({ RedisStore, createRedisBus }) => {
        const redisOpts = { redis: config.redis!, timeoutMs: config.redisTimeoutMs, clock: ctx.clock, logger: log }
        const waits: Promise<void>[] = []
        let store: InstanceType<typeof RedisStore> | undefined
        if (l2 === undefined) {
          store = new RedisStore(redisOpts)
          store.client.on('ready', () => call.recovered())
          this.#ownsL2 = true
          ctx.l2 = l2Tier(store)
          waits.push(store.ready())
        }
        if (bus === undefined) {
          ctx.bus = createRedisBus({ ...redisOpts, nodeId: ctx.nodeId, call, ...(store !== undefined ? { publisherClient: store.client } : {}) })
          waits.push(subscribe())
        }
        return Promise.all(waits).then(() => undefined)
      })
    } else ready = Promise.resolve()
    if (l2 !== undefined) ctx.l2 = l2Tier(l2)
    if (bus !== undefined) {
      ctx.bus = bus
      ready = ready.then(() => subscribe())
    }
    this.#ready = ready
  }

  /** Resolves once L2 and the bus are set up (requests before that simply skip them). */
  ready(): Promise<void> {
    return this.#ready
  }

  /** Closes the bus and the L2 tier, and the L2 store when it was created here. */
  async close(): Promise<void> {
    await this.#ready.catch(() => undefined)
    await this.#ctx.bus?.close()
    this.#ctx.l2?.close()
    if (this.#ownsL2) await this.#ctx.l2?.store.close()
  }
}
