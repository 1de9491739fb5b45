import type { FastifyInstance } from 'fastify'
import { ConfigError } from '../config/load.js'

/**
 * POST /config/reload: re-reads the config file strata was started with (as SIGHUP does). 200
 * `{ changed, restartRequired }`; an invalid file is a 400 naming every problem, and the old
 * config stays in force.
 */
export function configRoutes(reload: () => Promise<{ changed: string[]; restartRequired: string[] }>): (app: FastifyInstance) => void {
  return (app) => {
    app.post('/config/reload', async (_request, reply) => {
      try {
        return await reload()
      } catch (err) {
        if (err instanceof ConfigError) return reply.code(400).send({ error: err.code, message: err.message, problems: err.problems })
        throw err
      }
    })
  }
}
