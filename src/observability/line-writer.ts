import { write, writeSync } from 'node:fs'

/**
 * A buffered, asynchronous writer of whole lines to a file descriptor, for the access log: lines
 * are joined and written 16 KiB at a time (at least once a second, and synchronously at shutdown),
 * one write in flight at most. sonic-boom (pino's async destination) re-measures its whole pending
 * buffer on every write, which made each access line cost several microseconds under load.
 */
export class LineWriter {
  readonly #fd: number
  readonly #threshold: number
  #pending: string[] = []
  #pendingChars = 0
  #writing = false
  readonly #timer: NodeJS.Timeout

  constructor(fd: number, opts: { thresholdChars?: number; intervalMs?: number } = {}) {
    this.#fd = fd
    this.#threshold = opts.thresholdChars ?? 16_384
    this.#timer = setInterval(() => this.#flush(), opts.intervalMs ?? 1000)
    this.#timer.unref()
  }

  write(line: string): void {
    this.#pending.push(line)
    this.#pendingChars += line.length
    if (this.#pendingChars >= this.#threshold) this.#flush()
  }

  #flush(): void {
    if (this.#writing || this.#pending.length === 0) return
    const data = this.#pending.join('')
    this.#pending = []
    this.#pendingChars = 0
    this.#writing = true
    write(this.#fd, data, (err) => {
      this.#writing = false
      // A closed or broken stdout must not take the proxy down: the lines are dropped.
      if (err === null && this.#pendingChars >= this.#threshold) this.#flush()
    })
  }

  /** Writes out everything pending, synchronously (shutdown). */
  flushSync(): void {
    clearInterval(this.#timer)
    if (this.#pending.length === 0) return
    const data = this.#pending.join('')
    this.#pending = []
    this.#pendingChars = 0
    try {
      writeSync(this.#fd, data)
    } catch {
      // stdout is gone; nothing to do.
    }
  }
}
