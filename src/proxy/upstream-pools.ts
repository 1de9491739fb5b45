import { Pool, type Dispatcher } from 'undici'
import type { TimeoutsConfig } from '../config/schema.js'

/**
 * One keep-alive undici Pool per upstream, created on first use and closed when the upstream is
 * removed or strata shuts down. http and https origins both work (undici picks TLS from the URL).
 */
export class UpstreamPools {
  readonly #pools = new Map<string, Pool>()
  readonly #timeouts: TimeoutsConfig

  constructor(timeouts: TimeoutsConfig) {
    this.#timeouts = timeouts
  }

  get(id: string, origin: string): Dispatcher {
    let pool = this.#pools.get(id)
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: 128,
        pipelining: 1,
        keepAliveTimeout: this.#timeouts.keepAliveMs,
        connectTimeout: this.#timeouts.connectMs,
        // responseMs is the time from sending the request to receiving the response headers.
        headersTimeout: this.#timeouts.responseMs,
        // A stalled body is as bad as stalled headers; bound the gap between body chunks the same way.
        bodyTimeout: this.#timeouts.responseMs,
      })
      this.#pools.set(id, pool)
    }
    return pool
  }

  async remove(id: string): Promise<void> {
    const pool = this.#pools.get(id)
    if (pool === undefined) return
    this.#pools.delete(id)
    await pool.close().catch(() => pool.destroy())
  }

  /**
   * Lets running and queued requests finish for up to `graceMs`, then aborts whatever is still
   * running (at once with 0).
   */
  async close(graceMs: number): Promise<void> {
    const pools = [...this.#pools.values()]
    this.#pools.clear()
    const destroy = () => Promise.all(pools.map((p) => p.destroy())).then(() => undefined)
    if (graceMs <= 0) return destroy()
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))).then(destroy)
    const graceful = Promise.all(pools.map((p) => p.close().catch(() => p.destroy()))).then(() => undefined)
    await Promise.race([graceful, late])
    clearTimeout(timer)
  }
}
