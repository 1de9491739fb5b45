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
 * Copies `headers` without the hop-by-hop fields, including any named in `Connection` (RFC 9110
 * §7.6.1), and without the names in `drop`. Header names are expected lower-case (as Node and
 * undici deliver them). Every place that forwards or stores headers goes through here.
 */
export function stripHopByHop(headers: Headers, drop?: ReadonlySet<string>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  let named: Set<string> | undefined
  const conn = headers['connection']
  if (conn !== undefined) {
    named = new Set()
    for (const token of (Array.isArray(conn) ? conn.join(',') : conn).split(',')) {
      const t = token.trim().toLowerCase()
      if (t) named.add(t)
    }
  }
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || HOP_BY_HOP.has(name) || drop?.has(name) || named?.has(name)) continue
    out[name] = value
  }
  return out
}

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
