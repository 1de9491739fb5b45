/**
 * One way to talk to Redis on a request path: every call runs under a deadline and a circuit
 * breaker and never rejects (the bentocache habit). A slow or dead Redis costs a caller at most
 * `timeoutMs`, and once the breaker opens, nothing. Used by the page cache's L2 and bus, the data
 * cache's L2 and bus, and the balancer's learn table.
 */
import type { Logger } from 'pino'
import { BREAKER_STATES, type BreakerState, type CircuitBreaker } from './breaker.js'

export interface RedisCallOptions {
  /** The default budget of one call. */
  timeoutMs: number
  breaker: CircuitBreaker
  logger: Logger
  /** Is the connection up? When false a call answers its fallback at once, without touching the breaker. */
  available?: () => boolean
}

export interface CallOptions {
  /** This call's budget instead of the default. */
  timeoutMs?: number
  /**
   * False for calls off the request path (statistics, scans for an operator): they are skipped
   * while the breaker is open but neither use its half-open probe nor count for or against it.
   */
  breaker?: boolean
}

export class RedisCall {
  readonly #opts: RedisCallOptions
  readonly #breaker: CircuitBreaker
  readonly #answered = new Set<() => void>()
  errors = 0

  constructor(opts: RedisCallOptions) {
    this.#opts = opts
    this.#breaker = opts.breaker
  }

  get timeoutMs(): number {
    return this.#opts.timeoutMs
  }

  get breakerState(): BreakerState {
    return this.#breaker.state
  }

  /** Could a call go out right now? Does not consume the breaker's half-open probe. */
  get usable(): boolean {
    return (this.#opts.available?.() ?? true) && this.#breaker.state !== BREAKER_STATES.open
  }

  /**
   * `listener` runs whenever Redis proves it answers again after failures: a call that timed out
   * got its answer late, or a probe succeeded. Outage queues flush from here.
   */
  onAnswer(listener: () => void): () => void {
    this.#answered.add(listener)
    return () => this.#answered.delete(listener)
  }

  /** Tells the listeners Redis answers again. */
  answered(): void {
    for (const l of this.#answered) l()
  }

  /** The connection reports it is ready (again): forget past failures and tell the listeners. */
  recovered(): void {
    this.#breaker.reset()
    this.answered()
  }

  /** Runs `fn` under the deadline and the breaker; resolves with `fallback` when Redis is unavailable, too slow or fails. */
  run<T, F>(op: string, fn: () => Promise<T> | T, fallback: F, opts: CallOptions = {}): Promise<T | F> {
    const useBreaker = opts.breaker !== false
    if (this.#opts.available?.() === false) return Promise.resolve(fallback)
    if (useBreaker ? !this.#breaker.allow() : this.#breaker.state === BREAKER_STATES.open) return Promise.resolve(fallback)
    const timeoutMs = opts.timeoutMs ?? this.#opts.timeoutMs
    return new Promise<T | F>((resolve) => {
      let settled = false
      const timer = setTimeout(() => {
        settled = true
        this.#failed(op, new Error(`redis ${op} did not answer within ${timeoutMs} ms`), useBreaker)
        resolve(fallback)
      }, timeoutMs)
      timer.unref()
      let p: Promise<T>
      try {
        p = Promise.resolve(fn())
      } catch (err) {
        p = Promise.reject(err)
      }
      p.then(
        (value) => {
          if (settled) {
            // Too late for the caller, but proof that Redis answers again: close the circuit now
            // rather than after the cool-down, so queued invalidations go out at once.
            if (useBreaker && this.#breaker.state !== BREAKER_STATES.closed) {
              this.#breaker.reset()
              this.answered()
            }
            return
          }
          clearTimeout(timer)
          settled = true
          if (useBreaker) {
            const wasClosed = this.#breaker.state === BREAKER_STATES.closed
            this.#breaker.success()
            if (!wasClosed) this.answered()
          }
          resolve(value)
        },
        (err: unknown) => {
          if (settled) return
          clearTimeout(timer)
          settled = true
          this.#failed(op, err, useBreaker)
          resolve(fallback)
        },
      )
    })
  }

  #failed(op: string, err: unknown, useBreaker: boolean): void {
    this.errors++
    if (useBreaker) this.#breaker.failure()
    this.#opts.logger.debug({ err, op, breaker: this.#breaker.state }, 'redis call failed; continuing without it')
  }
}
