/**
 * The primary cache key (RFC 9111 §2: at least the method and target URI; strata only stores GET,
 * so the key is the target URI): scheme://host/path?query, with configured query parameters dropped
 * and the rest optionally sorted so equivalent URLs share one entry.
 */
import type { CacheConfig } from '../config/schema.js'

export type KeyOptions = CacheConfig['key']

/** A compiled key function: `(scheme, host, url) => key`. */
export type KeyFunction = (scheme: string, host: string, url: string) => string

/** Compiles `utm_*`-style globs (only `*` and `?` are special) into one anchored RegExp. */
export function compileGlobs(globs: readonly string[]): RegExp | undefined {
  if (globs.length === 0) return undefined
  const alts = globs.map((g) =>
    g
      .split('')
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')))
      .join(''),
  )
  return new RegExp(`^(?:${alts.join('|')})$`)
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '))
  } catch {
    return s
  }
}

/**
 * Normalises the query part (without "?"): drops parameters whose decoded name matches
 * `ignoreQuery`, sorts the rest by name when `sortQuery` (stable, so repeated names keep order).
 * The raw encoding of what is kept is preserved.
 */
export function normalizeQuery(query: string, ignore: RegExp | undefined, sort: boolean): string {
  if (query === '') return ''
  let pairs = query.split('&').filter((p) => p !== '')
  if (ignore) pairs = pairs.filter((p) => !ignore.test(safeDecode(p.split('=', 1)[0]!)))
  if (sort && pairs.length > 1) {
    const named = pairs.map((p) => [safeDecode(p.split('=', 1)[0]!), p] as const)
    named.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    pairs = named.map((n) => n[1])
  }
  return pairs.join('&')
}

/** Path and query of an origin-form target, fragment dropped, query normalised. */
export function normalizeTarget(url: string, ignore: RegExp | undefined, sort: boolean): string {
  const hash = url.indexOf('#')
  const u = hash === -1 ? url : url.slice(0, hash)
  const q = u.indexOf('?')
  const path = q === -1 ? u : u.slice(0, q)
  const p = path === '' ? '/' : path
  if (q === -1) return p
  const query = normalizeQuery(u.slice(q + 1), ignore, sort)
  return query === '' ? p : `${p}?${query}`
}

export function createKeyFunction(opts: KeyOptions): KeyFunction {
  const ignore = compileGlobs(opts.ignoreQuery)
  const sort = opts.sortQuery
  // Normalising a query (split, filter, sort, re-encode) costs far more than a map lookup, and a
  // site serves the same URLs over and over: remember the last 10,000 targets.
  const targets = new Map<string, string>()
  return (scheme, host, url) => {
    // The common case (no query) is one concatenation.
    if (url.indexOf('?') === -1 && url.indexOf('#') === -1) return `${scheme}://${host.toLowerCase()}${url === '' ? '/' : url}`
    let target = targets.get(url)
    if (target === undefined) {
      target = normalizeTarget(url, ignore, sort)
      if (targets.size >= 10_000) targets.clear()
      targets.set(url, target)
    }
    return `${scheme}://${host.toLowerCase()}${target}`
  }
}

/** The path+query part of a key (everything from the first "/" after "scheme://host"). */
export function keyTarget(key: string): string {
  const start = key.indexOf('://')
  const slash = key.indexOf('/', start + 3)
  return slash === -1 ? '/' : key.slice(slash)
}

/** The "scheme://host" part of a key. */
export function keyOrigin(key: string): string {
  const start = key.indexOf('://')
  const slash = key.indexOf('/', start + 3)
  return slash === -1 ? key : key.slice(0, slash)
}

/*
 * The canonical request target (RFC 3986 §6.2.2, syntax-based normalization): every place that
 * turns a URL into a key (the key itself, purges, unsafe-method invalidation, ESI includes) uses
 * this one form, and it is also what goes upstream, so the origin answers for exactly the URL the
 * answer is stored under. Without it `/a/./b` is stored under one key and purged under another.
 */

const HEX = '0123456789ABCDEF'

/** RFC 3986 §2.3 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  const l = c | 0x20
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1
}

/**
 * Whether a target needs no work: no percent-encoding, no dot segment, nothing outside visible
 * ASCII. The common case, checked with one pass over the characters and no allocation.
 */
export function isCanonicalTarget(url: string): boolean {
  let prev = 0x2f
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i)
    if (c === 0x25 /* % */ || c < 0x21 || c > 0x7e || (c === 0x2e /* . */ && prev === 0x2f /* / */)) return false
    prev = c
  }
  return url.length > 0
}

/**
 * §6.2.2.1 and §6.2.2.2: percent-encodings of unreserved characters decoded, the others with
 * upper-case hex digits; bytes outside visible ASCII percent-encoded (as WHATWG URL serialises
 * them, so an ESI include URL and a client's request for the same resource agree).
 */
function normalizePercent(s: string): string {
  let out = ''
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x25 && i + 2 < s.length && hexValue(s.charCodeAt(i + 1)) >= 0 && hexValue(s.charCodeAt(i + 2)) >= 0) {
      const byte = hexValue(s.charCodeAt(i + 1)) * 16 + hexValue(s.charCodeAt(i + 2))
      out += isUnreserved(byte) ? String.fromCharCode(byte) : `%${HEX[byte >> 4]}${HEX[byte & 15]}`
      i += 2
    } else if (c < 0x21 || c > 0x7e) {
      // Node hands request targets over as latin1, one char per byte; anything wider is UTF-8 encoded.
      const bytes = c <= 0xff ? [c] : Buffer.from(s[i]!, 'utf8')
      for (const b of bytes) out += `%${HEX[b >> 4]}${HEX[b & 15]}`
    } else out += s[i]
  }
  return out
}

/** RFC 3986 §5.2.4 remove_dot_segments, for an absolute path. */
function removeDotSegments(path: string): string {
  const segs = path.split('/')
  const out: string[] = []
  const last = segs.length - 1
  for (let i = 1; i <= last; i++) {
    const seg = segs[i]!
    if (seg === '.' || seg === '..') {
      if (seg === '..') out.pop()
      // A trailing dot segment leaves the directory: "/a/b/.." is "/a/".
      if (i === last) out.push('')
      continue
    }
    out.push(seg)
  }
  return `/${out.join('/')}`
}

/**
 * The canonical form of an origin-form request target (path and query): dot segments removed
 * (path only), percent-encoding normalised (§6.2.2). Returns `url` itself when it already is
 * canonical. A target that is not a path (`*`) is returned as it is.
 */
export function canonicalTarget(url: string): string {
  if (isCanonicalTarget(url) || url.charCodeAt(0) !== 0x2f) return url
  const q = url.indexOf('?')
  const path = removeDotSegments(normalizePercent(q === -1 ? url : url.slice(0, q)))
  return q === -1 ? path : `${path}?${normalizePercent(url.slice(q + 1))}`
}

let lastHost = ''
let lastHostScheme = ''
let lastCanonicalHost = ''

/**
 * The canonical authority (RFC 3986 §6.2.2.1, §6.2.3): lower-case, the scheme's default port
 * dropped (`Host: x:80` is `x`), a port without leading zeros. Remembers the last answer: a site
 * sees the same Host over and over.
 */
export function canonicalHost(host: string, scheme: string): string {
  if (host === lastHost && scheme === lastHostScheme) return lastCanonicalHost
  const lower = host.toLowerCase()
  const colon = lower.lastIndexOf(':')
  let out = lower
  if (colon !== -1 && colon > lower.lastIndexOf(']')) {
    const port = lower.slice(colon + 1)
    if (/^\d+$/.test(port)) {
      const n = Number(port)
      const def = scheme === 'https' ? 443 : 80
      out = n === def ? lower.slice(0, colon) : `${lower.slice(0, colon)}:${n}`
    }
  }
  lastHost = host
  lastHostScheme = scheme
  lastCanonicalHost = out
  return out
}

/**
 * Splits an absolute http(s) URL into its canonical scheme, host and target, or undefined when it
 * is not one. The target is taken from the text as written (not WHATWG's serialisation) and
 * canonicalised like a request's, so a purge names exactly what a request stored.
 */
export function canonicalAbsolute(s: string): { scheme: 'http' | 'https'; host: string; target: string } | undefined {
  const m = /^(https?):\/\/([^/?#]+)([^#]*)/i.exec(s)
  if (m === null) return undefined
  const scheme = m[1]!.toLowerCase() as 'http' | 'https'
  const rest = m[3]!
  const target = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest
  return { scheme, host: canonicalHost(m[2]!, scheme), target: canonicalTarget(target) }
}
