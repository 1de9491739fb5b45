/**
 * HTTP caching rules for a shared cache (RFC 9111), as small pure functions. Nothing here does I/O
 * or reads the clock: callers pass `now`. Each rule cites the section it implements.
 */
import { parseDictionary } from 'structured-headers'
import type { CacheRule } from '../config/schema.js'
import { HOP_BY_HOP, headerList, headerValue, stripHopByHop, type Headers } from '../core/headers.js'

export interface CacheDirectives {
  noStore: boolean
  noCache: boolean
  private: boolean
  public: boolean
  mustRevalidate: boolean
  proxyRevalidate: boolean
  maxAge?: number
  sMaxAge?: number
  staleWhileRevalidate?: number
  staleIfError?: number
}

const EMPTY: CacheDirectives = Object.freeze({
  noStore: false,
  noCache: false,
  private: false,
  public: false,
  mustRevalidate: false,
  proxyRevalidate: false,
})

/** Delta-seconds (RFC 9111 §1.2.2): non-negative integer; invalid values yield undefined. */
function deltaSeconds(v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  const s = v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v
  if (!/^\d+$/.test(s)) return undefined
  // §1.2.2: values too large are treated as 2^31.
  return Math.min(Number(s), 2_147_483_648)
}

/**
 * Parses Cache-Control / CDN-Cache-Control (RFC 9111 §5.2, RFC 9213 §2.1 uses the same syntax).
 * Names are case-insensitive; the first occurrence of a duplicated directive wins (§4.2.1).
 * Qualified `no-cache="f"` / `private="f"` are treated as unqualified (the conservative reading
 * §5.2.2.4 and §5.2.2.7 allow).
 */
export function parseCacheControl(value: string | undefined): CacheDirectives {
  if (!value) return EMPTY
  const d: CacheDirectives = { ...EMPTY }
  const seen = new Set<string>()
  for (const part of splitDirectives(value)) {
    const eq = part.indexOf('=')
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase()
    if (!name || seen.has(name)) continue
    seen.add(name)
    const arg = eq === -1 ? undefined : part.slice(eq + 1).trim()
    switch (name) {
      case 'no-store': d.noStore = true; break
      case 'no-cache': d.noCache = true; break
      case 'private': d.private = true; break
      case 'public': d.public = true; break
      case 'must-revalidate': d.mustRevalidate = true; break
      case 'proxy-revalidate': d.proxyRevalidate = true; break
      case 'max-age': { const n = deltaSeconds(arg); if (n !== undefined) d.maxAge = n; break }
      case 's-maxage': { const n = deltaSeconds(arg); if (n !== undefined) d.sMaxAge = n; break }
      // RFC 5861 extensions, named in RFC 9111 §5.2.3 as extension directives.
      case 'stale-while-revalidate': { const n = deltaSeconds(arg); if (n !== undefined) d.staleWhileRevalidate = n; break }
      case 'stale-if-error': { const n = deltaSeconds(arg); if (n !== undefined) d.staleIfError = n; break }
    }
  }
  return d
}

/**
 * Parses CDN-Cache-Control (RFC 9213 §2.1), a Dictionary structured field (RFC 8941 §3.2). A value
 * that does not parse as one is invalid and the whole field is ignored: undefined, so Cache-Control
 * governs as if it were absent. A known directive whose value has the wrong type (`max-age="10"`,
 * `max-age=1.5`) is ignored on its own. Parameters are ignored (§2.1).
 */
export function parseCdnCacheControl(value: string): CacheDirectives | undefined {
  let dict
  try {
    dict = parseDictionary(value)
  } catch {
    return undefined
  }
  const d: CacheDirectives = { ...EMPTY }
  for (const [name, member] of dict) {
    const v = member[0]
    // An inner list is never a directive value strata knows; a boolean false (`?0`) turns a flag off.
    if (Array.isArray(v)) continue
    const flag = v !== false
    const seconds = typeof v === 'number' && Number.isInteger(v) && v >= 0 ? Math.min(v, 2_147_483_648) : undefined
    switch (name) {
      case 'no-store': d.noStore = flag; break
      case 'no-cache': d.noCache = flag; break
      case 'private': d.private = flag; break
      case 'public': d.public = flag; break
      case 'must-revalidate': d.mustRevalidate = flag; break
      case 'proxy-revalidate': d.proxyRevalidate = flag; break
      case 'max-age': if (seconds !== undefined) d.maxAge = seconds; break
      case 's-maxage': if (seconds !== undefined) d.sMaxAge = seconds; break
      case 'stale-while-revalidate': if (seconds !== undefined) d.staleWhileRevalidate = seconds; break
      case 'stale-if-error': if (seconds !== undefined) d.staleIfError = seconds; break
    }
  }
  return d
}

/** Splits a directive list on commas outside quoted strings. */
function splitDirectives(value: string): string[] {
  const out: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c === 34 /* " */) quoted = !quoted
    else if (c === 92 /* \ */ && quoted) i++
    else if (c === 44 /* , */ && !quoted) {
      out.push(value.slice(start, i))
      start = i + 1
    }
  }
  out.push(value.slice(start))
  return out
}

export interface SurrogateControl {
  noStore: boolean
  maxAge?: number
  /** The `+grace` part of `max-age=30+60` (Edge Architecture Specification 1.0). */
  grace?: number
}

/** Parses `Surrogate-Control` (W3C Edge Architecture Specification): `no-store`, `max-age=N[+G]`. */
export function parseSurrogateControl(value: string | undefined): SurrogateControl | undefined {
  if (!value) return undefined
  const out: SurrogateControl = { noStore: false }
  for (const part of splitDirectives(value)) {
    // Targeting (`;device`) is not used: strata treats every Surrogate-Control as its own.
    const raw = part.split(';')[0]!.trim()
    const eq = raw.indexOf('=')
    const name = (eq === -1 ? raw : raw.slice(0, eq)).trim().toLowerCase()
    const arg = eq === -1 ? '' : raw.slice(eq + 1).trim()
    if (name === 'no-store') out.noStore = true
    else if (name === 'max-age' && out.maxAge === undefined) {
      const m = /^"?(\d+)(?:\+(\d+))?"?$/.exec(arg)
      if (m) {
        out.maxAge = Math.min(Number(m[1]), 2_147_483_648)
        if (m[2] !== undefined) out.grace = Math.min(Number(m[2]), 2_147_483_648)
      }
    }
  }
  return out
}

/**
 * The directives that govern this cache. RFC 9213 §2.1: a cache that honours CDN-Cache-Control
 * MUST ignore Cache-Control when a valid CDN-Cache-Control is present (an invalid one is ignored
 * as a whole); Surrogate-Control (edge-only) outranks both for no-store and freshness.
 */
export interface EffectivePolicy {
  directives: CacheDirectives
  source: 'surrogate-control' | 'cdn-cache-control' | 'cache-control'
  surrogate?: SurrogateControl
}

export function effectivePolicy(resHeaders: Headers): EffectivePolicy {
  const surrogate = parseSurrogateControl(headerList(resHeaders, 'surrogate-control'))
  const cdnRaw = headerList(resHeaders, 'cdn-cache-control')
  const cdn = cdnRaw === undefined ? undefined : parseCdnCacheControl(cdnRaw)
  const directives = cdn ?? parseCacheControl(headerList(resHeaders, 'cache-control'))
  const source = surrogate?.maxAge !== undefined ? 'surrogate-control' : cdn !== undefined ? 'cdn-cache-control' : 'cache-control'
  return surrogate ? { directives, source, surrogate } : { directives, source }
}

const MONTHS: Readonly<Record<string, number>> = { jan: 0, feb: 1, mar: 2, apr: 3, may: 4, jun: 5, jul: 6, aug: 7, sep: 8, oct: 9, nov: 10, dec: 11 }
const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)'
const DAY_L = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)'
const MONTH = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)'
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})'
// RFC 9110 §5.6.7. Names are matched case-insensitively: the grammar says %s (case-sensitive), but
// a recipient is robust in what it accepts, and cache-tests counts accepting "THU"/"AUG"/"gMT" as optimal.
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`, 'i')
const RFC850_DATE = new RegExp(`^${DAY_L}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`, 'i')
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`, 'i')

/**
 * Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, or the obsolete rfc850-date and
 * asctime-date that recipients should still accept. Anything else (another zone than GMT, missing
 * comma, extra spaces, dashes in an IMF-fixdate, a one-digit hour, an impossible day or time) is
 * invalid and yields undefined; `Date.parse` would accept most of those. `now` only matters for
 * rfc850's two-digit year: one that would be more than 50 years in the future is the most recent
 * past year with those digits (§5.6.7).
 */
export function parseHttpDate(v: string | undefined, now?: number): number | undefined {
  if (!v) return undefined
  let m = IMF_FIXDATE.exec(v)
  if (m) return utc(Number(m[3]), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!)
  m = ASCTIME_DATE.exec(v)
  if (m) return utc(Number(m[6]), m[1]!, Number(m[2]!.trim()), m[3]!, m[4]!, m[5]!)
  m = RFC850_DATE.exec(v)
  if (m) {
    const yy = Number(m[3])
    const thisYear = new Date(now ?? Date.now()).getUTCFullYear()
    let year = thisYear - (thisYear % 100) + yy
    if (year > thisYear + 50) year -= 100
    return utc(year, m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!)
  }
  return undefined
}

function utc(year: number, month: string, day: number, hh: string, mm: string, ss: string): number | undefined {
  const mon = MONTHS[month.toLowerCase()]!
  const h = Number(hh)
  const min = Number(mm)
  const sec = Number(ss)
  // §5.6.7 time-of-day: hour 00-23, minute 00-59, second 00-60 (a leap second).
  if (h > 23 || min > 59 || sec > 60 || day < 1) return undefined
  const d = new Date(0)
  d.setUTCFullYear(year, mon, day) // not Date.UTC: it reads years 0-99 as 1900-1999
  // 31 Feb rolls over into March: that is not a date.
  if (d.getUTCDate() !== day) return undefined
  return d.getTime() + ((h * 60 + min) * 60 + sec) * 1000
}

/**
 * Freshness lifetime in seconds (RFC 9111 §4.2.1), in strata's precedence order:
 * Surrogate-Control max-age > CDN-Cache-Control (RFC 9213) > s-maxage > max-age > Expires − Date >
 * the path rule's defaultTtl > cache.defaultTtl. The defaults stand in for heuristic freshness
 * (§4.2.2) and, like it, only apply to heuristically cacheable status codes.
 */
export function freshnessLifetime(
  status: number,
  resHeaders: Headers,
  policy: EffectivePolicy,
  defaults: { ruleTtl?: number | undefined; defaultTtl: number },
): number {
  if (policy.surrogate?.maxAge !== undefined) return policy.surrogate.maxAge
  const d = policy.directives
  // §5.2.2.10: s-maxage overrides max-age and Expires for a shared cache.
  if (d.sMaxAge !== undefined) return d.sMaxAge
  if (d.maxAge !== undefined) return d.maxAge
  // §5.3: Expires − Date; an invalid Expires (e.g. "0") means already expired. RFC 9213 §2.1:
  // with CDN-Cache-Control present, the other cache fields are ignored.
  if (policy.source !== 'cdn-cache-control') {
    const expiresRaw = headerValue(resHeaders, 'expires')
    if (expiresRaw !== undefined) {
      const expires = parseHttpDate(expiresRaw)
      if (expires === undefined) return 0
      const date = parseHttpDate(headerValue(resHeaders, 'date')) ?? expires
      return Math.max(0, Math.floor((expires - date) / 1000))
    }
  }
  if (!HEURISTICALLY_CACHEABLE.has(status)) return 0
  return defaults.ruleTtl ?? defaults.defaultTtl
}

/** RFC 9110 §15.1: status codes that are heuristically cacheable. */
export const HEURISTICALLY_CACHEABLE: ReadonlySet<number> = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])

/** Status codes strata stores (explicit freshness is needed for those outside the heuristic set). 206 never: strata fetches full bodies. */
export function isStorableStatus(status: number): boolean {
  return status >= 200 && status < 600 && status !== 206 && status !== 304
}

export type NotStorableReason =
  | 'method'
  | 'status'
  | 'no-store'
  | 'private'
  | 'authorization'
  | 'set-cookie'
  | 'vary-star'
  | 'no-ttl'

export interface StorageDecision {
  storable: boolean
  reason?: NotStorableReason
  /** Freshness lifetime in seconds. */
  ttl: number
  policy: EffectivePolicy
  /** The path rule that matched (first match wins). */
  rule?: CacheRule
}

/** First rule whose prefix the path starts with. */
export function matchRule(rules: readonly CacheRule[], path: string): CacheRule | undefined {
  for (const r of rules) if (path.startsWith(r.prefix)) return r
  return undefined
}

/**
 * May a shared cache store this response (RFC 9111 §3)? Adds strata's Set-Cookie rule: a response
 * setting a cookie is personal and not stored, unless the path rule strips the cookie.
 */
export function storageDecision(input: {
  method: string
  reqHeaders: Headers
  status: number
  resHeaders: Headers
  path: string
  rules: readonly CacheRule[]
  defaultTtl: number
}): StorageDecision {
  const policy = effectivePolicy(input.resHeaders)
  const rule = matchRule(input.rules, input.path)
  const base = rule ? { policy, rule } : { policy }
  const no = (reason: NotStorableReason): StorageDecision => ({ storable: false, reason, ttl: 0, ...base })
  // §3: the request method must be understood and cacheable; strata caches GET (HEAD is served from it).
  if (input.method !== 'GET') return no('method')
  if (!isStorableStatus(input.status)) return no('status')
  const d = policy.directives
  // §3 / §5.2.2.5 no-store; Surrogate-Control no-store (edge-only) as well.
  if (d.noStore || policy.surrogate?.noStore) return no('no-store')
  // §5.2.2.7: a shared cache must not store a private response.
  if (d.private) return no('private')
  // §3.5: a request with Authorization only if public, s-maxage or must-revalidate allow it.
  if (input.reqHeaders['authorization'] !== undefined && !(d.public || d.sMaxAge !== undefined || d.mustRevalidate)) return no('authorization')
  // §4.1: Vary: * always fails to match.
  const vary = headerList(input.resHeaders, 'vary')
  if (vary !== undefined && vary.split(',').some((v) => v.trim() === '*')) return no('vary-star')
  if (input.resHeaders['set-cookie'] !== undefined && !rule?.stripSetCookie) return no('set-cookie')
  // §5.2.2.4: no-cache means the response must not be reused without successful validation, even
  // while fresh; stored as already stale, so every reuse revalidates (Surrogate-Control max-age,
  // the edge's own instruction, outranks it).
  const ttl = d.noCache && policy.surrogate?.maxAge === undefined ? 0 : freshnessLifetime(input.status, input.resHeaders, policy, { ruleTtl: rule?.defaultTtl, defaultTtl: input.defaultTtl })
  // A response with no freshness is still worth keeping when it has validators and the origin asked
  // for revalidation (no-cache): §4.3 lets the next request revalidate it cheaply.
  const hasValidator = input.resHeaders['etag'] !== undefined || input.resHeaders['last-modified'] !== undefined
  if (ttl <= 0 && !(hasValidator && (d.noCache || d.maxAge === 0 || d.sMaxAge === 0))) return no('no-ttl')
  return { storable: true, ttl, ...base }
}

/** Must the response never be served stale? (§4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.4) */
export function mustRevalidate(policy: EffectivePolicy): boolean {
  const d = policy.directives
  return d.mustRevalidate || d.proxyRevalidate || d.noCache
}

/**
 * s-maxage "incorporates the semantics of the proxy-revalidate response directive" for a shared
 * cache (§5.2.2.10): the cache's own defaults (config `grace`, `staleIfError`) never serve it
 * stale. The response's own `stale-while-revalidate` / `stale-if-error` (RFC 5861) are the origin's
 * explicit permission and still apply, as CDNs honour `s-maxage=1, stale-while-revalidate=59`.
 * Surrogate-Control max-age (with its own `+grace`) outranks s-maxage at the edge.
 */
export function sharedRevalidate(policy: EffectivePolicy): boolean {
  return policy.directives.sMaxAge !== undefined && policy.surrogate?.maxAge === undefined
}

/**
 * Age computation (RFC 9111 §4.2.3), returning corrected_initial_age in ms. The Date-based
 * apparent_age term is left out on purpose: a reverse proxy talks to its own origins, whose Date has
 * one-second granularity and whose clocks may be skewed; it would make short max-ages expire early.
 */
export function correctedInitialAgeMs(resHeaders: Headers, requestTime: number, responseTime: number): number {
  const ageValue = ageHeaderSeconds(resHeaders) ?? 0
  const responseDelay = Math.max(0, responseTime - requestTime)
  return ageValue * 1000 + responseDelay
}

/**
 * The Age field (RFC 9111 §5.1): a singleton, but a list-based value (`Age: 7200, 0`, or two Age
 * lines) uses its first member; an invalid value is ignored (undefined).
 */
export function ageHeaderSeconds(resHeaders: Headers): number | undefined {
  const v = headerValue(resHeaders, 'age')
  if (v === undefined) return undefined
  const comma = v.indexOf(',')
  return deltaSeconds((comma === -1 ? v : v.slice(0, comma)).trim())
}

/** current_age (§4.2.3) in whole seconds, for the Age header (§5.1). */
export function ageSeconds(entry: { storedAt: number; initialAgeMs: number }, now: number): number {
  return Math.max(0, Math.floor((entry.initialAgeMs + now - entry.storedAt) / 1000))
}

/** Header fields never stored or taken from a 304 (§3.1: hop-by-hop and edge-only fields). */
export const NOT_STORED: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  'set-cookie',
  'surrogate-control',
  'surrogate-key',
  'age',
  'x-cache',
  'cache-status',
])

/** The header fields to store for a response (§3.1), lower-case names. */
export function storedHeaders(resHeaders: Headers): Record<string, string | string[]> {
  return stripHopByHop(resHeaders, NOT_STORED)
}

/**
 * Freshening a stored response with a 304 (RFC 9111 §4.3.4 and §3.2): every field in the 304
 * replaces the stored one, except fields not stored (§3.1) and Content-Length (§3.2), and fields a
 * 304 must not change the meaning of (Content-Encoding, Content-Type, Content-Range).
 */
export function freshenHeaders(stored: Record<string, string | string[]>, notModified: Headers): Record<string, string | string[]> {
  const out = { ...stored }
  for (const name in notModified) {
    const v = notModified[name]
    if (v === undefined || NOT_STORED.has(name) || FRESHEN_EXCLUDED.has(name)) continue
    out[name] = v
  }
  return out
}
const FRESHEN_EXCLUDED: ReadonlySet<string> = new Set(['content-length', 'content-encoding', 'content-type', 'content-range'])

/**
 * Which stored response a 304 freshens (§4.3.4): with a strong ETag in the 304, the stored one with
 * the same ETag; otherwise a Last-Modified match; with neither validator, the stored one.
 */
export function notModifiedMatches(stored: { etag?: string; lastModified?: string }, notModified: Headers): boolean {
  const etag = headerValue(notModified, 'etag')
  if (etag !== undefined) return stored.etag !== undefined && strongEtagEqual(stored.etag, etag)
  const lm = headerValue(notModified, 'last-modified')
  if (lm !== undefined) return stored.lastModified === lm
  return true
}

function opaque(tag: string): string {
  const t = tag.trim()
  return t.startsWith('W/') ? t.slice(2) : t
}

/** RFC 9110 §8.8.3.2 strong comparison. */
export function strongEtagEqual(a: string, b: string): boolean {
  return !a.trim().startsWith('W/') && !b.trim().startsWith('W/') && a.trim() === b.trim()
}

/** RFC 9110 §8.8.3.2 weak comparison. */
export function weakEtagEqual(a: string, b: string): boolean {
  return opaque(a) === opaque(b)
}

/**
 * Should a cache answer 304 to this client (RFC 9111 §4.3.2, RFC 9110 §13.1.2–13.1.3, §13.2.2)?
 * If-None-Match (weak comparison) takes precedence; If-Modified-Since is only evaluated without it.
 */
export function isNotModified(reqHeaders: Headers, stored: { status: number; etag?: string | undefined; lastModified?: string | undefined; storedAt: number }): boolean {
  if (stored.status !== 200) return false
  const inm = headerList(reqHeaders, 'if-none-match')
  if (inm !== undefined) {
    if (stored.etag === undefined) return inm.trim() === '*'
    for (const t of inm.split(',')) {
      const tag = t.trim()
      if (tag === '*' || weakEtagEqual(tag, stored.etag)) return true
    }
    return false
  }
  const ims = parseHttpDate(headerValue(reqHeaders, 'if-modified-since'))
  if (ims === undefined) return false
  // §4.3.2: use Last-Modified, else the time the response was stored.
  const lm = parseHttpDate(stored.lastModified) ?? stored.storedAt
  return lm <= ims
}

export type RangeResult = { start: number; end: number } | 'unsatisfiable' | undefined

/**
 * A single `bytes=` range against a body of `size` bytes (RFC 9110 §14.1.2, §14.2). Multiple ranges
 * and malformed headers are ignored (a full 200 is a valid answer, §14.2); undefined means "serve
 * the whole body".
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return undefined
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header)
  if (!m) return undefined
  const [, a, b] = m as unknown as [string, string, string]
  if (a === '' && b === '') return undefined
  if (a === '') {
    // suffix-range: the last N bytes.
    const n = Number(b)
    if (n === 0) return 'unsatisfiable'
    return { start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(a)
  if (start >= size) return 'unsatisfiable'
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1)
  if (end < start) return undefined
  return { start, end }
}

/**
 * RFC 9110 §13.1.5 If-Range: the Range applies only if the validator matches (strong comparison for
 * an entity-tag; an HTTP-date must equal Last-Modified exactly).
 */
export function ifRangeMatches(reqHeaders: Headers, stored: { etag?: string | undefined; lastModified?: string | undefined }): boolean {
  const ir = headerValue(reqHeaders, 'if-range')
  if (ir === undefined) return true
  const v = ir.trim()
  if (v.startsWith('"') || v.startsWith('W/')) return stored.etag !== undefined && strongEtagEqual(v, stored.etag)
  return stored.lastModified !== undefined && parseHttpDate(v) === parseHttpDate(stored.lastModified)
}

/** The content-codings a client accepts (RFC 9110 §12.5.3), q=0 excluded; identity implied. */
export function acceptedEncodings(value: string | undefined): Set<string> {
  const out = new Set<string>()
  if (value === undefined) return out
  for (const part of value.split(',')) {
    const [codingRaw, ...params] = part.split(';')
    const coding = codingRaw!.trim().toLowerCase()
    if (!coding) continue
    let q = 1
    for (const p of params) {
      const m = /^\s*q\s*=\s*([\d.]+)\s*$/i.exec(p)
      if (m) q = Number(m[1])
    }
    if (q > 0) out.add(coding === 'x-gzip' ? 'gzip' : coding)
  }
  if (out.has('*')) {
    out.add('gzip')
    out.add('br')
  }
  return out
}

/**
 * Accept-Encoding normalised to one of three values so Vary: Accept-Encoding keeps at most three
 * variants per URL (RFC 9111 §4.1 allows normalising when semantics are preserved): the best coding
 * strata's origins use, in preference order br > gzip > identity.
 */
export function normalizeAcceptEncoding(value: string | undefined): '' | 'gzip' | 'br' {
  const acc = acceptedEncodings(value)
  if (acc.has('br')) return 'br'
  if (acc.has('gzip')) return 'gzip'
  return ''
}

/** Does the client accept a body in `encoding` ('' = identity)? */
export function acceptsEncoding(acceptEncoding: string | undefined, encoding: string): boolean {
  if (encoding === '' || encoding === 'identity') return true
  return acceptedEncodings(acceptEncoding).has(encoding)
}

/** Lower-case field names listed in Vary (§4.1). */
export function varyFields(resHeaders: Headers): string[] {
  const v = headerList(resHeaders, 'vary')
  if (v === undefined) return []
  const out: string[] = []
  for (const f of v.split(',')) {
    const n = f.trim().toLowerCase()
    if (n && !out.includes(n)) out.push(n)
  }
  return out.sort()
}

/**
 * The secondary key (§4.1): the request's values of the Vary fields, normalised (whitespace
 * collapsed; Accept-Encoding reduced by normalizeAcceptEncoding), joined by "\n".
 */
export function variantKey(vary: readonly string[], reqHeaders: Headers): string {
  if (vary.length === 0) return ''
  let out = ''
  for (let i = 0; i < vary.length; i++) {
    const name = vary[i]!
    const raw = headerList(reqHeaders, name)
    const v = name === 'accept-encoding' ? normalizeAcceptEncoding(raw) : raw === undefined ? '' : raw.replace(/\s+/g, ' ').trim()
    out += (i === 0 ? '' : '\n') + name + ':' + v
  }
  return out
}

/** Methods that are not safe (RFC 9110 §9.2.1) and invalidate caches on success (RFC 9111 §4.4). */
export function isUnsafeMethod(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS' && method !== 'TRACE'
}

/** §4.4: invalidation happens when the response status is non-error (2xx or 3xx). */
export function invalidatesOnStatus(status: number): boolean {
  return status >= 200 && status < 400
}

/** Surrogate keys from `Surrogate-Key: a b c` (space-separated). */
export function surrogateKeys(resHeaders: Headers): string[] {
  const v = headerList(resHeaders, 'surrogate-key')
  if (v === undefined) return []
  return [...new Set(v.split(/[\s,]+/).filter(Boolean))]
}
