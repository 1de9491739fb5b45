/**
 * Invalidation: RFC 9111 §4.4 after unsafe methods, purges (admin, unsafe methods, a 304 that
 * makes an entry uncacheable) over L1, L2 and the bus, and the other nodes' purges off the bus.
 */
import type { LRUCache } from 'lru-cache'
import type { Clock } from '../core/clock.js'
import { headerValue } from '../core/headers.js'
import type { Logger } from '../observability/logger.js'
import type { PageCacheContext } from './context.js'
import { canonicalHost, canonicalTarget, type KeyFunction } from './key.js'
import type { MemoryStore } from './memory-store.js'
import { passResult } from './pass.js'
import { invalidatesOnStatus, isUnsafeMethod } from './policy.js'
import { compilePurge } from './purge.js'
import type { Counters } from './stats.js'
import type { CacheRequest, CacheResult, OriginFetch, PurgeCommand } from './types.js'

export class Invalidation {
  readonly #ctx: PageCacheContext
  readonly #clock: Clock
  readonly #log: Logger
  readonly #key: KeyFunction
  readonly #l1: MemoryStore
  readonly #hitForPass: LRUCache<string, number>
  readonly #s: Counters

  constructor(ctx: PageCacheContext) {
    this.#ctx = ctx
    this.#clock = ctx.clock
    this.#log = ctx.log
    this.#key = ctx.key
    this.#l1 = ctx.l1
    this.#hitForPass = ctx.hitForPass
    this.#s = ctx.counters
  }

  /** Listens on the bus: other nodes' purges drop entries from this node's L1. */
  async subscribe(): Promise<void> {
    await this.#ctx.bus!.subscribe(
      (msg) => {
        // Trust nothing from Redis: a message that is not a valid purge is counted and dropped.
        if (typeof msg !== 'object' || msg === null || typeof msg.node !== 'string') {
          this.#s.busRejected++
          this.#log.warn('ignoring a malformed bus message')
          return
        }
        if (msg.node === this.#ctx.nodeId) return
        // Another node purged: drop the entries from this node's L1 only (it handled L2 once), and
        // any of this node's own L2 writes that the purge may have raced.
        let compiled: ReturnType<typeof compilePurge>
        try {
          compiled = compilePurge(msg.purge, this.#key)
        } catch (err) {
          this.#s.busRejected++
          this.#log.warn({ err }, 'ignoring an invalid bus invalidation')
          return
        }
        this.#purgeLocal(msg.purge, compiled).catch((err) => this.#log.warn({ err }, 'applying a bus invalidation failed'))
        this.#purgeRecentL2(compiled)
      },
      // The subscription had a gap: invalidations may have been missed, so L1 cannot be trusted.
      () => void this.#purgeLocal({ all: true }).catch((err) => this.#log.warn({ err }, 'dropping L1 after a bus gap failed')),
    )
  }

  /** RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target and Location / Content-Location on the same host. */
  async unsafe(req: CacheRequest, fetchOrigin: OriginFetch): Promise<CacheResult> {
    this.#s.passes++
    const res = await fetchOrigin(req)
    await this.invalidateAfter(req, res.statusCode, res.headers)
    return passResult(res, 'method')
  }

  /**
   * RFC 9111 §4.4, after the response to an unsafe request: a non-error status invalidates the
   * target URI and the Location / Content-Location URIs on the same origin. Undefined (nothing to
   * wait for) otherwise.
   */
  invalidateAfter(req: CacheRequest, status: number, headers: Record<string, string | string[]>): Promise<void> | undefined {
    if (!isUnsafeMethod(req.method) || !invalidatesOnStatus(status)) return undefined
    const keys = [this.#key(req.scheme, req.host, req.url)]
    const base = `${req.scheme}://${req.host}${req.url.startsWith('/') ? req.url : '/'}`
    for (const field of ['location', 'content-location']) {
      const v = headerValue(headers, field)
      if (v === undefined) continue
      try {
        const u = new URL(v, base)
        // §4.4: only URIs with the same origin, to prevent denial-of-service attacks.
        if (u.protocol === `${req.scheme}:` && u.host === canonicalHost(req.host, req.scheme)) keys.push(this.#key(req.scheme, req.host, canonicalTarget(u.pathname + u.search)))
      } catch {
        // An unparsable Location invalidates nothing.
      }
    }
    return this.invalidateKeys([...new Set(keys)])
  }

  /** Drops keys from L1 and L2 and tells the other nodes. */
  async invalidateKeys(keys: string[]): Promise<void> {
    await this.purge({ urls: keys })
  }

  /**
   * Purges by URLs, prefix, pattern, tags or all (optionally soft). Throws a StrataError with
   * code STRATA_ADMIN_BAD_BODY naming the problem when the command is invalid. Answers how many
   * entries were affected: `purged` is the larger of the L1 and L2 counts.
   */
  async purge(cmd: PurgeCommand | unknown): Promise<{ purged: number; l1: number; l2: number }> {
    const compiled = compilePurge(cmd, this.#key)
    const now = this.#clock.now()
    const l1 = await this.#purgeLocal(cmd, compiled)
    let l2 = 0
    if (this.#ctx.l2 !== undefined) for (const s of compiled.selectors) l2 += await this.#ctx.l2.purge(s, { soft: compiled.soft, now })
    this.#purgeRecentL2(compiled)
    // Never waits for Redis: the bus queues what it cannot send yet.
    if (this.#ctx.bus !== undefined) this.#publish(cmd as PurgeCommand)
    return { purged: Math.max(l1, l2), l1, l2 }
  }

  #publish(purge: PurgeCommand): void {
    try {
      const p = this.#ctx.bus!.publish({ node: this.#ctx.nodeId, purge })
      if (p !== undefined) p.catch((err: unknown) => this.#log.warn({ err }, 'publishing an invalidation failed'))
    } catch (err) {
      this.#log.warn({ err }, 'publishing an invalidation failed')
    }
  }

  /** See L2Tier.purgeRecentWrites: a tag purge re-applies to this node's recent L2 writes. */
  #purgeRecentL2(compiled: ReturnType<typeof compilePurge>): void {
    if (this.#ctx.l2 === undefined || compiled.soft) return
    for (const s of compiled.selectors) if (s.kind === 'tags') this.#ctx.l2.purgeRecentWrites(s.tags, this.#clock.now())
  }

  async #purgeLocal(cmd: unknown, compiled = compilePurge(cmd, this.#key)): Promise<number> {
    const now = this.#clock.now()
    let n = 0
    for (const s of compiled.selectors) {
      n += await this.#l1.purge(s, { soft: compiled.soft, now })
      // Purged URLs get a fresh chance to be cached.
      if (s.kind === 'keys') for (const k of s.keys) this.#hitForPass.delete(k)
    }
    if (!compiled.soft && compiled.selectors.some((s) => s.kind !== 'keys')) this.#hitForPass.clear()
    return n
  }
}
