/**
 * The L2 tier as the page cache sees it: a store behind a timeout and a circuit breaker, whose
 * calls never reject. Redis down or slow costs a request at most `timeoutMs`, and once the breaker
 * opens, nothing.
 */
import type { Logger } from 'pino'
import { CircuitBreaker, type BreakerState } from '../core/breaker.js'
import type { PageStore, PurgeOptions, PurgeSelector, StoreStats } from './store.js'
import type { CacheEntry } from './types.js'

const TIMEOUT = Symbol('timeout')

/** An L2 write carrying surrogate keys, remembered for a while (see `purgeRecentWrites`). */
interface RecentWrite {
  readonly key: string
  readonly tags: readonly string[]
  readonly at: number
  readonly done: Promise<unknown>
}

export class L2Tier {
  readonly store: PageStore
  #breaker: CircuitBreaker
  #timeoutMs: number
  #log: Logger
  errors = 0

  readonly #recent: RecentWrite[] = []
  #recentHead = 0
  readonly #recentMs: number
  readonly #recentMax: number

  constructor(store: PageStore, opts: { timeoutMs: number; breaker: CircuitBreaker; logger: Logger; recentMs?: number; recentMax?: number }) {
    this.store = store
    this.#breaker = opts.breaker
    this.#timeoutMs = opts.timeoutMs
    this.#log = opts.logger
    this.#recentMs = opts.recentMs ?? 5000
    this.#recentMax = opts.recentMax ?? 10_000
  }

  get breakerState(): BreakerState {
    return this.#breaker.state
  }

  async #call<T>(op: string, fn: () => T | Promise<T>, fallback: T, timeoutMs = this.#timeoutMs): Promise<T> {
    if (!this.#breaker.allow()) return fallback
    let timer: NodeJS.Timeout | undefined
    try {
      const res = await Promise.race([
        Promise.resolve().then(fn),
        new Promise<typeof TIMEOUT>((resolve) => {
          timer = setTimeout(() => resolve(TIMEOUT), timeoutMs)
          timer.unref()
        }),
      ])
      if (res === TIMEOUT) throw new Error(`L2 ${op} timed out after ${timeoutMs} ms`)
      this.#breaker.success()
      return res
    } catch (err) {
      this.errors++
      this.#breaker.failure()
      this.#log.warn({ err, op, breaker: this.#breaker.state }, 'L2 call failed; continuing without it')
      return fallback
    } finally {
      if (timer) clearTimeout(timer)
    }
  }

  get(key: string): Promise<readonly CacheEntry[] | undefined> {
    return this.#call('get', () => this.store.get(key), undefined)
  }

  /** Fire and forget: the request never waits for L2 writes. */
  set(entry: CacheEntry, now: number): void {
    const done = this.#call('set', () => this.store.set(entry), undefined)
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
    return this.#call('delete', () => this.store.delete(key), 0)
  }

  /** Purges scan L2, so they get a longer budget than a lookup. */
  purge(selector: PurgeSelector, opts: PurgeOptions): Promise<number> {
    return this.#call('purge', () => this.store.purge(selector, opts), 0, Math.max(30_000, this.#timeoutMs))
  }

  async stats(): Promise<StoreStats> {
    return this.#call('stats', () => this.store.stats(), { entries: 0, bytes: 0 })
  }
}
