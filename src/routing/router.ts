import type { RouteConfig } from '../config/schema.js'
import { normalizeAddPrefix, normalizeStripPrefix, wildcardSuffix } from '../config/route-rules.js'

export { shadowedRoutes } from '../config/route-rules.js'

/** A route's cache keys; each one given replaces the top-level `cache` key for its requests. */
export interface RouteCachePolicy {
  enabled?: boolean
  defaultTtl?: number
  grace?: number
  staleIfError?: number
}

/** What the request path needs of the route a request matched. */
export interface Route {
  /** Position in config.routes; -1 for the implicit default route. */
  readonly index: number
  /** 'default' when the route names none. */
  readonly pool: string
  readonly cache: RouteCachePolicy | undefined
  /** The route's esi.enabled. */
  readonly esi: boolean | undefined
  /** The upstream path for a client target (path+query): stripPrefix then addPrefix; identity when neither. */
  upstreamPath(target: string): string
}

const identity = (target: string): string => target

/** The route of a request no route matches: the default pool, the top-level cache and ESI settings. */
export const DEFAULT_ROUTE: Route = Object.freeze({ index: -1, pool: 'default', cache: undefined, esi: undefined, upstreamPath: identity })

type Headers = Record<string, string | string[] | undefined>

/**
 * `Example.COM:8080` → `example.com`, `[::1]:80` → `[::1]`: the Host header's name, lower-cased,
 * without its port (RFC 9110 §7.2: host and optional port).
 */
export function hostName(host: string): string {
  let end = host.length
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']')
    if (close !== -1) end = close + 1
  } else {
    const colon = host.indexOf(':')
    if (colon !== -1) end = colon
  }
  // A fully qualified `example.com.` names the same host as `example.com`.
  if (end > 1 && host.charCodeAt(end - 1) === 46 /* . */) end--
  const name = end === host.length ? host : host.slice(0, end)
  return name.toLowerCase()
}

/**
 * The path rewrite of a route: strip whole leading segments, then prepend. `/api` strips `/api`,
 * `/api/x` and `/api?q` but not `/apix`; the result always starts with '/'. Built once per route.
 */
export function pathRewriter(stripPrefix: string | undefined, addPrefix: string | undefined): (target: string) => string {
  const strip = stripPrefix === undefined ? '' : normalizeStripPrefix(stripPrefix)
  const add = addPrefix === undefined ? '' : normalizeAddPrefix(addPrefix)
  if (strip === '' && add === '') return identity
  const stripped =
    strip === ''
      ? identity
      : (target: string): string => {
          if (!target.startsWith(strip)) return target
          if (target.length === strip.length) return '/'
          const next = target.charCodeAt(strip.length)
          if (next === 47 /* / */) return target.slice(strip.length)
          if (next === 63 /* ? */ || next === 35 /* # */) return `/${target.slice(strip.length)}`
          return target
        }
  if (add === '') return stripped
  return (target) => {
    const path = stripped(target)
    // An asterisk-form or absolute-form target is not a path to prefix.
    return path.charCodeAt(0) === 47 ? add + path : path
  }
}

/** One compiled route: its conditions as ready-made values, tested cheapest first. */
interface Compiled {
  readonly route: Route
  readonly methods: ReadonlySet<string> | undefined
  readonly pathPrefix: string | undefined
  /** Exact host, lower-cased. */
  readonly host: string | undefined
  /** For `*.example.com`: `.example.com`. */
  readonly hostSuffix: string | undefined
  /** Header name, lower-cased (Node's header keys are). */
  readonly header: string | undefined
  readonly headerValue: string | undefined
}

function compileRoute(config: RouteConfig, index: number): Compiled {
  const m = config.match
  const suffix = m.host === undefined ? undefined : wildcardSuffix(m.host)
  const route: Route = Object.freeze({
    index,
    pool: config.pool ?? 'default',
    cache: config.cache === undefined ? undefined : Object.freeze({ ...config.cache }),
    esi: config.esi?.enabled,
    upstreamPath: pathRewriter(config.stripPrefix, config.addPrefix),
  })
  return {
    route,
    methods: m.methods === undefined ? undefined : new Set(m.methods),
    pathPrefix: m.pathPrefix,
    host: m.host === undefined || suffix !== undefined ? undefined : m.host.toLowerCase(),
    hostSuffix: suffix,
    header: m.header?.name.toLowerCase(),
    headerValue: m.header?.value,
  }
}

function headerHolds(value: string | string[] | undefined, expected: string | undefined): boolean {
  if (value === undefined) return false
  if (expected === undefined) return true
  if (typeof value === 'string') return value === expected
  for (const v of value) if (v === expected) return true
  return false
}

/**
 * The routes of a config compiled once into a first-match matcher. With no routes `match` returns
 * the shared default route without looking at the request; otherwise each route's conditions are
 * tested from the cheapest (a Set lookup, a prefix) to the dearest (the Host header, normalized
 * at most once per request).
 */
export class Router {
  readonly #routes: readonly Compiled[]
  readonly #usesHost: boolean
  /** The last Host header seen and its normalized name: a site's requests mostly share one. */
  #lastHost = ''
  #lastName = ''
  /** No routes configured: match() returns the default route at once. */
  readonly empty: boolean

  private constructor(routes: readonly Compiled[]) {
    this.#routes = routes
    this.#usesHost = routes.some((r) => r.host !== undefined || r.hostSuffix !== undefined)
    this.empty = routes.length === 0
  }

  static compile(routes: readonly RouteConfig[]): Router {
    return new Router(routes.map(compileRoute))
  }

  /** The compiled routes, in config order (for the admin API and tests). */
  get routes(): readonly Route[] {
    return this.#routes.map((r) => r.route)
  }

  /**
   * First route whose every condition holds, else the default route. host: the Host header value
   * (port ignored, case-insensitive); path: the request target's path (a query may follow).
   */
  match(method: string, host: string, path: string, headers: Headers): Route {
    if (this.empty) return DEFAULT_ROUTE
    let name = ''
    if (this.#usesHost) {
      if (host !== this.#lastHost) {
        this.#lastName = hostName(host)
        this.#lastHost = host
      }
      name = this.#lastName
    }
    for (const r of this.#routes) {
      if (r.methods !== undefined && !r.methods.has(method)) continue
      if (r.pathPrefix !== undefined && !path.startsWith(r.pathPrefix)) continue
      if (r.host !== undefined && name !== r.host) continue
      // Any depth of subdomain, never the bare domain: `a.example.com` ends with `.example.com`.
      if (r.hostSuffix !== undefined && (name.length <= r.hostSuffix.length || !name.endsWith(r.hostSuffix))) continue
      if (r.header !== undefined && !headerHolds(headers[r.header], r.headerValue)) continue
      return r.route
    }
    return DEFAULT_ROUTE
  }
}
