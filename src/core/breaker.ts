import type { Clock } from './clock.js'

export const BREAKER_STATES = { closed: 'closed', open: 'open', halfOpen: 'half-open' } as const
export type BreakerState = (typeof BREAKER_STATES)[keyof typeof BREAKER_STATES]

export interface BreakerOptions {
  /** Consecutive failures that open the circuit. */
  threshold: number
  /** How long the circuit stays open before one probe is allowed. */
  duration: number
  clock: Clock
  /** Called once per state change (never per call), so logs stay quiet during an outage. */
  onChange?: (state: BreakerState) => void
}

/**
 * A circuit breaker for Redis, shared by the page cache's L2 and the data cache (the bentocache
 * habit): after `threshold` consecutive failures every call skips L2 at once instead of paying a
 * timeout; after `duration` one probe goes through and its outcome closes or re-opens the circuit.
 * Pure logic on an injected clock, so tests are exact.
 */
export class CircuitBreaker {
  #state: BreakerState = BREAKER_STATES.closed
  #failures = 0
  #openUntil = 0
  #probing = false
  readonly #opts: BreakerOptions

  constructor(opts: BreakerOptions) {
    this.#opts = opts
  }

  /** The state as of now: an open circuit whose `duration` has passed reads as half-open. */
  get state(): BreakerState {
    if (this.#state === BREAKER_STATES.open && this.#opts.clock.now() >= this.#openUntil) return BREAKER_STATES.halfOpen
    return this.#state
  }

  /** May a call go to Redis now? In half-open state only one probe at a time is allowed. */
  allow(): boolean {
    if (this.#state === BREAKER_STATES.closed) return true
    if (this.#state === BREAKER_STATES.open) {
      if (this.#opts.clock.now() < this.#openUntil) return false
      this.#set(BREAKER_STATES.halfOpen)
    }
    if (this.#probing) return false
    this.#probing = true
    return true
  }

  success(): void {
    this.#failures = 0
    this.#probing = false
    if (this.#state !== BREAKER_STATES.closed) this.#set(BREAKER_STATES.closed)
  }

  failure(): void {
    this.#probing = false
    this.#failures++
    if (this.#state === BREAKER_STATES.halfOpen || (this.#state === BREAKER_STATES.closed && this.#failures >= this.#opts.threshold)) {
      this.#openUntil = this.#opts.clock.now() + this.#opts.duration
      this.#set(BREAKER_STATES.open)
    }
  }

  /** Forget past failures, e.g. when the connection reports it is ready again. */
  reset(): void {
    this.#failures = 0
    this.#probing = false
    if (this.#state !== BREAKER_STATES.closed) this.#set(BREAKER_STATES.closed)
  }

  #set(state: BreakerState): void {
    this.#state = state
    this.#opts.onChange?.(state)
  }
}
