/**
 * Request coalescing (single flight per key): the first miss fetches, later ones wait on a promise
 * that the response itself settles (no polling timer), up to a cap of waiters per key.
 */
import type { CacheEntry } from './types.js'

export interface FlightOutcome {
  /** The stored entry, when the response turned out cacheable and was stored. */
  entry?: CacheEntry
  /**
   * The fetch failed (rejected, a 5xx, or a body cut short): waiters fall back to stale-if-error,
   * or are handed this error. Never refetched by each waiter: the origin just failed, and N
   * waiters going to it at once is the stampede coalescing is there to prevent.
   */
  error?: Error
  /** The leader's own requester gave up (see CacheRequest.signal): one waiter fetches in its place. */
  abandoned?: boolean
}

interface Flight {
  promise: Promise<FlightOutcome>
  resolve: (o: FlightOutcome) => void
  waiters: number
}

export class Flights {
  #map = new Map<string, Flight>()

  has(key: string): boolean {
    return this.#map.has(key)
  }

  /** Starts a flight; answers the function that settles it (idempotent), or undefined if one runs. */
  lead(key: string): ((o: FlightOutcome) => void) | undefined {
    if (this.#map.has(key)) return undefined
    let resolve!: (o: FlightOutcome) => void
    const promise = new Promise<FlightOutcome>((r) => (resolve = r))
    const flight: Flight = { promise, resolve, waiters: 0 }
    this.#map.set(key, flight)
    let done = false
    return (o) => {
      if (done) return
      done = true
      if (this.#map.get(key) === flight) this.#map.delete(key)
      resolve(o)
    }
  }

  /** Joins a running flight if there is one with room; undefined otherwise. */
  join(key: string, maxWaiters: number): Promise<FlightOutcome> | undefined {
    const f = this.#map.get(key)
    if (!f || f.waiters >= maxWaiters) return undefined
    f.waiters++
    return f.promise
  }

  get size(): number {
    return this.#map.size
  }
}
