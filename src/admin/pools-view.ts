import type { Balancer, UpstreamSnapshot } from '../balancer/index.js'
import type { BalancerConfig } from '../config/schema.js'
import { StrataError } from '../core/errors.js'

/** The pool that today's `/upstreams` routes and the top-level `upstreams` array of /stats mean. */
export const DEFAULT_POOL = 'default'

/**
 * What the admin API needs of one upstream pool. The runtime PoolSet (src/routing/pools.ts)
 * satisfies it; admin/ programs against this instead, so it imports nothing of the request path.
 */
export interface PoolView {
  /** 'default' for the top-level upstreams. */
  readonly name: string
  readonly balancer: Balancer
  /** The pool's effective balancer config (algorithm, sticky…); read on each call, so a reload shows. */
  readonly config: BalancerConfig
  /** Discovery members by entry id, when the pool has `resolve: true` entries (else undefined). */
  discovered?(): Record<string, string[]> | undefined
}

/** Every pool, by name; `list()` has the default pool first. */
export interface PoolsView {
  get(name: string): PoolView | undefined
  list(): readonly PoolView[]
}

/** A PoolsView over a fixed list (a single-pool strata, and tests). */
export function poolsOf(pools: readonly PoolView[]): PoolsView {
  const byName = new Map(pools.map((p) => [p.name, p]))
  return { get: (name) => byName.get(name), list: () => pools }
}

/** The named pool, or a 404 naming the pools there are (a typo in a URL should say what was meant). */
export function requirePool(pools: PoolsView, name: string): PoolView {
  const pool = pools.get(name)
  if (pool !== undefined) return pool
  throw new StrataError('STRATA_ADMIN_NOT_FOUND', `no pool "${name}" (pools: ${pools.list().map((p) => p.name).join(', ')})`)
}

/**
 * The pool that already uses `id`, as an upstream or discovery member in its balancer or as the
 * entry id of a `resolve: true` upstream. Ids are unique across pools: they name metrics series
 * and connection pools, which are not per pool.
 */
export function poolHolding(pools: PoolsView, id: string): PoolView | undefined {
  return pools.list().find((p) => p.balancer.get(id) !== undefined || p.discovered?.()?.[id] !== undefined)
}

/** Every upstream of every pool as the metrics collectors read them: a balancer snapshot and its pool. */
export function upstreamSamples(pools: PoolsView): Array<UpstreamSnapshot & { pool: string }> {
  const out: Array<UpstreamSnapshot & { pool: string }> = []
  for (const p of pools.list()) for (const u of p.balancer.list()) out.push({ ...u, pool: p.name })
  return out
}
