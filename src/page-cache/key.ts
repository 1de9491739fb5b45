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
