import { createServerLogger } from '../observability/logger.js'
import { workerMetricsJson } from '../observability/cluster-metrics.js'
import { createStrata, urlOf, type Strata } from '../app.js'
import { parsePrimaryMessage, type AdminAnswer, type AdminCall, type PrimaryMessage, type WorkerMessage } from './ipc.js'

/**
 * One worker of `"workers": N`: waits for the primary's config, builds the proxy side of strata
 * (its own L1; with Redis, the shared L2 and bus as any node), replays the admin changes made
 * before it started, listens on the shared proxy port and answers the primary's calls in order.
 * Its admin routes run in-process (inject); the primary owns the admin port. It drains and exits
 * 0 on the primary's shutdown message, on SIGTERM/SIGINT, or when the primary is gone.
 */
export async function runWorker(): Promise<number> {
  const start = await firstStart()
  // Stopped (or orphaned) before it was given anything to serve.
  if (start === undefined) return 0
  const config = deepFreeze(start.config)
  const { logger, accessLines, flush } = createServerLogger(process.env['STRATA_LOG_LEVEL'] ?? config.log.level, { sharedStdout: true })
  const log = logger.child({ module: 'worker' })
  const send = (m: WorkerMessage): void => {
    if (process.connected) process.send!(m, undefined, undefined, (err: Error | null) => err && log.debug({ err: err.message }, 'the primary is gone'))
  }

  let strata: Strata
  try {
    strata = createStrata(config, { logger, accessLines, adminListen: false, stickySecret: Buffer.from(start.stickySecret, 'base64url'), ...(start.configFile === undefined ? {} : { configFile: start.configFile }) })
    for (const call of start.journal) {
      const a = await adminCall(strata, call)
      if (a.status >= 300) log.debug({ url: call.url, status: a.status }, 'replayed admin change refused (as it was in the other workers)')
    }
    await strata.listen()
  } catch (err) {
    log.fatal({ err }, 'worker failed to start')
    send({ strata: 'failed', message: (err as Error).message })
    await flush()
    return 3
  }
  send({ strata: 'ready', proxy: urlOf(strata.proxy) })

  // Calls run one at a time, in the order they came: a change replayed at startup and the changes
  // that follow it apply in the same order as in every other worker.
  let queue: Promise<unknown> = Promise.resolve()
  const onMessage = (raw: unknown) => {
    const m = parsePrimaryMessage(raw)
    if (m === undefined) return
    if (m.strata === 'shutdown') return stop('shutdown requested by the primary')
    if (m.strata !== 'call') return
    queue = queue.then(async () => {
      try {
        if (m.call.op === 'metrics') send({ strata: 'reply', id: m.id, metrics: await workerMetricsJson(strata.metrics.registry, process.pid) })
        else send({ strata: 'reply', id: m.id, answer: await adminCall(strata, m.call.request) })
      } catch (err) {
        send({ strata: 'reply', id: m.id, error: (err as Error).message })
      }
    })
  }

  let stop: (reason: string) => void = () => undefined
  const stopped = new Promise<number>((resolve) => {
    let stopping = false
    stop = (reason) => {
      if (stopping) return
      stopping = true
      log.info({ reason }, 'worker shutting down')
      setTimeout(() => {
        log.error('shutdown took too long; exiting')
        resolve(1)
      }, config.timeouts.shutdownMs + 2000).unref()
      strata.close().then(
        () => resolve(0),
        (err: unknown) => {
          log.error({ err }, 'error during shutdown')
          resolve(1)
        },
      )
    }
  })
  process.on('message', onMessage)
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
  // The primary died (or closed the channel): a worker never outlives it.
  process.once('disconnect', () => stop('the primary is gone'))
  // Reloads are the primary's to coordinate (it sends POST /config/reload to every worker); a
  // SIGHUP sent to the whole process group must not end a worker (its default action).
  process.on('SIGHUP', () => log.debug('SIGHUP ignored in a worker: the primary reloads every worker'))
  return stopped.finally(async () => {
    process.off('message', onMessage)
    await flush()
  })
}

/** The primary's start message; undefined if it asks for a shutdown first or goes away. */
function firstStart(): Promise<(PrimaryMessage & { strata: 'start' }) | undefined> {
  return new Promise((resolve) => {
    const onMessage = (raw: unknown) => {
      const m = parsePrimaryMessage(raw)
      if (m?.strata !== 'start' && m?.strata !== 'shutdown') return
      process.off('message', onMessage)
      resolve(m.strata === 'start' ? m : undefined)
    }
    process.on('message', onMessage)
    process.once('disconnect', () => resolve(undefined))
    process.send?.({ strata: 'hello' } satisfies WorkerMessage)
  })
}

/** Runs an admin request through this worker's admin routes, in-process. */
async function adminCall(strata: Strata, call: AdminCall): Promise<AdminAnswer> {
  if (strata.admin === null) throw new Error('this worker has no admin routes')
  const res = await strata.admin.inject({
    method: call.method as 'GET',
    url: call.url,
    headers: { ...(call.authorization === undefined ? {} : { authorization: call.authorization }), ...(call.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(call.body === undefined ? {} : { payload: JSON.stringify(call.body) }),
  })
  return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? 'application/json; charset=utf-8'), body: res.body }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
