import { isIP } from 'node:net'

/**
 * Where may an include point? (The SSRF gate.) Relative `src` resolves against the page URL and
 * stays on the page's origin; an absolute `src` on another origin must name a host listed in
 * `esi.allowedHosts` (`host` = any port, `host:port` = that port only), over http or https.
 * Link-local and cloud metadata addresses are refused whatever the allowlist says.
 *
 * Not covered here: a allowlisted *name* that resolves to a forbidden address (DNS rebinding);
 * the allowlist is the operator's statement of trust in those names.
 */

/** Host names of cloud metadata services (refused even when allowlisted). */
const METADATA_HOSTS = new Set(['metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data', 'instance-data.ec2.internal'])

function ipv4ToInt(ip: string): number {
  const p = ip.split('.').map(Number)
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0
}

function inV4(ip: number, base: string, bits: number): boolean {
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
  return (ip & mask) === (ipv4ToInt(base) & mask)
}

/** Expands an IPv6 address to its 8 16-bit groups (handles `::` and an embedded IPv4 tail). */
function ipv6Groups(ip: string): number[] | undefined {
  let s = ip
  const lastColon = s.lastIndexOf(':')
  const tail = s.slice(lastColon + 1)
  if (tail.includes('.')) {
    if (isIP(tail) !== 4) return undefined
    const v4 = ipv4ToInt(tail)
    s = `${s.slice(0, lastColon)}:${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`
  }
  const dbl = s.indexOf('::')
  const parse = (x: string) => (x ? x.split(':').map((g) => Number.parseInt(g, 16)) : [])
  let groups: number[]
  if (dbl < 0) groups = parse(s)
  else {
    const h = parse(s.slice(0, dbl))
    const r = parse(s.slice(dbl + 2))
    const fill = 8 - h.length - r.length
    if (fill < 0) return undefined
    groups = [...h, ...new Array<number>(fill).fill(0), ...r]
  }
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined
}

/**
 * True for addresses an include must never reach: IPv4 link-local 169.254.0.0/16 (AWS, GCP, Azure
 * metadata at 169.254.169.254), Alibaba's 100.100.100.200, "this network" 0.0.0.0/8, IPv6
 * link-local fe80::/10, the AWS IPv6 metadata address fd00:ec2::254, and IPv4-mapped or
 * IPv4-compatible forms of the IPv4 ones.
 */
export function isForbiddenAddress(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  const kind = isIP(h)
  if (kind === 4) {
    const n = ipv4ToInt(h)
    return inV4(n, '169.254.0.0', 16) || inV4(n, '0.0.0.0', 8) || h === '100.100.100.200'
  }
  if (kind === 6) {
    const g = ipv6Groups(h.toLowerCase())
    if (!g) return true
    if ((g[0]! & 0xffc0) === 0xfe80) return true // fe80::/10
    if (g[0] === 0xfd00 && g[1] === 0x0ec2 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0 && g[6] === 0 && g[7] === 0x254) return true
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible): judge the embedded IPv4 address.
    if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && (g[5] === 0xffff || g[5] === 0)) {
      const v4 = `${g[6]! >>> 8}.${g[6]! & 0xff}.${g[7]! >>> 8}.${g[7]! & 0xff}`
      if (g[5] === 0xffff || g[6] !== 0) return isForbiddenAddress(v4)
    }
    return false
  }
  return METADATA_HOSTS.has(h.toLowerCase().replace(/\.$/, ''))
}

function defaultPort(protocol: string): string {
  return protocol === 'https:' ? '443' : '80'
}

/** Does `url` match an `allowedHosts` entry (`host` or `host:port`, IPv6 in brackets)? */
function hostAllowed(url: URL, allowedHosts: readonly string[]): boolean {
  const host = url.hostname.toLowerCase().replace(/\.$/, '')
  const port = url.port || defaultPort(url.protocol)
  for (const raw of allowedHosts) {
    const entry = raw.trim().toLowerCase()
    let eHost = entry
    let ePort: string | undefined
    if (entry.startsWith('[')) {
      const close = entry.indexOf(']')
      eHost = entry.slice(0, close + 1)
      if (entry[close + 1] === ':') ePort = entry.slice(close + 2)
    } else {
      const colon = entry.lastIndexOf(':')
      if (colon >= 0 && entry.indexOf(':') === colon) {
        eHost = entry.slice(0, colon)
        ePort = entry.slice(colon + 1)
      }
    }
    if (eHost.replace(/\.$/, '') !== host) continue
    if (ePort === undefined || ePort === port) return true
  }
  return false
}

type Resolution = URL | { error: string }

/** Per credentialHosts list, per page URL: whether each (shared, resolved) include URL may get credentials. */
const credMemo = new WeakMap<readonly string[], WeakMap<URL, WeakMap<URL, boolean>>>()

/**
 * May the client's credentials (Cookie, Authorization) go with an include of `url`? Only to the
 * page's own origin and to hosts in `esi.credentialHosts` (same form as `esi.allowedHosts`): an
 * allowlisted third party may serve fragments without learning the visitor's session. Both URLs
 * are the shared objects `resolveIncludeSrc` works with, so the answer is remembered per pair (an
 * `origin` comparison allocates two strings; a cached page asks this for every include).
 */
export function credentialsAllowed(url: URL, pageUrl: URL, credentialHosts: readonly string[], table: WeakMap<URL, boolean> = credentialTable(pageUrl, credentialHosts)): boolean {
  let ok = table.get(url)
  if (ok === undefined) table.set(url, (ok = url.origin === pageUrl.origin || hostAllowed(url, credentialHosts)))
  return ok
}

/** The remembered answers of `credentialsAllowed` for one page URL (fetch once per page, pass to each call). */
export function credentialTable(pageUrl: URL, credentialHosts: readonly string[]): WeakMap<URL, boolean> {
  let pages = credMemo.get(credentialHosts)
  if (pages === undefined) credMemo.set(credentialHosts, (pages = new WeakMap()))
  let table = pages.get(pageUrl)
  if (table === undefined) pages.set(pageUrl, (table = new WeakMap()))
  return table
}

/**
 * Resolutions are pure functions of (src, base, allowlist), and a site has few distinct srcs, so
 * they are remembered per base URL object: callers reuse the URL objects of the pages they serve
 * (and every resolved URL is itself reused as the base of its own includes), so a cached page's
 * includes cost two identity lookups and one lookup of a string already hashed, instead of a URL
 * parse and an address check each. Bounded per base. The URLs are shared: treat them as read-only.
 */
const PER_BASE_MAX = 1_000
const memo = new WeakMap<readonly string[], WeakMap<URL, Map<string, Resolution>>>()

/**
 * Resolves an include `src` against the page URL, or says why it is refused. Never throws.
 * The returned URL may be shared between requests: do not mutate it.
 */
export function resolveIncludeSrc(src: string, pageUrl: URL, allowedHosts: readonly string[]): Resolution {
  let bases = memo.get(allowedHosts)
  if (bases === undefined) memo.set(allowedHosts, (bases = new WeakMap()))
  let table = bases.get(pageUrl)
  if (table === undefined) bases.set(pageUrl, (table = new Map()))
  let r = table.get(src)
  if (r === undefined) {
    r = resolveUncached(src, pageUrl, allowedHosts)
    // Sources rendered from variables (a cookie in the src) can be many under one page.
    if (table.size >= PER_BASE_MAX) table.clear()
    table.set(src, r)
  }
  return r
}

function resolveUncached(src: string, pageUrl: URL, allowedHosts: readonly string[]): Resolution {
  const s = src.trim()
  if (!s) return { error: 'empty src' }
  let url: URL
  try {
    url = new URL(s, pageUrl)
  } catch {
    return { error: `invalid src ${JSON.stringify(s.slice(0, 200))}` }
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { error: `scheme ${url.protocol} is not allowed` }
  if (url.username || url.password) return { error: 'credentials in src are not allowed' }
  if (isForbiddenAddress(url.hostname)) return { error: `host ${url.hostname} is a link-local or metadata address` }
  url.hash = ''
  if (url.origin === pageUrl.origin) return url
  if (!hostAllowed(url, allowedHosts)) return { error: `host ${url.host} is not in esi.allowedHosts` }
  return url
}
