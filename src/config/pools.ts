import type { PoolConfig, StrataConfig } from './schema.js'

/** The name of the pool formed by the top-level `upstreams` and `balancer`. */
export const DEFAULT_POOL = 'default'

/**
 * Every pool of a config in one list, the default pool first (the top-level `upstreams` and
 * `balancer`), then `config.pools` in file order, each with its effective balancer. Whoever builds
 * balancers, metrics or admin views iterates this rather than special-casing the default pool.
 */
export function poolConfigs(config: StrataConfig): Array<{ name: string } & PoolConfig> {
  return [
    { name: DEFAULT_POOL, upstreams: config.upstreams, balancer: config.balancer },
    ...Object.entries(config.pools ?? {}).map(([name, pool]) => ({ name, upstreams: pool.upstreams, balancer: pool.balancer })),
  ]
}
