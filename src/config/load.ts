import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import { Ajv, type ErrorObject } from 'ajv'
import { ConfigSchema, UpstreamSchema, type StrataConfig, type UpstreamConfig } from './schema.js'
import { StrataError } from '../core/errors.js'
import { trustEntryProblem } from '../core/trust-proxy.js'

export const DEFAULT_PORT = 2001
export const DEFAULT_ADMIN_PORT = 4001

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false })
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
    default:
      return `${fieldName(e.instancePath, data)}: ${e.message ?? 'is invalid'}`
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
  if (Array.isArray(cfg.upstreams)) {
    const ids = new Set<string>()
    cfg.upstreams.forEach((u, i) => {
      if (typeof u?.url === 'string') {
        const p = httpUrlProblem(u.url)
        if (p) problems.push(`upstreams[${i}].url: ${p}`)
      }
      if (typeof u?.id === 'string') {
        if (ids.has(u.id)) problems.push(`upstreams[${i}].id: duplicate id "${u.id}"`)
        ids.add(u.id)
      }
    })
    if (cfg.upstreams.length > 0 && cfg.upstreams.every((u) => u?.backup === true)) {
      problems.push('upstreams: at least one upstream must not be a backup')
    }
  }
  const sticky = cfg.balancer?.sticky as Record<string, unknown> | null | undefined
  if (sticky && typeof sticky === 'object') {
    if (sticky['mode'] === 'insert') {
      if (sticky['ttlMs'] !== undefined) problems.push('balancer.sticky.ttlMs: only for mode "learn" (insert mode uses maxLifeMs / maxIdleMs)')
      sticky['cookie'] ??= 'strata_srv'
    } else if (sticky['mode'] === 'learn') {
      for (const k of ['secret', 'maxLifeMs', 'maxIdleMs']) if (sticky[k] !== undefined) problems.push(`balancer.sticky.${k}: only for mode "insert"`)
      if (sticky['cookie'] === undefined) problems.push('balancer.sticky.cookie: is required in mode "learn" (the application\'s session cookie)')
      sticky['ttlMs'] ??= 3_600_000
    }
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
  return problems.length > 0 ? { problems } : { upstream: Object.freeze(raw as UpstreamConfig) }
}
