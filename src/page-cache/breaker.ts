/**
 * A circuit breaker for the L2 tier (the bentocache habit): after `failureThreshold` consecutive
 * failures it opens and L2 is skipped; after `cooldownMs` one probe is let through (half-open);
 * its success closes the breaker, its failure opens it again. Time comes from the injected clock.
 */
import { systemClock, type Clock } from '../core/clock.js'

export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerOptions {
  failureThreshold?: number
  cooldownMs?: number
  clock?: Clock
}

export class CircuitBreaker {
  #threshold: number
  #cooldown: number
  #clock: Clock
  #failures = 0
  #openedAt = 0
  #state: BreakerState = 'closed'
  #probing = false

  constructor(opts: BreakerOptions = {}) {
    this.#threshold = opts.failureThreshold ?? 3
    this.#cooldown = opts.cooldownMs ?? 2000
    this.#clock = opts.clock ?? systemClock
  }

  get state(): BreakerState {
    if (this.#state === 'open' && this.#clock.now() - this.#openedAt >= this.#cooldown) return 'half-open'
    return this.#state
  }

  /** May a call go through now? In half-open, only one probe at a time. */
  allow(): boolean {
    const s = this.state
    if (s === 'closed') return true
    if (s === 'open' || this.#probing) return false
    this.#probing = true
    return true
  }

  success(): void {
    this.#failures = 0
    this.#probing = false
    this.#state = 'closed'
  }

  failure(): void {
    this.#probing = false
    this.#failures++
    if (this.#state !== 'closed' || this.#failures >= this.#threshold) {
      this.#state = 'open'
      this.#openedAt = this.#clock.now()
    }
  }
}
