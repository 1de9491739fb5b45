import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import { Ajv, type ErrorObject } from 'ajv'
import { ConfigSchema, UpstreamSchema, type BalancerConfig, type PoolConfig, type PoolInput, type RouteConfig, type StrataConfig, type UpstreamConfig } from './schema.js'
import { describeMatch, normalizeStripPrefix, shadowedRoutes, stripPrefixProblem } from './route-rules.js'
import { StrataError } from '../core/errors.js'
import { trustEntryProblem } from '../core/trust-proxy.js'

export const DEFAULT_PORT = 2001
export const DEFAULT_ADMIN_PORT = 4001

// verbose: an error carries its schema, whose optional `messages` (keyword → text) say in the
// config's own words what a bare pattern or minItems would not.
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false, verbose: true })
const validate = ajv.compile(ConfigSchema)
const validateUpstreamSchema = ajv.compile(UpstreamSchema)

/** A config error that lists every problem, each naming its field (e.g. `upstreams[1].url: …`). */
export class ConfigError extends StrataError {
  readonly problems: readonly string[]
  constructor(problems: string[]) {
    super('STRATA_CONFIG_INVALID', `invalid config:\n  ${problems.join('\n  ')}`)
    this.problems = problems
  }
}

/** `parent.key`, or `parent["a b"]` for a key that is not a plain name (as fieldName writes it). */
const child = (parent: string, key: string): string => (/^[A-Za-z_$][\w$-]*$/.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`)

/**
 * `/upstreams/1/url` → `upstreams[1].url`. `data` is the validated value: a segment is an index
 * only where the value there is an array (an object key "0" is `["0"]`, not `[0]`), and a key that
 * is not a plain name is quoted (`esi["a b"]`), so every path names one field unambiguously.
 */
function fieldName(instancePath: string, data: unknown, extra?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  if (extra !== undefined) parts.push(extra)
  let out = ''
  let here: unknown = data
  for (const key of parts) {
    if (Array.isArray(here) && /^\d+$/.test(key)) out += `[${key}]`
    else if (/^[A-Za-z_$][\w$-]*$/.test(key)) out += out ? `.${key}` : key
    else out += `[${JSON.stringify(key)}]`
    here = here !== null && typeof here === 'object' && Object.hasOwn(here, key) ? (here as Record<string, unknown>)[key] : undefined
  }
  return out || '(root)'
}

function describe(e: ErrorObject, data: unknown): string {
  switch (e.keyword) {
    case 'additionalProperties':
      return `${fieldName(e.instancePath, data, String(e.params['additionalProperty']))}: unknown key`
    case 'required':
      return `${fieldName(e.instancePath, data, String(e.params['missingProperty']))}: is required`
    case 'enum':
    case 'const':
      return `${fieldName(e.instancePath, data)}: must be one of ${JSON.stringify(e.params['allowedValues'] ?? [e.params['allowedValue']])}`
    default: {
      const messages = (e.parentSchema as { messages?: Record<string, string> } | undefined)?.messages
      return `${fieldName(e.instancePath, data)}: ${messages?.[e.keyword] ?? e.message ?? 'is invalid'}`
    }
  }
}

/**
 * Unions produce one error per branch; keep the most useful. For a literal union (e.g. the
 * balancer algorithm) collapse the branches into one "must be one of" line.
 */
function collect(errors: ErrorObject[], data: unknown): string[] {
  const byPath = new Map<string, ErrorObject[]>()
  for (const e of errors) {
    const list = byPath.get(e.instancePath) ?? []
    list.push(e)
    byPath.set(e.instancePath, list)
  }
  const out: string[] = []
  for (const [path, list] of byPath) {
    const consts = list.filter((e) => e.keyword === 'const')
    const anyOf = list.some((e) => e.keyword === 'anyOf')
    if (anyOf && consts.length > 0) {
      // A union of literals and another type (`workers`: an integer or "auto") names both.
      const literalBranches = new Set(consts.map((e) => e.schemaPath.slice(0, e.schemaPath.lastIndexOf('/'))))
      const others = [
        ...new Set(
          list
            .filter((e) => e.keyword !== 'const' && e.keyword !== 'anyOf' && !literalBranches.has(e.schemaPath.slice(0, e.schemaPath.lastIndexOf('/'))))
            .map((e) => e.message ?? 'is invalid'),
        ),
      ]
      out.push(`${fieldName(path, data)}: must be one of ${consts.map((e) => JSON.stringify(e.params['allowedValue'])).join(', ')}${others.length > 0 ? `, or a value that ${others.join(' and ')}` : ''}`)
      continue
    }
    // A deeper error explains an anyOf better than "must match a schema in anyOf".
    const deeper = errors.some((e) => e.instancePath.startsWith(path + '/'))
    for (const e of list) {
      if (e.keyword === 'anyOf' && (deeper || list.length > 1)) continue
      out.push(describe(e, data))
    }
  }
  return [...new Set(out)]
}

function httpUrlProblem(value: string): string | undefined {
  let u: URL
  try {
    u = new URL(value)
  } catch {
    return 'must be an http(s) URL'
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must be an http(s) URL'
  if (u.username || u.password) return 'must not contain credentials'
  if (u.search || u.hash) return 'must not contain a query or fragment'
  return undefined
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

/**
 * Validates a parsed config object, applies every default, checks the cross-field rules that a
 * JSON schema can't express, and returns a deep-frozen copy. The caller's object is not mutated.
 * Throws ConfigError listing every problem.
 */
export function resolveConfig(input: unknown): StrataConfig {
  const raw: Record<string, unknown> = structuredClone(input ?? {}) as Record<string, unknown>
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(['(root): must be a JSON object'])
  // Sub-objects with defaults: let an absent key take its default.
  for (const k of ['listen', 'admin', 'timeouts', 'balancer', 'cache', 'esi', 'log']) if (raw[k] === undefined) raw[k] = {}

  const problems: string[] = []
  if (!validate(raw)) problems.push(...collect(validate.errors ?? [], raw))

  const cfg = raw as unknown as StrataConfig & { admin: { token?: string; port?: number }; listen: { port?: number } }
  // Upstream ids name metrics series and connection pools: unique across every pool.
  const ids = new Map<string, string>()
  if (Array.isArray(cfg.upstreams)) problems.push(...upstreamListProblems(cfg.upstreams, 'upstreams', ids))
  const sticky = cfg.balancer?.sticky as Record<string, unknown> | null | undefined
  problems.push(...stickyProblems(sticky, 'balancer.sticky', 'strata_srv'))
  const pools = isObject(cfg.pools) ? (cfg.pools as unknown as Record<string, PoolInput>) : {}
  for (const [name, pool] of Object.entries(pools)) problems.push(...poolProblems(name, pool, ids))
  if (Array.isArray(cfg.routes)) {
    const schemaOk = !problems.some((p) => p.startsWith('routes'))
    problems.push(...routeProblems(cfg.routes, new Set(['default', ...Object.keys(pools)]), cfg.esi?.enabled !== false, schemaOk))
  }
  for (const field of ['allowedHosts', 'credentialHosts'] as const) {
    const list = cfg.esi?.[field]
    if (!Array.isArray(list)) continue
    list.forEach((h, i) => {
      if (typeof h === 'string' && !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(h)) {
        problems.push(`esi.${field}[${i}]: must be "host" or "host:port"`)
      }
    })
  }
  // The schema already refused wrong types; these rules only look at values of the right shape.
  if (Array.isArray(cfg.cache?.key?.ignoreQuery)) {
    cfg.cache.key.ignoreQuery.forEach((g, i) => {
      if (typeof g === 'string' && !/^[\w.\-*\[\]]+$/.test(g)) problems.push(`cache.key.ignoreQuery[${i}]: must be a parameter name or glob (letters, digits, _ . - *)`)
    })
  }
  if (cfg.admin && typeof cfg.admin.host === 'string' && cfg.admin.enabled !== false) {
    if (cfg.admin.host !== 'localhost' && !isIP(cfg.admin.host) && !/^[A-Za-z0-9.-]+$/.test(cfg.admin.host)) {
      problems.push('admin.host: must be a hostname or IP address')
    }
  }
  if (Array.isArray(cfg.trustProxy)) {
    cfg.trustProxy.forEach((e, i) => {
      const p = typeof e === 'string' ? trustEntryProblem(e) : undefined
      if (p) problems.push(`trustProxy[${i}]: ${p}`)
    })
  }
  if (problems.length > 0) throw new ConfigError(problems)

  const effectivePools = resolvePools(cfg.balancer, pools)
  problems.push(...stickyCookieClashes(cfg.balancer, effectivePools))
  if (problems.length > 0) throw new ConfigError(problems)
  ;(cfg as { pools: Record<string, PoolConfig> }).pools = effectivePools

  cfg.listen.port ??= DEFAULT_PORT
  // "auto": one worker per core this process may use (the number is fixed for this run).
  if ((cfg.workers as number | 'auto') === 'auto') (cfg as { workers: number }).workers = availableParallelism()
  cfg.admin.port ??= DEFAULT_ADMIN_PORT
  // No token configured: generate one for this run (logged once at startup by `strata serve`)
  // rather than run open.
  const generated = cfg.admin.token === undefined
  cfg.admin.token ??= randomBytes(18).toString('base64url')
  delete (cfg as { $schema?: string }).$schema
  const frozen = deepFreeze(cfg as StrataConfig)
  if (generated) generatedTokens.add(frozen)
  return frozen
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * The checks the schema can't express for one list of upstreams (`field`: `upstreams` or
 * `pools.api.upstreams`); `ids` maps every id seen so far, in any pool, to the field that named it.
 */
function upstreamListProblems(list: readonly UpstreamConfig[], field: string, ids: Map<string, string>): string[] {
  const problems: string[] = []
  list.forEach((u, i) => {
    if (typeof u?.url === 'string') {
      const p = httpUrlProblem(u.url)
      if (p) problems.push(`${field}[${i}].url: ${p}`)
    }
    if (typeof u?.id === 'string') {
      const first = ids.get(u.id)
      // Within the top-level list the message stays as it always was; across pools it says where.
      if (first !== undefined) problems.push(`${field}[${i}].id: duplicate id "${u.id}"${first.startsWith(`${field}[`) ? '' : ` (also ${first}; upstream ids are unique across every pool)`}`)
      else ids.set(u.id, `${field}[${i}]`)
    }
    if (u?.resolveEveryMs !== undefined && u.resolve !== true) problems.push(`${field}[${i}].resolveEveryMs: only with "resolve": true`)
  })
  if (list.length > 0 && list.every((u) => u?.backup === true)) problems.push(`${field}: at least one upstream must not be a backup`)
  return problems
}

/**
 * Per-mode sticky rules (insert: a signed cookie of strata's own; learn: the application's
 * session cookie), and the mode's defaults filled in place: an insert cookie named
 * `defaultCookie`, a learn ttlMs of one hour.
 */
function stickyProblems(sticky: Record<string, unknown> | null | undefined, field: string, defaultCookie: string): string[] {
  if (!sticky || typeof sticky !== 'object') return []
  const problems: string[] = []
  if (sticky['mode'] === 'insert') {
    if (sticky['ttlMs'] !== undefined) problems.push(`${field}.ttlMs: only for mode "learn" (insert mode uses maxLifeMs / maxIdleMs)`)
    sticky['cookie'] ??= defaultCookie
  } else if (sticky['mode'] === 'learn') {
    for (const k of ['secret', 'maxLifeMs', 'maxIdleMs']) if (sticky[k] !== undefined) problems.push(`${field}.${k}: only for mode "insert"`)
    if (sticky['cookie'] === undefined) problems.push(`${field}.cookie: is required in mode "learn" (the application's session cookie)`)
    sticky['ttlMs'] ??= 3_600_000
  }
  return problems
}

const POOL_NAME = /^[A-Za-z0-9._-]{1,64}$/

/** A pool's name, upstreams and own sticky settings (the schema checked the shapes). */
function poolProblems(name: string, pool: PoolInput, ids: Map<string, string>): string[] {
  const field = child('pools', name)
  const problems: string[] = []
  if (name === 'default') problems.push(`${field}: the name "default" is reserved (the default pool is the top-level upstreams and balancer)`)
  else if (!POOL_NAME.test(name)) problems.push(`${field}: a pool name is 1 to 64 letters, digits, '.', '_' or '-'`)
  if (!isObject(pool)) return problems
  if (Array.isArray(pool.upstreams)) problems.push(...upstreamListProblems(pool.upstreams, `${field}.upstreams`, ids))
  const sticky = isObject(pool.balancer) ? (pool.balancer['sticky'] as Record<string, unknown> | null | undefined) : undefined
  // A pool's own insert cookie defaults to a name of its own, so pools never share one.
  problems.push(...stickyProblems(sticky, `${field}.balancer.sticky`, `strata_srv_${name}`))
  return problems
}

/**
 * Route rules across fields: the pool exists, ESI is not asked for where it is off, stripPrefix
 * can strip something, and no route hides behind an earlier one (only when the routes' shapes
 * are valid, so the comparison reads well-formed matches).
 */
function routeProblems(routes: readonly RouteConfig[], poolNames: ReadonlySet<string>, esiOn: boolean, schemaOk: boolean): string[] {
  const problems: string[] = []
  routes.forEach((r, i) => {
    if (!isObject(r)) return
    if (typeof r.pool === 'string' && !poolNames.has(r.pool)) problems.push(`routes[${i}].pool: unknown pool "${r.pool}" (known: ${[...poolNames].join(', ')})`)
    if (r.esi?.enabled === true && !esiOn) problems.push(`routes[${i}].esi.enabled: needs esi.enabled (ESI is off for the whole proxy)`)
    if (!schemaOk) return
    if (r.stripPrefix !== undefined && normalizeStripPrefix(r.stripPrefix) === '') problems.push(`routes[${i}].stripPrefix: "${r.stripPrefix}" strips nothing`)
    const p = stripPrefixProblem(r)
    if (p !== undefined) problems.push(`routes[${i}].stripPrefix: ${p}`)
  })
  if (schemaOk) {
    for (const { index, by } of shadowedRoutes(routes)) {
      problems.push(`routes[${index}]: never matches: routes[${by}] matches every request it would (${describeMatch(by, routes[by]!.match)})`)
    }
  }
  return problems
}

/**
 * Every pool in its effective form: the top-level balancer with the keys the pool gives replacing
 * the top-level ones (a nested object given whole, with its own defaults). An inherited
 * insert-mode cookie is renamed `<cookie>_<pool>`: pools that shared one cookie would overwrite
 * each other's pick on every response.
 */
function resolvePools(top: BalancerConfig, pools: Readonly<Record<string, PoolInput>>): Record<string, PoolConfig> {
  const out: Record<string, PoolConfig> = {}
  for (const [name, pool] of Object.entries(pools)) {
    const balancer = { ...structuredClone(top), ...(pool.balancer ?? {}) } as BalancerConfig
    if (pool.balancer?.sticky === undefined && balancer.sticky?.mode === 'insert') {
      balancer.sticky = { ...balancer.sticky, cookie: `${balancer.sticky.cookie}_${name}` }
    }
    out[name] = { upstreams: pool.upstreams, balancer }
  }
  return out
}

/** Two pools (the default one included) whose insert-mode sticky cookies share a name. */
function stickyCookieClashes(top: BalancerConfig, pools: Readonly<Record<string, PoolConfig>>): string[] {
  const owners = new Map<string, string>()
  if (top.sticky?.mode === 'insert') owners.set(top.sticky.cookie, 'default')
  const problems: string[] = []
  for (const [name, pool] of Object.entries(pools)) {
    const sticky = pool.balancer.sticky
    if (sticky?.mode !== 'insert') continue
    const owner = owners.get(sticky.cookie)
    if (owner !== undefined) problems.push(`${child('pools', name)}.balancer.sticky.cookie: "${sticky.cookie}" is also the sticky cookie of pool "${owner}" (each pool needs its own)`)
    else owners.set(sticky.cookie, name)
  }
  return problems
}

/** Configs whose admin token was generated by the loader (no `admin.token` in the file). */
const generatedTokens = new WeakSet<StrataConfig>()

/** Whether `config.admin.token` was generated for this run rather than configured. */
export function adminTokenGenerated(config: StrataConfig): boolean {
  return generatedTokens.has(config)
}

/** Reads and resolves a JSON config file. Throws ConfigError (with the file named) on any problem. */
export function loadConfigFile(path: string, keep?: { admin?: { token: string } }): StrataConfig {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError([`${path}: cannot read file (${(err as NodeJS.ErrnoException).code ?? String(err)})`])
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new ConfigError([`${path}: not valid JSON (${(err as Error).message})`])
  }
  // A reload keeps the token generated at startup when the file still names none.
  if (keep?.admin !== undefined && parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    const p = parsed as Record<string, unknown>
    const admin = p['admin']
    if (admin === undefined) p['admin'] = { token: keep.admin.token }
    else if (admin !== null && typeof admin === 'object' && (admin as Record<string, unknown>)['token'] === undefined) (admin as Record<string, unknown>)['token'] = keep.admin.token
  }
  return resolveConfig(parsed)
}

/**
 * Validates one upstream entry (the admin API's POST /upstreams body) with the same rules as the
 * config file's `upstreams[]`; returns the defaulted entry or the problems, each naming its field.
 */
export function resolveUpstream(input: unknown): { upstream: UpstreamConfig } | { problems: string[] } {
  const raw = structuredClone(input)
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { problems: ['(body): must be a JSON object'] }
  const problems: string[] = []
  if (!validateUpstreamSchema(raw)) problems.push(...collect(validateUpstreamSchema.errors ?? [], raw))
  const url = (raw as { url?: unknown }).url
  if (typeof url === 'string') {
    const p = httpUrlProblem(url)
    if (p) problems.push(`url: ${p}`)
  }
  const entry = raw as { resolve?: unknown; resolveEveryMs?: unknown }
  if (entry.resolveEveryMs !== undefined && entry.resolve !== true) problems.push('resolveEveryMs: only with "resolve": true')
  // The admin API adds servers; a name to resolve belongs in the config file (then a reload).
  if (entry.resolve === true) problems.push('resolve: names to resolve are configured in the config file and applied by a reload; POST adds one server')
  return problems.length > 0 ? { problems } : { upstream: Object.freeze(raw as UpstreamConfig) }
}
