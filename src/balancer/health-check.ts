import { Agent, request } from 'undici'
import type { HealthCheckConfig } from '../config/schema.js'
import type { Logger } from '../observability/logger.js'
import type { Upstream } from './upstream-state.js'

/**
 * Active health checks: every `intervalMs`, one GET `path` per upstream, in parallel. A check
 * passes when the status equals `expectStatus` within `timeoutMs`; the balancer turns results into
 * up/down with the `rise`/`fall` counters. The next round is scheduled only when the previous one
 * finished (setTimeout, not setInterval), so a slow upstream never piles checks up.
 */
export interface HealthCheckerOptions {
  readonly config: HealthCheckConfig
  /** The upstreams to check at the start of each round (runtime adds/removes are picked up). */
  readonly targets: () => Iterable<Upstream>
  readonly onResult: (upstream: Upstream, ok: boolean, detail: string) => void
  readonly logger: Logger
}

export class HealthChecker {
  readonly #config: HealthCheckConfig
  readonly #targets: () => Iterable<Upstream>
  readonly #onResult: HealthCheckerOptions['onResult']
  readonly #log: Logger
  /** A dedicated agent: checks must not queue behind (or be counted as) proxied traffic. */
  readonly #agent: Agent
  readonly #inflight = new Set<AbortController>()
  #timer: NodeJS.Timeout | undefined
  #running = false
  #closed = false
  #round: Promise<void> | undefined

  constructor(opts: HealthCheckerOptions) {
    this.#config = opts.config
    this.#targets = opts.targets
    this.#onResult = opts.onResult
    this.#log = opts.logger
    const t = opts.config.timeoutMs
    this.#agent = new Agent({ connect: { timeout: t }, headersTimeout: t, bodyTimeout: t, keepAliveTimeout: Math.max(1000, opts.config.intervalMs * 2) })
  }

  start(): void {
    if (this.#running || this.#closed) return
    this.#running = true
    this.#schedule(0)
  }

  /** Runs one round now; resolves when every check of the round has reported. */
  async runOnce(): Promise<void> {
    const round = [...this.#targets()].map((u) => this.#check(u))
    await Promise.all(round)
  }

  async close(): Promise<void> {
    this.#running = false
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    for (const ac of this.#inflight) ac.abort()
    await this.#round
    await this.#agent.destroy()
  }

  #schedule(delay: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#round = this.runOnce().finally(() => {
        this.#round = undefined
        if (this.#running) this.#schedule(this.#config.intervalMs)
      })
    }, delay)
    this.#timer.unref()
  }

  async #check(upstream: Upstream): Promise<void> {
    const ac = new AbortController()
    this.#inflight.add(ac)
    const timer = setTimeout(() => ac.abort(), this.#config.timeoutMs)
    timer.unref()
    let ok = false
    let detail: string
    try {
      const res = await request(upstream.origin + this.#config.path, {
        method: 'GET',
        dispatcher: this.#agent,
        signal: ac.signal,
        headers: { 'user-agent': 'strata-health-check' },
      })
      // Read the body so the keep-alive connection can be reused for the next check.
      await res.body.dump()
      ok = res.statusCode === this.#config.expectStatus
      detail = `status ${res.statusCode}`
    } catch (err) {
      detail = ac.signal.aborted ? `timeout after ${this.#config.timeoutMs} ms` : ((err as { code?: string }).code ?? String(err))
    } finally {
      clearTimeout(timer)
      this.#inflight.delete(ac)
    }
    // A check aborted by close() reports nothing: the balancer is going away.
    if (this.#closed) return
    try {
      this.#onResult(upstream, ok, detail)
    } catch (err) {
      this.#log.error({ err }, 'health check result handler failed')
    }
  }
}
