/**
 * strata/data-cache: a two-tier (in-process LRU + Redis) cache for application data, with
 * cross-node invalidation, single-flight loading, grace and a Redis circuit breaker. Usable
 * without the proxy.
 */
export { createDataCache, DataCache } from './data-cache.js'
export type { DataCacheOptions, Duration, LockOptions, RedisOption } from './options.js'
export type {
  DataCacheEventName,
  DataCacheEvents,
  DataCacheStats,
  GetOptions,
  GetOrSetOptions,
  Loader,
  LoaderContext,
  SetOptions,
  Tier,
} from './types.js'
export { jsonSerializer, msgpackSerializer, type Serializer, type SerializerOption } from './serializer.js'
export { BREAKER_STATES, type BreakerState } from '../core/breaker.js'
export { REDIS_STATES, type RedisState } from './l2.js'
export type { BusMessageType } from './bus.js'
export { StrataError, isStrataError } from '../core/errors.js'
export { registerDataCacheMetrics } from './metrics.js'
