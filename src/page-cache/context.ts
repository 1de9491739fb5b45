/**
 * The state the page cache's parts share — lookup, fill, invalidation, stats and the Redis wiring —
 * built once by the PageCache facade and handed to each part at construction. Internal to
 * page-cache/: not exported from index.ts.
 */
import type { LRUCache } from 'lru-cache'
import type { CacheConfig } from '../config/schema.js'
import type { Clock } from '../core/clock.js'
import type { Logger } from '../observability/logger.js'
import type { InvalidationBus } from './bus.js'
import type { Flights } from './coalesce.js'
import type { KeyFunction } from './key.js'
import type { L2Tier } from './l2.js'
import type { MemoryStore } from './memory-store.js'
import type { Counters } from './stats.js'

export interface PageCacheContext {
  /** Replaced by a config reload (PageCache.reconfigure): read it per request, never keep a copy. */
  config: CacheConfig
  readonly nodeId: string
  readonly clock: Clock
  readonly log: Logger
  readonly key: KeyFunction
  readonly l1: MemoryStore
  /** Set at construction, or later once the lazily imported Redis store exists: read it per use. */
  l2: L2Tier | undefined
  /** Same as `l2`. */
  bus: InvalidationBus | undefined
  /** Hit-for-pass markers: key → until when requests for it go straight to the origin. */
  readonly hitForPass: LRUCache<string, number>
  /** One origin fetch per key at a time (coalescing, and the "already refreshing" flag). */
  readonly flights: Flights
  readonly counters: Counters
}
