import type { StrataConfig } from './schema.js'

/**
 * What a config reload (SIGHUP, POST /config/reload) may change while strata runs, as pure
 * functions: which keys differ, which of them apply at once, and the config in force afterwards.
 *
 * Applied at runtime: the upstream list (added, removed, updated in place when only the weight or
 * backup flag changes, replaced when the url does), every `balancer.*` key (algorithm, hashing,
 * sticky, health checks, passive, slow start, drain, retries), the cache's rules and lifetimes
 * (`cache.rules`, `defaultTtl`, `grace`, `staleIfError`, `hitForPass`, `enabled`, `coalesce`),
 * every ESI setting but `esi.enabled`, `log.level`, the `routes` (compared as one list: order
 * decides the match), and each named pool (`pools.<name>`: added, removed, or its upstreams or
 * effective balancer changed; a change of the top-level `balancer` that a pool inherits is a change
 * of that pool too, since pools are compared in their effective form). Everything else (listen and admin
 * addresses, the token, timeouts, cache sizes, Redis, the cache key, `esi.enabled`, `log.access`,
 * `serverTiming`) is reported as needing a restart and stays as it was.
 */
const RUNTIME_KEYS: ReadonlySet<string> = new Set([
  'upstreams',
  'cache.rules',
  'cache.defaultTtl',
  'cache.grace',
  'cache.staleIfError',
  'cache.hitForPass',
  'cache.enabled',
  'cache.coalesce',
  'esi.paths',
  'esi.allowedHosts',
  'esi.maxDepth',
  'esi.maxConcurrentIncludes',
  'esi.maxIncludes',
  'esi.fragmentTimeoutMs',
  'esi.onError',
  'esi.forwardHeaders',
  'esi.compress',
  'esi.assembledPagesBytes',
  'log.level',
  'routes',
])

/** Every key of these sections applies at runtime (a key added to the section later, too). */
const RUNTIME_SECTIONS: ReadonlySet<string> = new Set(['balancer', 'pools'])

const isRuntime = (key: string): boolean => RUNTIME_KEYS.has(key) || RUNTIME_SECTIONS.has(key.slice(0, key.indexOf('.')))

/**
 * Sections compared key by key (for `pools`, pool by pool: `pools.api`); the rest (upstreams,
 * routes, serverTiming) as a whole.
 */
const SECTIONS = ['listen', 'admin', 'timeouts', 'balancer', 'cache', 'esi', 'log', 'pools'] as const

export interface ReloadPlan {
  /** Keys whose new value is now in force. */
  changed: string[]
  /** Keys that differ but only take effect after a restart; their old value stays. */
  restartRequired: string[]
  /** The config in force after the reload (old values for the restart-only keys), frozen. */
  effective: StrataConfig
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/** Dotted keys (`cache.rules`, `listen.port`, `upstreams`, `pools.api`) whose values differ. */
export function configDiff(old: StrataConfig, next: StrataConfig): string[] {
  const out: string[] = []
  const o = old as unknown as Record<string, Record<string, unknown>>
  const n = next as unknown as Record<string, Record<string, unknown>>
  for (const top of new Set([...Object.keys(o), ...Object.keys(n)])) {
    if ((SECTIONS as readonly string[]).includes(top)) {
      for (const k of new Set([...Object.keys(o[top] ?? {}), ...Object.keys(n[top] ?? {})])) {
        if (!same(o[top]?.[k], n[top]?.[k])) out.push(`${top}.${k}`)
      }
    } else if (!same(o[top], n[top])) out.push(top)
  }
  return out
}

export function planReload(old: StrataConfig, next: StrataConfig): ReloadPlan {
  const diff = configDiff(old, next)
  const changed = diff.filter(isRuntime)
  const restartRequired = diff.filter((k) => !isRuntime(k))
  const effective = structuredClone(old) as unknown as Record<string, Record<string, unknown>>
  const src = next as unknown as Record<string, Record<string, unknown>>
  for (const key of changed) {
    // A pool name may hold dots (`pools.api.v2`): the key is split at its first dot only.
    const dot = key.indexOf('.')
    const top = dot === -1 ? key : key.slice(0, dot)
    if (dot === -1) {
      effective[top] = structuredClone(src[top]) as Record<string, unknown>
      continue
    }
    const sub = key.slice(dot + 1)
    const section = (effective[top] ??= {})
    // A pool removed by the new file leaves the effective config too.
    if (src[top] === undefined || !Object.hasOwn(src[top], sub)) delete section[sub]
    else section[sub] = structuredClone(src[top][sub])
  }
  return { changed, restartRequired, effective: deepFreeze(effective) as unknown as StrataConfig }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
