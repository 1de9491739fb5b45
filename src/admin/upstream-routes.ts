import type { FastifyInstance } from 'fastify'
import type { Balancer } from '../balancer/index.js'
import { resolveUpstream } from '../config/load.js'
import { badBody } from './server.js'

/**
 * Runtime control of the upstream pool. Changes apply at once; removing or draining a server
 * never drops its in-flight requests.
 */
export function upstreamRoutes(balancer: Balancer): (app: FastifyInstance) => void {
  return (app) => {
    app.get('/upstreams', async () => ({ upstreams: balancer.list() }))

    app.post('/upstreams', async (request, reply) => {
      const r = resolveUpstream(request.body)
      if ('problems' in r) badBody(r.problems.join('; '))
      const snapshot = balancer.add(r.upstream)
      return reply.code(201).send({ upstream: snapshot })
    })

    app.delete<{ Params: { id: string } }>('/upstreams/:id', async (request) => {
      balancer.remove(request.params.id)
      return { removed: request.params.id }
    })

    app.post<{ Params: { id: string } }>('/upstreams/:id/drain', async (request) => ({ upstream: balancer.drain(request.params.id) }))
    app.post<{ Params: { id: string } }>('/upstreams/:id/enable', async (request) => ({ upstream: balancer.enable(request.params.id) }))
  }
}
