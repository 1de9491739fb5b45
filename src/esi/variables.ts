import { headerList, headerValue, parseCookies, type Headers } from '../core/headers.js'

/**
 * ESI variables (W3C ESI 1.0 §4). A reference is parsed once at compile time into a `VarRef`;
 * per request a `RequestVars` resolves each variable lazily and memoizes the parsed header
 * (cookies, query, languages, user agent are parsed at most once per request).
 */

/** The variables of ESI 1.0 §4 that strata supports. */
export const VARIABLE_NAMES = [
  'HTTP_ACCEPT_LANGUAGE',
  'HTTP_COOKIE',
  'HTTP_HOST',
  'HTTP_REFERER',
  'HTTP_USER_AGENT',
  'QUERY_STRING',
] as const
export type VariableName = (typeof VARIABLE_NAMES)[number]
const KNOWN = new Set<string>(VARIABLE_NAMES)

/** `$(NAME{key}|default)`, parsed. `known` is false for names strata does not support. */
export interface VarRef {
  readonly name: string
  readonly key?: string
  /** The `|default` fallback (ESI 1.0 §4.2), used when the value is undefined or empty. */
  readonly fallback?: string
  readonly known: boolean
}

/** A value of an ESI variable: list variables (§4.1.2) give booleans. */
export type VarValue = string | boolean | undefined

/** An attribute or vars-block text with variables: literal strings and references in order. */
export type Interpolated = readonly (string | VarRef)[]

const isNameChar = (c: number) => (c >= 65 && c <= 90) || c === 95 || (c >= 48 && c <= 57) // A-Z _ 0-9

/**
 * Parses a variable reference starting at `s[start] === '$'`. Returns undefined when the text is
 * not a well-formed reference (the caller keeps it as literal text). Linear, no regex.
 */
export function parseVarRef(s: string, start: number): { ref: VarRef; end: number } | undefined {
  if (s.charCodeAt(start) !== 36 /* $ */ || s.charCodeAt(start + 1) !== 40 /* ( */) return undefined
  let i = start + 2
  const nameStart = i
  while (i < s.length && isNameChar(s.charCodeAt(i))) i++
  if (i === nameStart) return undefined
  const name = s.slice(nameStart, i)
  let key: string | undefined
  let fallback: string | undefined
  if (s[i] === '{') {
    const close = s.indexOf('}', i + 1)
    if (close < 0) return undefined
    key = s.slice(i + 1, close)
    if (key.includes(')')) return undefined
    // Keys may be quoted: $(HTTP_COOKIE{'name'}).
    if (key.length >= 2 && key.startsWith("'") && key.endsWith("'")) key = key.slice(1, -1)
    i = close + 1
  }
  if (s[i] === '|') {
    i++
    if (s[i] === "'") {
      const close = s.indexOf("'", i + 1)
      if (close < 0) return undefined
      fallback = s.slice(i + 1, close)
      i = close + 1
    } else {
      const close = s.indexOf(')', i)
      if (close < 0) return undefined
      fallback = s.slice(i, close)
      i = close
    }
  }
  if (s[i] !== ')') return undefined
  const ref: VarRef = {
    name,
    known: KNOWN.has(name),
    ...(key !== undefined ? { key } : {}),
    ...(fallback !== undefined ? { fallback } : {}),
  }
  return { ref, end: i + 1 }
}

/**
 * Splits text into literals and variable references. Text that looks like `$(` but is not a
 * well-formed reference stays literal. Returns a plain string when there are no references.
 */
export function parseInterpolated(s: string): Interpolated | string {
  if (!s.includes('$(')) return s
  const parts: (string | VarRef)[] = []
  let lit = ''
  let i = 0
  while (i < s.length) {
    const d = s.indexOf('$(', i)
    if (d < 0) {
      lit += s.slice(i)
      break
    }
    lit += s.slice(i, d)
    const parsed = parseVarRef(s, d)
    if (!parsed) {
      lit += '$('
      i = d + 2
      continue
    }
    if (lit) parts.push(lit)
    lit = ''
    parts.push(parsed.ref)
    i = parsed.end
  }
  if (lit) parts.push(lit)
  return parts.some((p) => typeof p !== 'string') ? parts : parts.join('')
}

/** HTML-escapes a request-derived value before it is written into the page (XSS). */
export function escapeHtml(s: string): string {
  let out = ''
  let last = 0
  for (let i = 0; i < s.length; i++) {
    let rep: string | undefined
    switch (s.charCodeAt(i)) {
      case 38: rep = '&amp;'; break
      case 60: rep = '&lt;'; break
      case 62: rep = '&gt;'; break
      case 34: rep = '&quot;'; break
      case 39: rep = '&#39;'; break
      default: continue
    }
    out += s.slice(last, i) + rep
    last = i + 1
  }
  return last === 0 ? s : out + s.slice(last)
}

interface UserAgentInfo {
  browser: 'MSIE' | 'MOZILLA' | 'OTHER'
  os: 'WIN' | 'MAC' | 'UNIX' | 'OTHER'
  version: string | undefined
}

/** Reads a dotted version number at `i` (digits and dots), without regex backtracking. */
function versionAt(s: string, i: number): string | undefined {
  let j = i
  while (j < s.length && ((s.charCodeAt(j) >= 48 && s.charCodeAt(j) <= 57) || s[j] === '.')) j++
  return j > i ? s.slice(i, j) : undefined
}

/**
 * ESI 1.0 §4 HTTP_USER_AGENT dictionary: browser is MSIE, MOZILLA or OTHER; os is WIN, MAC, UNIX or
 * OTHER; version is the browser's version number.
 */
export function parseUserAgent(ua: string): UserAgentInfo {
  let browser: UserAgentInfo['browser'] = 'OTHER'
  let version: string | undefined
  const msie = ua.indexOf('MSIE ')
  const trident = ua.indexOf('Trident/')
  if (msie >= 0) {
    browser = 'MSIE'
    version = versionAt(ua, msie + 5)
  } else if (trident >= 0) {
    browser = 'MSIE'
    const rv = ua.indexOf('rv:')
    version = rv >= 0 ? versionAt(ua, rv + 3) : undefined
  } else if (ua.startsWith('Mozilla/')) {
    browser = 'MOZILLA'
    version = versionAt(ua, 8)
  }
  let os: UserAgentInfo['os'] = 'OTHER'
  if (ua.includes('Windows') || ua.includes('Win32') || ua.includes('Win64')) os = 'WIN'
  else if (ua.includes('Macintosh') || ua.includes('Mac OS')) os = 'MAC'
  else if (ua.includes('X11') || ua.includes('Linux') || ua.includes('BSD') || ua.includes('SunOS') || ua.includes('Unix')) os = 'UNIX'
  return { browser, os, version }
}

/**
 * The variables of one client request, resolved lazily and at most once each. Built once per
 * assembly and shared by every fragment of the page (variables describe the client request).
 */
export class RequestVars {
  readonly #headers: Headers
  readonly #url: URL
  #cookies: Map<string, string> | undefined
  #query: URLSearchParams | undefined
  #languages: string[] | undefined
  #ua: UserAgentInfo | undefined

  constructor(headers: Headers, url: URL) {
    this.#headers = headers
    this.#url = url
  }

  /** The raw value (no fallback applied). */
  get(ref: VarRef): VarValue {
    switch (ref.name) {
      case 'HTTP_COOKIE': {
        const raw = this.#headers['cookie']
        const cookie = Array.isArray(raw) ? raw.join('; ') : raw
        if (ref.key === undefined) return cookie
        this.#cookies ??= parseCookies(cookie)
        return this.#cookies.get(ref.key)
      }
      case 'HTTP_HOST':
        return headerValue(this.#headers, 'host')
      case 'HTTP_REFERER':
        return headerValue(this.#headers, 'referer')
      case 'QUERY_STRING': {
        if (ref.key === undefined) return this.#url.search.slice(1) || undefined
        this.#query ??= this.#url.searchParams
        return this.#query.get(ref.key) ?? undefined
      }
      case 'HTTP_ACCEPT_LANGUAGE': {
        const raw = headerList(this.#headers, 'accept-language')
        if (ref.key === undefined) return raw
        this.#languages ??= (raw ?? '')
          .split(',')
          .map((l) => l.split(';')[0]!.trim().toLowerCase())
          .filter(Boolean)
        // ESI 1.0 §4.1.2: a list variable is true when the list contains the key; `en` also
        // matches a listed `en-gb` (a language range covers its subtags).
        const k = ref.key.toLowerCase()
        return this.#languages.some((l) => l === k || l.startsWith(k + '-'))
      }
      case 'HTTP_USER_AGENT': {
        const raw = headerValue(this.#headers, 'user-agent')
        if (ref.key === undefined) return raw
        if (raw === undefined) return undefined
        this.#ua ??= parseUserAgent(raw)
        return ref.key === 'browser' ? this.#ua.browser : ref.key === 'os' ? this.#ua.os : ref.key === 'version' ? this.#ua.version : undefined
      }
      default:
        return undefined
    }
  }

  /** The value as text, with the `|default` fallback applied when undefined or empty. */
  text(ref: VarRef): string | undefined {
    const v = this.get(ref)
    if (v === undefined || v === '') return ref.fallback
    return typeof v === 'boolean' ? String(v) : v
  }

  /**
   * Renders interpolated text. Request-derived values are passed through `encode` (HTML escape
   * for output, URL component encoding for `src`); literals and template-authored fallbacks are
   * trusted template text and are written as they are.
   */
  render(parts: Interpolated | string, encode: (s: string) => string): string {
    if (typeof parts === 'string') return parts
    let out = ''
    for (const p of parts) {
      if (typeof p === 'string') out += p
      else {
        const v = this.get(p)
        if (v === undefined || v === '') out += p.fallback ?? ''
        else out += encode(typeof v === 'boolean' ? String(v) : v)
      }
    }
    return out
  }
}
