import type { StrataConfig } from './schema.js'

/** What `strata check-config --print` shows in place of a secret. */
export const SECRET_MASK = '***'

/**
 * The effective config (every default applied) as plain JSON data, with its secrets masked: the
 * admin token, the sticky-cookie signing secrets (every pool's), and any password inside a Redis URL. The
 * operator sees what each key defaulted to without the output becoming a secret itself.
 */
export function printableConfig(config: StrataConfig): Record<string, unknown> {
  const out = JSON.parse(JSON.stringify(config)) as Record<string, any>
  if (out['admin']?.token !== undefined) out['admin'].token = SECRET_MASK
  maskSticky(out['balancer'])
  for (const pool of Object.values(out['pools'] ?? {})) maskSticky((pool as { balancer?: unknown }).balancer)
  const cache = out['cache']
  if (cache !== undefined) cache.redis = maskRedis(cache.redis)
  return out
}

/** A balancer's sticky-cookie signing secret (the top-level one, and every pool's). */
function maskSticky(balancer: unknown): void {
  const sticky = (balancer as { sticky?: unknown } | undefined)?.sticky as { secret?: unknown } | null | undefined
  if (sticky !== null && typeof sticky === 'object' && sticky.secret !== undefined) sticky.secret = SECRET_MASK
}

function maskRedis(option: unknown): unknown {
  if (typeof option === 'string') return maskUrl(option)
  if (option !== null && typeof option === 'object') {
    const o = option as Record<string, unknown>
    for (const k of ['cluster', 'sentinels']) if (Array.isArray(o[k])) o[k] = (o[k] as unknown[]).map((u) => (typeof u === 'string' ? maskUrl(u) : u))
  }
  return option
}

/** `redis://user:pw@host` → `redis://user:***@host`; a URL without a password is unchanged. */
function maskUrl(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return url
  }
  if (u.password === '') return url
  u.password = SECRET_MASK
  return u.href.replace(/%2A%2A%2A@/, `${SECRET_MASK}@`)
}
