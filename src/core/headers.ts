/**
 * Header helpers shared by the proxy, the page cache and ESI.
 */

/** RFC 9110 §7.6.1 hop-by-hop fields, plus the de-facto ones every proxy strips. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

export type HeaderValue = string | string[] | undefined
export type Headers = Record<string, HeaderValue>

/**
 * Fields a `Connection` header may never remove (RFC 9110 §7.6.1 lets a sender name any field, but
 * Host is what the cache key and routing are built from: dropping it would make the upstream
 * answer for its own default host while strata stores the answer under the client's).
 */
const NEVER_CONNECTION_NAMED: ReadonlySet<string> = new Set(['host'])

/** The field names a Connection header lists, lower-cased; undefined when it names none (the common `keep-alive` / `close`). */
export function connectionNamed(conn: HeaderValue): Set<string> | undefined {
  if (conn === undefined || conn === 'keep-alive' || conn === 'close') return undefined
  let named: Set<string> | undefined
  for (const token of (Array.isArray(conn) ? conn.join(',') : conn).split(',')) {
    const t = token.trim().toLowerCase()
    if (t && t !== 'close' && t !== 'keep-alive' && !NEVER_CONNECTION_NAMED.has(t)) (named ??= new Set()).add(t)
  }
  return named
}

/**
 * Copies `headers` without the hop-by-hop fields, including any named in `Connection` (RFC 9110
 * §7.6.1) but never Host, and without the names in `drop`; with `dropForwarding`, also without
 * `Forwarded` and every `X-Forwarded-*` (a client that is not a trusted proxy may not speak for
 * one). Header names are expected lower-case (as Node and undici deliver them). Every place that
 * forwards or stores headers goes through here.
 */
export function stripHopByHop(headers: Headers, drop?: ReadonlySet<string>, dropForwarding = false): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  const named = connectionNamed(headers['connection'])
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || HOP_BY_HOP.has(name) || drop?.has(name) || named?.has(name)) continue
    if (dropForwarding && isForwarding(name)) continue
    out[name] = value
  }
  return out
}

/**
 * Request fields that origins (and the frameworks in front of them) read as the host, the URL or
 * the client's address, but that are not part of the cache key: an origin that reflects one
 * would have a page built for the attacker's value cached for everyone. Dropped from every client.
 */
export const UNKEYED_REQUEST_FIELDS: ReadonlySet<string> = new Set(['x-host', 'x-original-url', 'x-rewrite-url'])

/** `Forwarded` or any `X-Forwarded-*`: kept only from a trusted proxy (`trustProxy`). */
export function isForwarding(name: string): boolean {
  const c = name.charCodeAt(0)
  if (c === 0x78 /* x */) return name.startsWith('x-forwarded-')
  return c === 0x66 /* f */ && name === 'forwarded'
}

function dropFromClient(name: string, trusted: boolean): boolean {
  const c = name.charCodeAt(0)
  if (c === 0x78 /* x */) return UNKEYED_REQUEST_FIELDS.has(name) || (!trusted && name.startsWith('x-forwarded-'))
  return !trusted && c === 0x66 /* f */ && name === 'forwarded'
}

/**
 * A client request's headers as strata acts on them: without the fields its `Connection` header
 * names (they never go upstream, so the cache must not see them either: the Vary variant is
 * computed from what the origin actually received), without the unkeyed fields origins reflect,
 * and, unless the peer is a trusted proxy, without `Forwarded` / `X-Forwarded-*`. Host and the
 * body's framing fields are kept whatever `Connection` says. Returns `headers` itself when there
 * is nothing to drop (the common case: no allocation).
 */
export function clientRequestHeaders(headers: Headers, trusted: boolean): Headers {
  const named = connectionNamed(headers['connection'])
  if (named === undefined) {
    let dirty = false
    for (const name in headers) {
      if (dropFromClient(name, trusted)) {
        dirty = true
        break
      }
    }
    if (!dirty) return headers
  }
  const out: Headers = {}
  for (const name in headers) {
    if (dropFromClient(name, trusted)) continue
    if (named?.has(name) && !FRAMING.has(name)) continue
    out[name] = headers[name]
  }
  return out
}

/** How Node framed the request body: still needed to forward it, whatever Connection names. */
const FRAMING: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding'])

/** First value of a header, or undefined. */
export function headerValue(headers: Headers, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

/** All values of a header joined by ", " (the list form of RFC 9110 §5.3). */
export function headerList(headers: Headers, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(', ') : v
}

/** Parses a cookie header into a Map (first occurrence wins, like browsers send). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>()
  if (!header) return out
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq <= 0) continue
    const name = part.slice(0, eq).trim()
    if (!name || out.has(name)) continue
    let value = part.slice(eq + 1).trim()
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
    out.set(name, value)
  }
  return out
}

/** strata's entry in Via (RFC 9110 §7.6.3): protocol version and pseudonym. */
export const VIA = '1.1 strata'

/** Appends strata's Via entry to a field value (every hop adds one: that is how loops show). */
export function appendVia(existing: string | string[] | undefined): string {
  const v = Array.isArray(existing) ? existing.join(', ') : existing
  return v === undefined || v === '' ? VIA : `${v}, ${VIA}`
}

/** Adds one Set-Cookie value to a response's headers, keeping the ones already there. */
export function appendSetCookie(headers: Record<string, string | string[]>, cookie: string): void {
  const cur = headers['set-cookie']
  headers['set-cookie'] = cur === undefined ? cookie : Array.isArray(cur) ? [...cur, cookie] : [cur, cookie]
}
