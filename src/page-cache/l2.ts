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

export class L2Tier {
  readonly store: PageStore
  #breaker: CircuitBreaker
  #timeoutMs: number
  #log: Logger
  errors = 0

  constructor(store: PageStore, opts: { timeoutMs: number; breaker: CircuitBreaker; logger: Logger }) {
    this.store = store
    this.#breaker = opts.breaker
    this.#timeoutMs = opts.timeoutMs
    this.#log = opts.logger
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
  set(entry: CacheEntry): void {
    void this.#call('set', () => this.store.set(entry), undefined)
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
