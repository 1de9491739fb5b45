import { createHash } from 'node:crypto'
import type { RedisClient } from '../core/redis.js'
import { LRUCache } from 'lru-cache'
import type { Clock } from '../core/clock.js'
import { CircuitBreaker } from '../core/breaker.js'
import { RedisCall } from '../core/redis-call.js'
import type { Logger } from '../observability/logger.js'

/**
 * The learn-mode table: application session id → upstream id (HAProxy's stick table).
 *
 * Always an in-memory LRU with TTL (the table `pick` reads synchronously). With a Redis client it
 * is also written through to Redis so every strata node agrees; a node that has not seen a session
 * yet reads Redis on a local miss (`fetch`). Redis is best-effort: a slow or dead Redis turns into
 * a miss after `redisTimeoutMs` (and, once the breaker opens, at once: core/redis-call.ts), and
 * the request is balanced normally.
 */
export interface LearnTableOptions {
  readonly ttlMs: number
  readonly clock: Clock
  readonly logger: Logger
  readonly redis?: RedisClient | undefined
  /** Redis key prefix; the cookie name is appended so two cookies never share entries. */
  readonly keyPrefix?: string | undefined
  readonly redisTimeoutMs?: number | undefined
  /** Upper bound of the local table. */
  readonly maxEntries?: number | undefined
}

/** How long a value read from Redis is trusted locally before Redis is asked again. */
const LOCAL_TTL_WITH_REDIS_MS = 10_000
/** Longest session id we remember; a longer cookie is not a session id worth a table entry. */
const MAX_SID_LENGTH = 512

export class LearnTable {
  readonly #local: LRUCache<string, string>
  readonly #redis: RedisClient | undefined
  readonly #prefix: string
  readonly #ttlMs: number
  readonly #localTtlMs: number
  readonly #call: RedisCall | undefined
  /** sid → when its Redis TTL was last extended, so busy sessions refresh at most every ttl/4. */
  readonly #touched: LRUCache<string, number>
  readonly #clock: Clock

  constructor(cookie: string, opts: LearnTableOptions) {
    this.#ttlMs = opts.ttlMs
    this.#redis = opts.redis
    this.#clock = opts.clock
    this.#prefix = `${opts.keyPrefix ?? 'strata:learn:'}${cookie}:`
    if (this.#redis) {
      const log = opts.logger.child({ module: 'learn-table' })
      const breaker = new CircuitBreaker({
        threshold: 3,
        duration: 2000,
        clock: opts.clock,
        onChange: (state) => log.warn({ breaker: state }, `learn table: redis circuit breaker ${state}`),
      })
      this.#call = new RedisCall({ timeoutMs: opts.redisTimeoutMs ?? 250, breaker, logger: log })
    } else this.#call = undefined
    this.#localTtlMs = this.#redis ? Math.min(LOCAL_TTL_WITH_REDIS_MS, opts.ttlMs) : opts.ttlMs
    const perf = { now: () => opts.clock.now() }
    const max = opts.maxEntries ?? 100_000
    // ttlResolution 0: lru-cache otherwise caches "now" for 1 ms of real time, which an injected clock must not be subject to.
    // Without Redis the local table is the table, so reads keep a session alive (updateAgeOnGet);
    // with Redis the local copy is a short-lived cache of Redis and must not outlive it.
    this.#local = new LRUCache<string, string>({ max, ttl: this.#localTtlMs, ttlResolution: 0, updateAgeOnGet: !this.#redis, perf })
    this.#touched = new LRUCache<string, number>({ max, perf })
  }

  get shared(): boolean {
    return this.#redis !== undefined
  }

  /** The local answer only (synchronous; what `pick` uses). */
  getLocal(sid: string): string | undefined {
    return this.#local.get(sid)
  }

  /** Local, then Redis on a miss (never rejects). */
  async fetch(sid: string): Promise<string | undefined> {
    const local = this.#local.get(sid)
    if (local !== undefined || !this.#redis || sid.length > MAX_SID_LENGTH) return local
    const redis = this.#redis
    const id = await this.#call!.run('get', () => redis.get(this.#key(sid)), undefined)
    if (typeof id === 'string' && id) {
      this.#local.set(sid, id)
      return id
    }
    return undefined
  }

  set(sid: string, id: string): void {
    if (!sid || sid.length > MAX_SID_LENGTH) return
    // Many apps re-send their session cookie on every response: an unchanged mapping is a touch, not a write.
    if (this.#local.get(sid) === id) {
      this.touch(sid)
      return
    }
    this.#local.set(sid, id)
    if (!this.#redis) return
    this.#touched.set(sid, this.#clock.now())
    const redis = this.#redis
    void this.#call!.run('set', () => redis.set(this.#key(sid), id, 'PX', this.#ttlMs), undefined)
  }

  /**
   * A session was used: keep it alive. Locally the read already refreshed it (updateAgeOnGet);
   * in Redis the TTL is extended at most every ttl/4 per session, to keep writes rare.
   */
  touch(sid: string): void {
    if (!this.#redis) return
    const now = this.#clock.now()
    const last = this.#touched.get(sid)
    if (last !== undefined && now - last < this.#ttlMs / 4) return
    this.#touched.set(sid, now)
    const redis = this.#redis
    void this.#call!.run('pexpire', () => redis.pexpire(this.#key(sid), this.#ttlMs), undefined)
  }

  delete(sid: string): void {
    this.#local.delete(sid)
    this.#touched.delete(sid)
    if (!this.#redis || sid.length > MAX_SID_LENGTH) return
    const redis = this.#redis
    void this.#call!.run('del', () => redis.del(this.#key(sid)), undefined)
  }

  clear(): void {
    this.#local.clear()
    this.#touched.clear()
  }

  /**
   * Session ids are secrets of the application; Redis keys are visible to anyone with access to
   * Redis (KEYS, MONITOR), so only a digest of the id is stored.
   */
  #key(sid: string): string {
    return this.#prefix + createHash('sha256').update(sid).digest('base64url')
  }
}

const MAX_AGE = /;\s*max-age\s*=\s*(-?\d+)/

/**
 * Finds `name` among Set-Cookie header values. Returns the value, `null` when the cookie is being
 * deleted (empty value, `Max-Age=0` or less), or undefined when it is not set at all.
 */
export function findSetCookie(setCookie: string | readonly string[] | undefined, name: string): string | null | undefined {
  if (setCookie === undefined) return undefined
  const list = typeof setCookie === 'string' ? [setCookie] : setCookie
  let found: string | null | undefined
  for (const line of list) {
    const eq = line.indexOf('=')
    if (eq <= 0 || line.slice(0, eq).trim() !== name) continue
    const semi = line.indexOf(';', eq)
    const value = (semi === -1 ? line.slice(eq + 1) : line.slice(eq + 1, semi)).trim()
    const attrs = semi === -1 ? '' : line.slice(semi).toLowerCase()
    const maxAge = MAX_AGE.exec(attrs)
    // The last Set-Cookie for a name wins (RFC 6265 §5.3 step 11: a later one replaces the earlier).
    found = !value || value === '""' || (maxAge !== null && Number(maxAge[1]) <= 0) ? null : value
  }
  return found
}
