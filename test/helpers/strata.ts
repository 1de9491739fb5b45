import { Writable } from 'node:stream'
import { pino } from 'pino'
import { createStrata, type Strata } from '../../src/app.js'
import { resolveConfig } from '../../src/config/load.js'
import { startOrigin, type Handler, type Origin } from './origin.js'

export const TEST_TOKEN = 'test-token-0123456789'

export interface RunningStrata {
  strata: Strata
  url: string
  adminUrl: string
  token: string
  /** Parsed pino lines logged so far. */
  logs: Record<string, unknown>[]
  close(): Promise<void>
}

/** Deep-merges plain objects (arrays and scalars replace). */
function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a }
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k]
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur) ? merge(cur as Record<string, unknown>, v as Record<string, unknown>) : v
  }
  return out
}

/**
 * Starts strata in-process on ephemeral ports (proxy and admin on 127.0.0.1) in front of the given
 * upstream URLs, capturing its log lines for assertions.
 */
export async function startStrata(upstreams: string[], overrides: Record<string, unknown> = {}): Promise<RunningStrata> {
  const base = {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0, token: TEST_TOKEN },
    upstreams: upstreams.map((url, i) => ({ id: `b${i + 1}`, url })),
    log: { level: 'info' },
  }
  const config = resolveConfig(merge(base, overrides))
  const logs: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    },
  })
  const logger = pino({ level: config.log.level }, sink)
  const strata = createStrata(config, { logger })
  const addr = await strata.listen()
  return { strata, url: addr.proxy.url, adminUrl: addr.admin?.url ?? '', token: config.admin.token, logs, close: () => strata.close() }
}

/** One real origin per handler and a strata in front of them (ids b1, b2…); `close` stops all of it. */
export async function startBehind(handlers: Handler[], overrides: Record<string, unknown> = {}): Promise<{ origins: Origin[]; s: RunningStrata; close(): Promise<void> }> {
  const origins = await Promise.all(handlers.map((h) => startOrigin(h)))
  const s = await startStrata(origins.map((o) => o.url), overrides)
  return {
    origins,
    s,
    async close() {
      await s.close()
      await Promise.all(origins.map((o) => o.close()))
    },
  }
}
