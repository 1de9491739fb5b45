import sonicBoom from 'sonic-boom'

// A CommonJS module whose types describe the constructor as a named export; at runtime it is
// both module.exports and module.exports.SonicBoom.
const { SonicBoom } = sonicBoom
type SonicBoom = InstanceType<typeof SonicBoom>

export interface LineWriterOptions {
  /** Bytes gathered before a write is started (smaller batches wait for `flushIntervalMs`). */
  minBytes?: number
  /**
   * Most bytes held while the destination does not keep up (a reader that stopped reading a
   * pipe). A line that would go past it is dropped and counted, never queued: memory stays bounded.
   */
  maxBytes?: number
  /** Longest a partial batch waits before it is written. */
  flushIntervalMs?: number
}

/**
 * The access log's destination: pino's own asynchronous writer (sonic-boom) on a file
 * descriptor, in batches, one write in flight at most. It finishes partial writes and retries
 * EAGAIN (a full non-blocking pipe, as `strata serve | tee log` with a slow reader gives), so no
 * line is lost or cut while the destination only falls behind. If it falls behind by more than
 * `maxBytes`, new lines are dropped and counted; the count is written as a warning line once the
 * destination has caught up. A broken destination (EPIPE: the reader is gone) drops everything
 * after it, counted the same way; it never takes the process down.
 */
export class LineWriter {
  readonly #out: SonicBoom
  readonly #fd: number
  #dropped = 0
  #reported = 0
  #broken = false
  #closing: Promise<void> | undefined

  constructor(fd: number, opts: LineWriterOptions = {}) {
    this.#fd = fd
    this.#out = new SonicBoom({
      fd,
      sync: false,
      minLength: opts.minBytes ?? 4096,
      maxLength: opts.maxBytes ?? 16 * 1024 * 1024,
      periodicFlush: opts.flushIntervalMs ?? 1000,
    })
    this.#out.on('drop', () => this.#dropped++)
    this.#out.on('error', () => {
      // EPIPE and the like (EAGAIN is retried inside sonic-boom). Nothing will be written again.
      this.#broken = true
    })
    this.#out.on('drain', () => this.#reportDrops())
  }

  /** Queues one line (ending in "\n"). Never throws, never blocks. */
  write(line: string): void {
    if (this.#broken) this.#dropped++
    else this.#out.write(line)
  }

  /**
   * Queues one line and starts writing it now, without waiting for a batch: for the rare
   * operational lines ("listening", errors) that share the descriptor, so tools see them at once
   * and no line is ever written into the middle of another (as two writers on one fd would).
   */
  writeNow(line: string): void {
    this.write(line)
    if (!this.#broken) this.#out.flush()
  }

  /** Lines dropped so far (the destination fell more than `maxBytes` behind, or broke). */
  get dropped(): number {
    return this.#dropped
  }

  /**
   * Writes out what is still queued and stops (shutdown). Waits for the destination at most
   * `timeoutMs` (a reader that never reads again must not hold the process): the writes stay
   * asynchronous, so a write in flight and its retries finish in order, before the rest.
   */
  close(timeoutMs = 5000): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs)
      timer.unref()
      function done() {
        clearTimeout(timer)
        resolve()
      }
      if (this.#broken) return done()
      this.#reportDrops()
      this.#out.once('close', done)
      this.#out.once('error', done)
      this.#out.end()
    })
    return this.#closing
  }

  #reportDrops(): void {
    const n = this.#dropped - this.#reported
    if (n === 0 || this.#broken) return
    this.#reported = this.#dropped
    this.#out.write(`{"level":40,"time":${Date.now()},"pid":${process.pid},"module":"access-log","dropped":${n},"fd":${this.#fd},"msg":"access log lines dropped: the destination did not keep up"}\n`)
  }
}
