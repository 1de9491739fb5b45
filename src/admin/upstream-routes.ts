import type { FastifyInstance } from 'fastify'
import { resolveUpstream } from '../config/load.js'
import type { Balancer } from '../balancer/index.js'
import { StrataError, isStrataError } from '../core/errors.js'
import { badBody } from './server.js'
import { DEFAULT_POOL, poolHolding, requirePool, type PoolView, type PoolsView } from './pools-view.js'

/** `:pool` is absent on today's `/upstreams…` routes, which mean the default pool. */
interface PoolParams {
  pool?: string
}

/** GET /pools's line for one pool: its balancing policy and its upstreams as the balancer sees them. */
function describePool(pool: PoolView): Record<string, unknown> {
  const discovered = pool.discovered?.()
  return {
    name: pool.name,
    algorithm: pool.config.algorithm,
    sticky: pool.config.sticky?.mode ?? null,
    healthCheck: pool.config.healthCheck !== null,
    upstreams: pool.balancer.list(),
    ...(discovered === undefined ? {} : { discovered }),
  }
}

/**
 * Runtime control of the upstream pools. `/pools/:pool/upstreams…` and today's `/upstreams…`
 * (the default pool) are one set of handlers mounted twice. Changes apply at once; removing or
 * draining a server never drops its in-flight requests.
 */
export function upstreamRoutes(pools: PoolsView): (app: FastifyInstance) => void {
  const poolOf = (params: PoolParams): PoolView => requirePool(pools, params.pool ?? DEFAULT_POOL)
  /** Runs a change on one upstream; under /pools/:pool an unknown id says which pool it was looked for in. */
  const onUpstream = <T>(params: PoolParams & { id: string }, change: (balancer: Balancer, id: string) => T): T => {
    const pool = poolOf(params)
    try {
      return change(pool.balancer, params.id)
    } catch (err) {
      if (params.pool === undefined || !isStrataError(err) || err.code !== 'STRATA_ADMIN_NOT_FOUND') throw err
      throw new StrataError('STRATA_ADMIN_NOT_FOUND', `${err.message} in pool "${pool.name}"`, { cause: err })
    }
  }
  return (app) => {
    app.get('/pools', async () => ({ pools: pools.list().map(describePool) }))
    app.get<{ Params: { pool: string } }>('/pools/:pool', async (request) => describePool(requirePool(pools, request.params.pool)))

    for (const base of ['/upstreams', '/pools/:pool/upstreams']) {
      app.get<{ Params: PoolParams }>(base, async (request) => ({ upstreams: poolOf(request.params).balancer.list() }))

      app.post<{ Params: PoolParams }>(base, async (request, reply) => {
        const pool = poolOf(request.params)
        const r = resolveUpstream(request.body)
        if ('problems' in r) badBody(r.problems.join('; '))
        const holder = poolHolding(pools, r.upstream.id)
        if (holder !== undefined) throw new StrataError('STRATA_ADMIN_CONFLICT', `upstream "${r.upstream.id}" already exists in pool "${holder.name}" (ids are unique across pools)`)
        return reply.code(201).send({ upstream: pool.balancer.add(r.upstream) })
      })

      app.delete<{ Params: PoolParams & { id: string } }>(`${base}/:id`, async (request) => {
        onUpstream(request.params, (b, id) => b.remove(id))
        return { removed: request.params.id }
      })

      app.post<{ Params: PoolParams & { id: string } }>(`${base}/:id/drain`, async (request) => ({ upstream: onUpstream(request.params, (b, id) => b.drain(id)) }))
      app.post<{ Params: PoolParams & { id: string } }>(`${base}/:id/enable`, async (request) => ({ upstream: onUpstream(request.params, (b, id) => b.enable(id)) }))
    }
  }
}
