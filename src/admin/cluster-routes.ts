import type { FastifyInstance, FastifyRequest } from 'fastify'
import { aggregateChange, aggregateStats, type AdminAnswer, type AdminCall, type WorkerReply } from './cluster-aggregate.js'

/** What the primary's admin routes need from the worker processes (see src/cluster/primary.ts). */
export interface WorkerFanout {
  /** One live worker answers (a read: every worker holds the same upstreams and purge history). */
  one(call: AdminCall): Promise<AdminAnswer>
  /**
   * Every live worker answers, each within `timeouts.workerCallMs`. A change (not GET) is also
   * remembered and replayed to workers started later, so a restarted worker holds the same state.
   */
  all(call: AdminCall): Promise<WorkerReply[]>
}

/**
 * The admin routes of the primary with `"workers": N`: every route the workers' admin API has,
 * served by forwarding. GET /stats aggregates every worker; other reads come from one worker;
 * anything else is a change and goes to every worker (a purge empties every worker's L1, an
 * upstream drained is drained everywhere), answered by `aggregateChange`. The routes themselves,
 * and their validation, stay those of a single process.
 */
export function clusterRoutes(workers: WorkerFanout): (app: FastifyInstance) => void {
  const callOf = (request: FastifyRequest): AdminCall => ({
    method: request.method,
    url: request.url,
    ...(request.headers.authorization === undefined ? {} : { authorization: request.headers.authorization }),
    ...(request.body === undefined ? {} : { body: request.body }),
  })
  return (app) => {
    app.get('/stats', async (request, reply) => {
      const answer = aggregateStats(await workers.all(callOf(request)), {
        pid: process.pid,
        uptimeSeconds: Math.round(process.uptime()),
        rssBytes: process.memoryUsage.rss(),
        heapUsedBytes: process.memoryUsage().heapUsed,
      })
      return reply.code(answer.status).header('content-type', answer.contentType).send(answer.body)
    })

    app.route({
      method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      url: '/*',
      handler: async (request, reply) => {
        const call = callOf(request)
        let answer: AdminAnswer
        if (request.method === 'GET' || request.method === 'HEAD') answer = await workers.one(call)
        else answer = aggregateChange(request.url.split('?', 1)[0]!, await workers.all(call))
        return reply.code(answer.status).header('content-type', answer.contentType).send(answer.body)
      },
    })
  }
}
