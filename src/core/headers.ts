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
 * Removes hop-by-hop headers, including any named in `Connection` (RFC 9110 §7.6.1), returning a
 * new object. Header names are expected lower-case (as Node and undici deliver them).
 */
export function stripHopByHop(headers: Headers): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  let extra: Set<string> | undefined
  const conn = headers['connection']
  if (conn !== undefined) {
    extra = new Set()
    for (const v of Array.isArray(conn) ? conn : [conn]) {
      for (const token of v.split(',')) {
        const t = token.trim().toLowerCase()
        if (t) extra.add(t)
      }
    }
  }
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined) continue
    if (HOP_BY_HOP.has(name) || extra?.has(name)) continue
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
