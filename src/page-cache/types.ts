import type { Readable } from 'node:stream'

/** What the proxy hands the page cache. Header names are lower-case (as Node delivers them). */
export interface CacheRequest {
  method: string
  scheme: 'http' | 'https'
  host: string
  /** Path and query as received (origin-form). */
  url: string
  headers: Record<string, string | string[] | undefined>
  /**
   * Aborted when the requester no longer wants the answer (an ESI include whose page's client
   * left). A fetch that fails after that failed for this requester, not because of the origin:
   * requests coalesced on it elect a new leader instead of taking its error.
   */
  signal?: AbortSignal
  /** The route's cache settings (config `routes[].cache`), overriding `cache.*` for this request. */
  policy?: CachePolicyOverride | undefined
}

/** A route's cache settings: each given key replaces the `cache` section's for its requests. */
export interface CachePolicyOverride {
  readonly enabled?: boolean | undefined
  readonly defaultTtl?: number | undefined
  readonly grace?: number | undefined
  readonly staleIfError?: number | undefined
}

/** What an origin fetch returns; the body is streamed and not yet read. */
export interface OriginResponse {
  statusCode: number
  headers: Record<string, string | string[]>
  body: Readable
  upstreamId?: string
}

/**
 * Supplied by the proxy: sends the request upstream (balancing, retries and timeouts are the
 * proxy's job). `extraHeaders` carries conditional headers for revalidation and replaces any
 * header of the same name in `req.headers`. Rejects with a StrataError
 * (STRATA_UPSTREAM_CONNECT / STRATA_UPSTREAM_TIMEOUT / STRATA_NO_UPSTREAM) on failure.
 */
export type OriginFetch = (req: CacheRequest, extraHeaders?: Record<string, string>) => Promise<OriginResponse>

export type CacheStatus = 'HIT' | 'MISS' | 'STALE' | 'PASS' | 'REVALIDATED'

export interface CacheResult {
  statusCode: number
  /** Ready to write: Age, Via, X-Cache and Cache-Status set; Surrogate-* and hop-by-hop stripped. */
  headers: Record<string, string | string[]>
  /** The stored bytes on hits (no copy), a stream on pass/miss, null for HEAD/304. */
  body: Buffer | Readable | null
  cacheStatus: CacheStatus
  upstreamId?: string
  /** The stored entry this response was served from (for ESI). */
  entry?: CacheEntry
}

/**
 * One stored response (one Vary variant of one URL). Times are epoch milliseconds from the
 * injected clock. Everything except `prepared` survives serialisation to L2.
 */
export interface CacheEntry {
  /** Primary cache key (scheme://host/path?query, normalised). */
  key: string
  /** Secondary key: the request's normalised values of `vary` joined by "\n"; '' without Vary. */
  variant: string
  /** Lower-case field names from the response's Vary. */
  vary: readonly string[]
  status: number
  /** Stored header fields: no hop-by-hop, Set-Cookie, Surrogate-*, Age, X-Cache or Cache-Status. */
  headers: Record<string, string | string[]>
  body: Buffer
  /** When the response was received (RFC 9111 §4.2.3 response_time). */
  storedAt: number
  /** corrected_initial_age (RFC 9111 §4.2.3) in milliseconds. */
  initialAgeMs: number
  /** First instant at which the entry is stale. */
  staleAt: number
  /** Grace (stale-while-revalidate) window after staleAt, ms. */
  graceMs: number
  /** stale-if-error window after staleAt, ms. */
  staleIfErrorMs: number
  /** When the entry is dropped (after grace/stale-if-error/keep for revalidation). */
  deleteAt: number
  /** must-revalidate / proxy-revalidate / no-cache: never served stale (RFC 9111 §4.2.4). */
  mustRevalidate: boolean
  etag?: string
  lastModified?: string
  /** The origin's Surrogate-Control (edge-only, not in `headers`): ESI activation reads it. */
  surrogateControl?: string
  /** Surrogate keys (tags) from Surrogate-Key. */
  tags: readonly string[]
  /** Content-Encoding of the stored body ('' for identity). */
  encoding: string
  /** Bytes this entry accounts for in L1 (body + headers). */
  size: number
  /** Result of the `prepare` hook, memory only (never serialised). */
  prepared?: unknown
  /**
   * `headers` as a flat name/value list behind three slots for Age, X-Cache and Cache-Status,
   * built on the first plain hit (memory only, never serialised; see `plainHit`).
   */
  wire?: (string | string[])[]
}

/** A purge request as the admin API receives it (after JSON parsing). */
export type PurgeCommand =
  | { urls: string[]; soft?: boolean }
  | { prefix: string; soft?: boolean }
  | { pattern: string; soft?: boolean }
  | { tags: string[]; soft?: boolean }
  | { all: true; soft?: boolean }

export interface TierStats {
  hits: number
  misses: number
  entries: number
  bytes: number
}

export interface PageCacheStats {
  hits: number
  misses: number
  staleHits: number
  revalidated: number
  coalescedWaits: number
  passes: number
  hitRatio: number
  entries: number
  bytes: number
  l1: TierStats
  l2: (TierStats & { enabled: true; breaker: 'closed' | 'open' | 'half-open'; errors: number; pendingPurges: number }) | { enabled: false }
  /** The invalidation bus; `rejected` counts messages dropped as malformed or invalid. */
  bus: { enabled: true; published: number; received: number; rejected: number; queued: number } | { enabled: false; rejected: number }
}
