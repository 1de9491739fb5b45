import type { Duration } from './options.js'
import type { BreakerState } from '../core/breaker.js'
import type { RedisState } from './l2.js'
import type { BusMessageType } from './bus.js'

export interface SetOptions {
  /** Freshness; defaults to the cache's `defaultTtl`. */
  ttl?: Duration
  /** How long the value is kept after it goes stale; defaults to the cache's `grace`. */
  grace?: Duration
  /** Labels for deleteByTag. */
  tags?: readonly string[]
}

export interface GetOrSetOptions extends SetOptions {
  /** Cross-node lock for this call; defaults to the cache's `lock` option. */
  lock?: boolean
  timeouts?: { soft?: Duration; hard?: Duration }
}

export interface GetOptions {
  /** Also return a value that is stale but within grace. */
  allowStale?: boolean
}

export interface LoaderContext<T> {
  key: string
  namespace: string
  /** The stale value within grace, if any: lets a loader fall back or do a conditional fetch. */
  stale: T | undefined
}

/** Computes the value on a miss. Returning `undefined` means "nothing to cache". */
export type Loader<T> = (ctx: LoaderContext<T>) => T | Promise<T>

export type Tier = 'l1' | 'l2'

export interface DataCacheStats {
  /** getOrSet/get/has calls answered by each tier with a fresh value. */
  l1Hits: number
  l2Hits: number
  /** Calls that found nothing fresh in either tier. */
  misses: number
  loaderCalls: number
  loaderErrors: number
  /** Loads that waited for another node holding the cross-node lock (`lock`). */
  lockWaits: number
  /** Calls answered with a stale (graced) value because the loader failed or was slow. */
  staleServed: number
  /** Redis commands that failed or timed out. */
  l2Errors: number
  busPublished: number
  busReceived: number
  /** Invalidations waiting for Redis to come back. */
  busQueued: number
  /** Messages on the bus channel that failed validation and were dropped. */
  busRejected: number
  redis: RedisState | 'none'
  breaker: BreakerState
  l1Entries: number
  l1Bytes: number
  inFlight: number
}

export interface DataCacheEvents {
  hit: { key: string; namespace: string; tier: Tier }
  miss: { key: string; namespace: string }
  stale: { key: string; namespace: string; reason: 'soft-timeout' | 'loader-error' | 'hard-timeout' }
  'loader:error': { key: string; namespace: string; error: unknown }
  /** A message from another node was applied to this node's L1. */
  'bus:received': { type: BusMessageType; namespace: string; keys: string[] }
  'redis:state': { state: RedisState }
  'breaker:state': { state: BreakerState }
}

export type DataCacheEventName = keyof DataCacheEvents
