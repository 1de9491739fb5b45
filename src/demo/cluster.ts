import { readFileSync } from 'node:fs'
import { resolveConfig } from '../config/load.js'
import { createStrata } from '../app.js'
import type { Logger } from '../observability/logger.js'
import { NewsDb } from './news-db.js'
import { demoRedisFromEnv } from './news-reads.js'
import { startDemoWebserver, type DemoWebserver } from './webserver.js'

export interface DemoOptions {
  logger: Logger
  port?: number
  adminPort?: number
  /** Host strata listens on (the demo config says 0.0.0.0). */
  host?: string
  /**
   * A redis URL shared by both webservers' data caches (L2 + invalidation bus). Defaults to the
   * `STRATA_DEMO_REDIS` environment variable; `null` forces L1 only.
   */
  redis?: string | null
}


export interface Demo {
  readonly proxyUrl: string
  readonly adminUrl: string
  readonly adminToken: string
  readonly webservers: readonly DemoWebserver[]
  close(): Promise<void>
}

/**
 * The demo cluster in one process tree: two "B" webservers on free loopback ports and strata in
 * front of them on 2001 (admin on 4001), configured from config/demo.json. No Redis needed: each
 * webserver's data cache is then L1 only; with `STRATA_DEMO_REDIS` they share it as L2.
 */
export async function startDemo(opts: DemoOptions): Promise<Demo> {
  const template = JSON.parse(readFileSync(new URL('../../config/demo.json', import.meta.url), 'utf8')) as Record<string, any>
  const db = new NewsDb(30)
  const redis = opts.redis === null ? undefined : (opts.redis ?? demoRedisFromEnv())
  const started = await Promise.allSettled(['b1', 'b2'].map((id) => startDemoWebserver({ id, db, dataCache: { redis }, logger: opts.logger })))
  const webservers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  const failed = started.find((r) => r.status === 'rejected')
  if (failed !== undefined) {
    await Promise.all(webservers.map((w) => w.close()))
    throw failed.reason
  }
  const raw = {
    ...template,
    listen: { ...template['listen'], ...(opts.host === undefined ? {} : { host: opts.host }), ...(opts.port === undefined ? {} : { port: opts.port }) },
    admin: { ...template['admin'], ...(opts.adminPort === undefined ? {} : { port: opts.adminPort }) },
    upstreams: webservers.map((w) => ({ id: w.id, url: w.url, weight: 1 })),
  }
  const config = resolveConfig(raw)
  const strata = createStrata(config, { logger: opts.logger })
  let addresses
  try {
    addresses = await strata.listen()
  } catch (err) {
    await Promise.all([strata.close(), ...webservers.map((w) => w.close())])
    throw err
  }
  opts.logger.info(
    {
      open: addresses.proxy.url,
      admin: addresses.admin?.url,
      adminToken: config.admin.token,
      webservers: webservers.map((w) => ({ id: w.id, url: w.url })),
      dataCache: redis === undefined ? 'l1-only' : 'l1+redis',
    },
    'demo cluster ready',
  )
  return {
    proxyUrl: addresses.proxy.url,
    adminUrl: addresses.admin?.url ?? '',
    adminToken: config.admin.token,
    webservers,
    async close() {
      await strata.close()
      await Promise.all(webservers.map((w) => w.close()))
    },
  }
}
