import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'

/**
 * GET / : the operations dashboard, one static page (src/admin/dashboard.html, copied next to the
 * compiled file at build). It holds no data and no token: it asks the operator for the token,
 * keeps it in sessionStorage and calls the same admin JSON API as everything else (/stats,
 * /pools, /purges, /purge, /pools/:pool/upstreams/:id/drain…) with it as a bearer header.
 */
export function dashboardRoutes(): (app: FastifyInstance) => void {
  // Read once at startup: a missing page is a broken build, better seen before the first visit.
  const page = readFileSync(new URL('./dashboard.html', import.meta.url))
  return (app) => {
    app.get('/', async (_request, reply) =>
      reply
        .header('content-type', 'text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        // Everything is inline in the one file; nothing is loaded from anywhere else.
        .header('content-security-policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'")
        .header('x-content-type-options', 'nosniff')
        .send(page),
    )
  }
}
