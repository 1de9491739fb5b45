/**
 * The L2 tier as the page cache sees it: a store behind the shared deadline + breaker wrapper
 * (core/redis-call.ts), whose calls never reject. Redis down or slow costs a request at most
 * `redisTimeoutMs`, and once the breaker opens, nothing. A purge that cannot reach L2 waits in an
 * outage queue and is applied once Redis answers again.
 */
import type { BreakerState } from '../core/breaker.js'
import { OutageQueue } from '../core/outage-queue.js'
import type { RedisCall } from '../core/redis-call.js'
import type { PageStore, PurgeOptions, PurgeSelector, StoreStats } from './store.js'
import type { CacheEntry } from './types.js'

/** An L2 write carrying surrogate keys, remembered for a while (see `purgeRecentWrites`). */
interface RecentWrite {
  readonly key: string
  readonly tags: readonly string[]
  readonly at: number
  readonly done: Promise<unknown>
}

interface PendingPurge {
  readonly selector: PurgeSelector
  readonly soft: boolean
}

const FAILED = Symbol('failed')
/** Purges that scan L2 (patterns, tags, all) get this budget: an operator's purge may take a while. */
const SCAN_BUDGET_MS = 30_000
/** Statistics walk every key: their own budget, outside the request-path breaker. */
const STATS_BUDGET_MS = 5_000

export class L2Tier {
  readonly store: PageStore
  readonly #call: RedisCall
  readonly #pending: OutageQueue<PendingPurge>

  readonly #recent: RecentWrite[] = []
  #recentHead = 0
  readonly #recentMs: number
  readonly #recentMax: number
  readonly #now: () => number

  constructor(store: PageStore, opts: { call: RedisCall; now: () => number; recentMs?: number; recentMax?: number; retryMs?: number; maxPending?: number }) {
    this.store = store
    this.#call = opts.call
    this.#now = opts.now
    this.#recentMs = opts.recentMs ?? 5000
    this.#recentMax = opts.recentMax ?? 10_000
    this.#pending = new OutageQueue<PendingPurge>({
      max: opts.maxPending ?? 1000,
      retryMs: opts.retryMs ?? 500,
      // Past the bound, one purge of everything replaces the queued ones: nothing stale survives.
      overflow: () => ({ selector: { kind: 'all' }, soft: false }),
      send: (p) => this.#purgeOnce(p.selector, p.soft).then((n) => n !== FAILED),
    })
    opts.call.onAnswer(() => void this.#pending.flush())
  }

  get breakerState(): BreakerState {
    return this.#call.breakerState
  }

  get errors(): number {
    return this.#call.errors
  }

  /** Purges waiting for Redis to answer again. */
  get pendingPurges(): number {
    return this.#pending.size
  }

  get(key: string): Promise<readonly CacheEntry[] | undefined> {
    return this.#call.run('get', () => this.store.get(key), undefined)
  }

  /** Fire and forget: the request never waits for L2 writes. */
  set(entry: CacheEntry, now: number): void {
    const done = this.#call.run('set', () => this.store.set(entry), undefined)
    if (entry.tags.length === 0) return
    this.#prune(now)
    if (this.#recent.length - this.#recentHead >= this.#recentMax) this.#recentHead++
    this.#recent.push({ key: entry.key, tags: entry.tags, at: now, done })
  }

  /**
   * Closes the window in which a tag purge misses a concurrent write: a store writes an entry, then
   * indexes it under its tags, so a purge that reads the index in between does not see it. Each
   * tag purge (this node's, or another node's off the bus) therefore also deletes the keys this
   * node wrote with those tags in the last few seconds, once their writes have finished. Deleting
   * a fresh entry that did not race costs one miss. Soft purges leave them alone.
   */
  purgeRecentWrites(tags: ReadonlySet<string>, now: number): void {
    this.#prune(now)
    for (let i = this.#recentHead; i < this.#recent.length; i++) {
      const w = this.#recent[i]!
      if (!w.tags.some((t) => tags.has(t))) continue
      void w.done.then(() => this.delete(w.key))
    }
  }

  #prune(now: number): void {
    const recent = this.#recent
    while (this.#recentHead < recent.length && recent[this.#recentHead]!.at <= now - this.#recentMs) this.#recentHead++
    // Compact once the dead prefix dominates, so pruning stays O(1) amortised.
    if (this.#recentHead > 1024 && this.#recentHead * 2 > recent.length) {
      recent.splice(0, this.#recentHead)
      this.#recentHead = 0
    }
  }

  delete(key: string): Promise<number> {
    return this.#call.run('delete', () => this.store.delete(key), 0)
  }

  /**
   * Purges by exact keys (what an unsafe request invalidates) are bounded by the request budget;
   * purges that scan get longer. Either way an open breaker answers at once. A purge that failed
   * or ran out of time is queued and applied again once Redis answers (purging twice is harmless).
   * Answers how many entries were affected, 0 when the purge was queued.
   */
  async purge(selector: PurgeSelector, opts: PurgeOptions): Promise<number> {
    // Queued purges go first, so a replay never undoes nothing newer than itself out of order.
    if (!this.#pending.empty) {
      this.#pending.push({ selector, soft: opts.soft })
      void this.#pending.flush()
      return 0
    }
    const n = await this.#purgeOnce(selector, opts.soft)
    if (n !== FAILED) return n
    this.#pending.push({ selector, soft: opts.soft })
    return 0
  }

  #purgeOnce(selector: PurgeSelector, soft: boolean): Promise<number | typeof FAILED> {
    const timeoutMs = selector.kind === 'keys' ? this.#call.timeoutMs : Math.max(SCAN_BUDGET_MS, this.#call.timeoutMs)
    return this.#call.run('purge', () => this.store.purge(selector, { soft, now: this.#now() }), FAILED, { timeoutMs })
  }

  /** Statistics are not on the request path: they neither trip nor probe the breaker. */
  async stats(): Promise<StoreStats> {
    return this.#call.run('stats', () => this.store.stats(), { entries: 0, bytes: 0 }, { breaker: false, timeoutMs: Math.max(STATS_BUDGET_MS, this.#call.timeoutMs) })
  }

  close(): void {
    this.#pending.close()
  }
}
