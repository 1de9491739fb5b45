/** The page cache's public surface (the proxy, admin and ESI import from here). */
export { PageCache, type PageCacheOptions } from './page-cache.js'
export type {
  CacheEntry,
  CacheRequest,
  CachePolicyOverride,
  CacheResult,
  CacheStatus,
  OriginFetch,
  OriginResponse,
  PageCacheStats,
  PurgeCommand,
  TierStats,
} from './types.js'
export { canonicalAbsolute, canonicalHost, canonicalTarget, isCanonicalTarget, createKeyFunction, normalizeQuery, normalizeTarget, compileGlobs, keyOrigin, keyTarget, type KeyFunction, type KeyOptions } from './key.js'
export {
  parseCacheControl,
  parseSurrogateControl,
  effectivePolicy,
  freshnessLifetime,
  storageDecision,
  matchRule,
  mustRevalidate,
  correctedInitialAgeMs,
  ageSeconds,
  storedHeaders,
  freshenHeaders,
  notModifiedMatches,
  isNotModified,
  parseRange,
  ifRangeMatches,
  acceptedEncodings,
  acceptsEncoding,
  normalizeAcceptEncoding,
  varyFields,
  variantKey,
  isUnsafeMethod,
  invalidatesOnStatus,
  surrogateKeys,
  strongEtagEqual,
  weakEtagEqual,
  parseHttpDate,
  HEURISTICALLY_CACHEABLE,
  NOT_STORED,
  type CacheDirectives,
  type EffectivePolicy,
  type StorageDecision,
  type NotStorableReason,
  type SurrogateControl,
} from './policy.js'
export { createEntry, VIA, type EntryInput } from './entry.js'
export { deliver, hitHead, plainHit, selectVariant, forwardHeaders, passHeaders, passHeaderList, cacheStatusValue, CACHE_NAME, type PlainHit } from './respond.js'
export { compilePurge, unsafeRegexReason, MAX_PATTERN_LENGTH, MAX_PURGE_ITEMS } from './purge.js'
export type { PageStore, PurgeSelector, PurgeOptions, StoreStats } from './store.js'
export { MemoryStore } from './memory-store.js'
export { ownedBytes } from './owned-bytes.js'
export { CircuitBreaker, type BreakerState } from '../core/breaker.js'
export type { InvalidationBus, BusMessage } from './bus.js'
