import cluster, { type Worker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { Counter, Gauge, Registry } from 'prom-client'
import type { StrataConfig } from '../config/schema.js'
import type { Logger } from '../observability/logger.js'
import { StrataError } from '../core/errors.js'
import { aggregateMetricsText } from '../observability/cluster-metrics.js'
import { createClusterAdmin, urlOf, type StrataAddresses } from '../app.js'
import { VERSION } from '../version.js'
import { parseWorkerMessage, type AdminAnswer, type AdminCall, type PrimaryMessage, type WorkerCall, type WorkerMessage } from './ipc.js'
import { restartDelay } from './backoff.js'
import { aggregateChange, type WorkerReply } from '../admin/cluster-aggregate.js'
import { ConfigError, loadConfigFile } from '../config/load.js'
import { planReload } from '../config/reload.js'

/** The environment variable that tells a forked process it is a strata worker. */
export const WORKER_ENV = 'STRATA_WORKER'

/** Changes remembered for replay to restarted workers; past this, later ones are not (logged). */
const MAX_JOURNAL = 10_000

interface Slot {
  readonly index: number
  worker: Worker | undefined
  ready: boolean
  startedAt: number
  quickDeaths: number
  /** Journal entries the current worker has been given (in its start message or since). */
  given: number
  restartTimer: NodeJS.Timeout | undefined
}

interface Pending {
  worker: Worker
  resolve(m: WorkerMessage & { strata: 'reply' }): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

/**
 * The primary process of `"workers": N` (node:cluster). It forks N workers that each build the
 * proxy side of strata and share the proxy port, and runs the admin API itself: changes are sent
 * to every worker over IPC, each call bounded by `timeouts.workerCallMs` so a hung worker cannot
 * hang the admin API. A worker that dies is restarted (with backoff) and first replays the admin
 * changes made so far, so it holds the same upstreams as its siblings. close() drains them all.
 */
export class ClusterPrimary {
  readonly #config: StrataConfig
  readonly #log: Logger
  readonly #slots: Slot[]
  readonly #pending = new Map<number, Pending>()
  readonly #journal: AdminCall[] = []
  #journalFull = false
  #nextId = 1
  #stopping = false
  #admin: ReturnType<typeof createClusterAdmin> | null = null
  readonly #registry = new Registry()
  readonly #restarts: Counter
  #closing: Promise<void> | undefined

  readonly #configFile: string | undefined
  readonly #stickySecret: string
  /** The config in force in the workers (changes with a reload), for GET /status. */
  #current: StrataConfig
  #reloading: Promise<unknown> = Promise.resolve()

  constructor(config: StrataConfig, logger: Logger, opts: { configFile?: string } = {}) {
    this.#configFile = opts.configFile
    this.#log = logger.child({ module: 'cluster' })
    // The workers must agree on every generated secret: a sticky cookie issued by one is verified by
    // another, also after a reload. The admin token is already generated once, by the loader.
    this.#stickySecret = randomBytes(32).toString('base64url')
    if (config.balancer.sticky?.mode === 'learn' && config.cache.redis === null) {
      this.#log.warn('balancer.sticky mode "learn" without cache.redis: each worker learns its own sessions, so a session sticks only while the same worker serves it; configure cache.redis to share them')
    }
    this.#config = config
    this.#current = config
    this.#slots = Array.from({ length: config.workers }, (_, index) => ({ index, worker: undefined, ready: false, startedAt: 0, quickDeaths: 0, given: 0, restartTimer: undefined }))
    const slots = this.#slots
    new Gauge({ name: 'strata_workers', help: 'Worker processes serving the proxy port.', registers: [this.#registry], collect() { this.set(slots.filter((s) => s.ready).length) } })
    this.#restarts = new Counter({ name: 'strata_worker_restarts_total', help: 'Workers restarted after they died.', registers: [this.#registry] })
  }

  /** Forks every worker, waits until each listens, then opens the admin API. */
  async start(): Promise<StrataAddresses> {
    const started = this.#slots.map((slot) => this.#fork(slot))
    let proxy: StrataAddresses['proxy']
    try {
      proxy = (await Promise.all(started))[0]!
    } catch (err) {
      this.#stopping = true
      for (const s of this.#slots) s.worker?.kill('SIGKILL')
      throw err
    }
    if (this.#config.admin.enabled) {
      this.#admin = createClusterAdmin(this.#config, {
        logger: this.#log,
        workers: this,
        metrics: { text: () => this.#metricsText() },
        reload: () => this.reload(),
        currentConfig: () => this.#current,
      })
      await this.#admin.listen({ host: this.#config.admin.host, port: this.#config.admin.port })
    }
    const addresses: StrataAddresses = { proxy, admin: this.#admin === null ? null : urlOf(this.#admin) }
    this.#log.info({ listening: addresses, version: VERSION, workers: this.pids(), upstreams: this.#config.upstreams.map((u) => u.id) }, 'strata listening')
    return addresses
  }

  /** The pids of the workers that are ready. */
  pids(): number[] {
    return this.#slots.flatMap((s) => (s.ready && s.worker?.process.pid !== undefined ? [s.worker.process.pid] : []))
  }

  /** Stops the admin API and every worker gracefully (each runs its own shutdown), then resolves. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stopping = true
      for (const s of this.#slots) clearTimeout(s.restartTimer)
      const exits = this.#slots.flatMap((s) => {
        const w = s.worker
        if (w === undefined || w.isDead()) return []
        const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()))
        // A worker still starting has no requests to drain and no handler yet: a signal ends it.
        if (s.ready) this.#send(w, { strata: 'shutdown' })
        else w.process.kill('SIGTERM')
        return [exited]
      })
      await this.#admin?.close()
      // Each worker bounds its own drain by shutdownMs; one that does not exit shortly after is killed.
      const deadline = setTimeout(() => {
        for (const s of this.#slots) if (s.worker !== undefined && !s.worker.isDead()) s.worker.process.kill('SIGKILL')
      }, this.#config.timeouts.shutdownMs + 3000)
      await Promise.all(exits)
      clearTimeout(deadline)
    })()
    return this.#closing
  }

  /**
   * Re-reads the config file in every worker (SIGHUP, POST /config/reload), one reload at a time.
   * The primary checks the file first: an invalid one throws a ConfigError naming every problem
   * and no worker is touched. Answers what changed (as a single process does); a worker that did
   * not answer makes it a STRATA_WORKER_UNAVAILABLE error (the others have reloaded).
   */
  reload(): Promise<{ changed: string[]; restartRequired: string[] }> {
    const run = this.#reloading.then(() => this.#reload())
    this.#reloading = run.catch(() => undefined)
    return run
  }

  async #reload(): Promise<{ changed: string[]; restartRequired: string[] }> {
    if (this.#configFile === undefined) throw new StrataError('STRATA_ADMIN_CONFLICT', 'strata was not started from a config file, so there is nothing to reload')
    let next: StrataConfig
    try {
      next = loadConfigFile(this.#configFile, { admin: { token: this.#config.admin.token } })
    } catch (err) {
      if (err instanceof ConfigError) this.#log.error({ file: this.#configFile, problems: err.problems }, 'config reload rejected; the old config stays in force')
      throw err
    }
    const plan = planReload(this.#current, next)
    const answer = aggregateChange('/config/reload', await this.all({ method: 'POST', url: '/config/reload', authorization: `Bearer ${this.#config.admin.token}` }))
    const body = JSON.parse(answer.body) as { changed: string[]; restartRequired: string[]; message?: string }
    if (answer.status !== 200) throw new StrataError('STRATA_WORKER_UNAVAILABLE', body.message ?? `the workers answered ${answer.status}`)
    this.#current = plan.effective
    this.#log.info({ file: this.#configFile, changed: body.changed, restartRequired: body.restartRequired, workers: this.pids() }, 'config reloaded in every worker')
    return { changed: body.changed, restartRequired: body.restartRequired }
  }

  // --- WorkerFanout (the admin routes' view of the workers) -------------------------------------

  async one(call: AdminCall): Promise<AdminAnswer> {
    const problems: string[] = []
    for (const s of this.#slots) {
      if (!s.ready || s.worker === undefined) continue
      try {
        return this.#answer(await this.#call(s.worker, { op: 'admin', request: call }))
      } catch (err) {
        problems.push(`pid ${s.worker.process.pid}: ${(err as Error).message}`)
      }
    }
    throw new StrataError('STRATA_WORKER_UNAVAILABLE', problems.length === 0 ? 'no worker is running' : `no worker answered (${problems.join('; ')})`)
  }

  async all(call: AdminCall): Promise<WorkerReply[]> {
    if (call.method !== 'GET' && call.method !== 'HEAD') this.#record(call)
    const ready = this.#slots.filter((s) => s.ready && s.worker !== undefined)
    return Promise.all(
      ready.map(async (s): Promise<WorkerReply> => {
        const w = s.worker!
        const pid = w.process.pid ?? 0
        if (call.method !== 'GET' && call.method !== 'HEAD') s.given = this.#journal.length
        try {
          return { pid, answer: this.#answer(await this.#call(w, { op: 'admin', request: call })) }
        } catch (err) {
          return { pid, error: (err as Error).message }
        }
      }),
    )
  }

  // --- internals --------------------------------------------------------------------------------

  /**
   * A change, remembered for workers started later (a purge is not: their memory starts empty).
   * Recorded when sent, whatever the answer: workers apply changes in order and deterministically,
   * so replaying a refused one too (a duplicate add, a bad body) leads a new worker to the same state.
   */
  #record(call: AdminCall): void {
    if (call.url.split('?', 1)[0] === '/purge') return
    if (this.#journal.length >= MAX_JOURNAL) {
      if (!this.#journalFull) this.#log.warn({ max: MAX_JOURNAL }, 'too many admin changes to remember: workers restarted from now on start from the config file')
      this.#journalFull = true
      return
    }
    this.#journal.push(call)
  }

  #answer(m: WorkerMessage & { strata: 'reply' }): AdminAnswer {
    if ('answer' in m) return m.answer
    throw new Error('error' in m ? m.error : 'unexpected reply')
  }

  async #metricsText(): Promise<{ contentType: string; body: string }> {
    const ready = this.#slots.filter((s) => s.ready && s.worker !== undefined)
    const parts = await Promise.all(
      ready.map(async (s) => {
        try {
          const m = await this.#call(s.worker!, { op: 'metrics' })
          return 'metrics' in m ? m.metrics : []
        } catch (err) {
          this.#log.warn({ workerPid: s.worker?.process.pid, err: (err as Error).message }, 'a worker did not give its metrics')
          return []
        }
      }),
    )
    return aggregateMetricsText([...parts, await this.#registry.getMetricsAsJSON()])
  }

  #send(w: Worker, m: PrimaryMessage): boolean {
    if (!w.isConnected()) return false
    try {
      return w.send(m)
    } catch {
      return false
    }
  }

  #call(w: Worker, call: WorkerCall): Promise<WorkerMessage & { strata: 'reply' }> {
    const id = this.#nextId++
    const ms = this.#config.timeouts.workerCallMs
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`no answer within ${ms} ms`))
      }, ms)
      this.#pending.set(id, { worker: w, resolve, reject, timer })
      if (!this.#send(w, { strata: 'call', id, call })) {
        clearTimeout(timer)
        this.#pending.delete(id)
        reject(new Error('the worker is not connected'))
      }
    })
  }

  /** Forks the slot's worker; resolves with its proxy address once it listens, rejects if it fails first. */
  #fork(slot: Slot): Promise<StrataAddresses['proxy']> {
    const w = cluster.fork({ [WORKER_ENV]: '1' })
    slot.worker = w
    slot.ready = false
    slot.startedAt = performance.now()
    return new Promise((resolve, reject) => {
      w.on('message', (raw: unknown) => {
        const m = parseWorkerMessage(raw)
        if (m === undefined) {
          // prom-client's own cluster messages and the like are not ours; anything else is refused.
          if (!(raw !== null && typeof raw === 'object' && 'type' in raw)) this.#log.warn({ workerPid: w.process.pid }, 'refused an invalid message from a worker')
          return
        }
        switch (m.strata) {
          case 'hello':
            slot.given = this.#journal.length
            this.#send(w, { strata: 'start', config: this.#config, journal: [...this.#journal], stickySecret: this.#stickySecret, ...(this.#configFile === undefined ? {} : { configFile: this.#configFile }) })
            break
          case 'ready':
            slot.ready = true
            this.#catchUp(slot)
            resolve(m.proxy)
            break
          case 'failed':
            this.#log.error({ workerPid: w.process.pid, reason: m.message }, 'worker failed to start')
            reject(new Error(`a worker failed to start: ${m.message}`))
            break
          case 'reply': {
            const p = this.#pending.get(m.id)
            if (p === undefined || p.worker !== w) return // answered after its timeout
            this.#pending.delete(m.id)
            clearTimeout(p.timer)
            p.resolve(m)
          }
        }
      })
      w.once('exit', (code, signal) => {
        const wasReady = slot.ready
        for (const [id, p] of this.#pending) {
          if (p.worker !== w) continue
          this.#pending.delete(id)
          clearTimeout(p.timer)
          p.reject(new Error(`the worker exited (${signal ?? code})`))
        }
        if (slot.worker === w) {
          slot.worker = undefined
          slot.ready = false
        }
        reject(new Error(`a worker exited before listening (${signal ?? code})`))
        if (this.#stopping) return
        const { delayMs, quickDeaths } = restartDelay(performance.now() - slot.startedAt, slot.quickDeaths)
        slot.quickDeaths = quickDeaths
        this.#log.error({ workerPid: w.process.pid, code, signal, wasReady, restartInMs: delayMs }, 'worker died; restarting it')
        slot.restartTimer = setTimeout(() => {
          slot.restartTimer = undefined
          if (this.#stopping) return
          this.#restarts.inc()
          this.#fork(slot).then(
            () => this.#log.info({ workerPid: slot.worker?.process.pid, slot: slot.index }, 'worker restarted'),
            () => undefined, // its exit is logged and handled above
          )
        }, delayMs)
      })
    })
  }

  /** Changes made while a worker was starting reach it now, in order, before any later change. */
  #catchUp(slot: Slot): void {
    const w = slot.worker!
    for (const call of this.#journal.slice(slot.given)) {
      this.#call(w, { op: 'admin', request: call }).catch((err: unknown) => this.#log.warn({ workerPid: w.process.pid, url: call.url, err: (err as Error).message }, 'replaying an admin change to a worker failed'))
    }
    slot.given = this.#journal.length
  }
}
