/**
 * Building stored entries: every entry knows storedAt, staleAt and deleteAt (RFC 9111 §4.2) and
 * carries what a hit needs precomputed (headers ready to copy, validators, encoding).
 */
import { VIA, appendVia, headerValue, type Headers } from '../core/headers.js'
import { correctedInitialAgeMs, mustRevalidate, sharedRevalidate, storedHeaders, surrogateKeys, type EffectivePolicy } from './policy.js'
import type { CacheEntry } from './types.js'

export { VIA }

export interface EntryInput {
  key: string
  variant: string
  vary: readonly string[]
  status: number
  /** Response header fields as received (Set-Cookie already removed if a rule strips it). */
  headers: Headers
  body: Buffer
  /** When the request was sent and the response received (RFC 9111 §4.2.3). */
  requestTime: number
  responseTime: number
  /** Freshness lifetime in seconds (policy.freshnessLifetime). */
  ttl: number
  policy: EffectivePolicy
  /** Config defaults in seconds, used when the response has no stale-* directive. */
  grace: number
  staleIfError: number
  /** How long a stale entry with validators is kept for revalidation, ms. */
  keepMs: number
}

function headersSize(h: Record<string, string | string[]>): number {
  let n = 0
  for (const k in h) {
    const v = h[k]!
    n += k.length + 4 + (Array.isArray(v) ? v.reduce((a, s) => a + s.length + 2, 0) : v.length)
  }
  return n
}

/** Entry bookkeeping overhead counted in L1 size, bytes. */
const ENTRY_OVERHEAD = 256

/** Appends strata to Via (RFC 9110 §7.6.3). */
/** Via for a response strata sends: added once, not again when a stored entry already has it. */
export function withVia(existing: string | string[] | undefined): string {
  const v = Array.isArray(existing) ? existing.join(', ') : existing
  return v?.endsWith(VIA) ? v : appendVia(v)
}

export function createEntry(input: EntryInput): CacheEntry {
  const headers = storedHeaders(input.headers)
  // A stored body is complete, so its length is known; a hit sends Content-Length.
  if (input.status !== 204 && input.status !== 304) headers['content-length'] = String(input.body.length)
  headers['via'] = withVia(headers['via'])
  // Ranges are served from the stored bytes (RFC 9110 §14.3).
  if (input.status === 200 && headers['accept-ranges'] === undefined) headers['accept-ranges'] = 'bytes'
  const d = input.policy.directives
  const noStale = mustRevalidate(input.policy)
  const initialAgeMs = correctedInitialAgeMs(input.headers, input.requestTime, input.responseTime)
  const staleAt = input.responseTime + input.ttl * 1000 - initialAgeMs
  // Stale-serving windows: the response's own directive (RFC 5861, Surrogate-Control max-age=N+G)
  // beats the config default; any prohibition (§4.2.4) wins over both; s-maxage rules out the
  // config defaults (§5.2.2.10).
  const noDefaults = sharedRevalidate(input.policy)
  const graceMs = noStale ? 0 : (input.policy.surrogate?.grace ?? d.staleWhileRevalidate ?? (noDefaults ? 0 : input.grace)) * 1000
  const staleIfErrorMs = noStale ? 0 : (d.staleIfError ?? (noDefaults ? 0 : input.staleIfError)) * 1000
  const etag = headerValue(headers, 'etag')
  const lastModified = headerValue(headers, 'last-modified')
  const keepMs = etag !== undefined || lastModified !== undefined ? input.keepMs : 0
  const encodingRaw = headerValue(headers, 'content-encoding')?.trim().toLowerCase() ?? ''
  const entry: CacheEntry = {
    key: input.key,
    variant: input.variant,
    vary: input.vary,
    status: input.status,
    headers,
    body: input.body,
    storedAt: input.responseTime,
    initialAgeMs,
    staleAt,
    graceMs,
    staleIfErrorMs,
    deleteAt: staleAt + Math.max(graceMs, staleIfErrorMs, keepMs, 0),
    mustRevalidate: noStale,
    tags: surrogateKeys(input.headers),
    encoding: encodingRaw === 'identity' ? '' : encodingRaw,
    size: 0,
  }
  if (etag !== undefined) entry.etag = etag
  // Edge-only: never sent to clients, but the edge's own processing (ESI activation) reads it.
  const sc = input.headers['surrogate-control']
  if (sc !== undefined) entry.surrogateControl = Array.isArray(sc) ? sc.join(', ') : sc
  if (lastModified !== undefined) entry.lastModified = lastModified
  entry.size = input.body.length + headersSize(headers) + input.key.length + input.variant.length + ENTRY_OVERHEAD
  return entry
}
