import type { RouteConfig, RouteMatchConfig } from './schema.js'

/**
 * Pure rules about route configs that both the loader (to name a problem before strata starts)
 * and the router (src/routing/router.ts, which re-exports them) need. They live in config/ so the
 * loader does not import the routing tier.
 */

/** `*.example.com` → `.example.com` (what a matching host must end with); undefined for an exact host. */
export const wildcardSuffix = (host: string): string | undefined => (host.startsWith('*.') ? host.slice(1).toLowerCase() : undefined)

/**
 * Whether every host that `later` accepts is accepted by `earlier` (both given): equal names,
 * an exact name under a wildcard (any depth), or a wildcard under an equal or wider wildcard.
 * The bare domain never falls under its own wildcard.
 */
function hostImplied(earlier: string, later: string): boolean {
  const e = earlier.toLowerCase()
  const l = later.toLowerCase()
  if (e === l) return true
  const suffix = wildcardSuffix(e)
  if (suffix === undefined) return false
  // `later` exact: `a.b.example.com` ends with `.example.com`. `later` a wildcard `*.b.example.com`:
  // its suffix `.b.example.com` ends with `.example.com`, so every host it accepts does too.
  const laterName = wildcardSuffix(l) ?? l
  return laterName.endsWith(suffix)
}

/**
 * Whether `earlier` matches every request that `later` matches: each condition `earlier` sets is
 * implied by `later`'s. Sufficient, not necessary: two routes whose union of conditions happens
 * to cover a third are not detected, and neither are header values `later` cannot see.
 */
export function matchImplied(earlier: RouteMatchConfig, later: RouteMatchConfig): boolean {
  if (earlier.host !== undefined && (later.host === undefined || !hostImplied(earlier.host, later.host))) return false
  if (earlier.pathPrefix !== undefined && (later.pathPrefix === undefined || !later.pathPrefix.startsWith(earlier.pathPrefix))) return false
  if (earlier.methods !== undefined) {
    if (later.methods === undefined) return false
    const allowed = new Set(earlier.methods)
    if (!later.methods.every((m) => allowed.has(m))) return false
  }
  if (earlier.header !== undefined) {
    const h = later.header
    if (h === undefined || h.name.toLowerCase() !== earlier.header.name.toLowerCase()) return false
    if (earlier.header.value !== undefined && h.value !== earlier.header.value) return false
  }
  return true
}

/**
 * Routes that can never match because an earlier route matches every request they would (first
 * match wins). Each shadowed route is listed once, with the first route that shadows it.
 */
export function shadowedRoutes(routes: readonly RouteConfig[]): Array<{ index: number; by: number }> {
  const out: Array<{ index: number; by: number }> = []
  for (let j = 1; j < routes.length; j++) {
    for (let i = 0; i < j; i++) {
      if (matchImplied(routes[i]!.match, routes[j]!.match)) {
        out.push({ index: j, by: i })
        break
      }
    }
  }
  return out
}

/** `routes[0] needs only pathPrefix "/static/"`, or `routes[0] has no condition`: why it shadows. */
export function describeMatch(index: number, match: RouteMatchConfig): string {
  const parts: string[] = []
  if (match.host !== undefined) parts.push(`host "${match.host}"`)
  if (match.pathPrefix !== undefined) parts.push(`pathPrefix "${match.pathPrefix}"`)
  if (match.methods !== undefined) parts.push(`methods ${match.methods.join(', ')}`)
  if (match.header !== undefined) parts.push(`header "${match.header.name}"${match.header.value === undefined ? ' present' : ` = "${match.header.value}"`}`)
  return parts.length === 0 ? `routes[${index}] has no condition` : `routes[${index}] needs only ${parts.join(' and ')}`
}

/**
 * A stripPrefix strips whole path segments: `/api` (or `/api/`) strips `/api`, `/api/x` and
 * `/api?q`, never `/apix`. The normalized form has no trailing slash; '' strips nothing.
 */
export const normalizeStripPrefix = (prefix: string): string => prefix.replace(/\/+$/, '')

/** An addPrefix without its trailing slashes, so `/v2/` + `/x` is `/v2/x`; '' adds nothing. */
export const normalizeAddPrefix = (prefix: string): string => prefix.replace(/\/+$/, '')

/**
 * Why a route's stripPrefix could never apply to a request the route matches, or undefined. A
 * matched path starts with `pathPrefix`; the strip applies when that path starts with the strip
 * prefix at a segment boundary. It never can when neither prefix starts with the other, or when
 * `pathPrefix` continues the strip prefix's last segment (`/apix` after `/api`).
 */
export function stripPrefixProblem(route: RouteConfig): string | undefined {
  if (route.stripPrefix === undefined || route.match.pathPrefix === undefined) return undefined
  const strip = normalizeStripPrefix(route.stripPrefix)
  const path = route.match.pathPrefix
  if (strip === '') return undefined
  if (strip.startsWith(path)) return undefined // some matched paths are longer and may strip
  if (!path.startsWith(strip) || (path.length > strip.length && !'/?#'.includes(path[strip.length]!))) {
    return `strips nothing: every path this route matches starts with match.pathPrefix "${path}", which does not begin with the segment(s) "${strip}"`
  }
  return undefined
}
