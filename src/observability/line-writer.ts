import sonicBoom from 'sonic-boom'

// A CommonJS module whose types describe the constructor as a named export; at runtime it is
// both module.exports and module.exports.SonicBoom.
const { SonicBoom } = sonicBoom
type SonicBoom = InstanceType<typeof SonicBoom>

export interface LineWriterOptions {
  /** Characters gathered before a batch is handed to the writer (smaller ones wait for the timer). */
  batchChars?: number
  /**
   * Most characters held while the destination does not keep up (a reader that stopped reading a
   * pipe). A line that would go past it is dropped and counted, never queued: memory stays bounded.
   */
  maxChars?: number
  /** Longest a partial batch waits before it is written. */
  flushIntervalMs?: number
  /**
   * Several processes share the destination (the workers of `"workers": N` on one stdout): each
   * write is at most this many bytes, cut at line ends. A pipe takes a write of up to PIPE_BUF
   * (4096 bytes on Linux) whole or not at all, so lines of different processes never mix; a
   * larger write may be taken in part, and another process's bytes land in the middle of a line.
   */
  atomicBytes?: number
}

/** POSIX guarantees 512; Linux gives 4096. */
export const PIPE_BUF = 4096

/**
 * The process's stdout writer: pino's own asynchronous writer (sonic-boom) on a file descriptor,
 * which finishes partial writes and retries EAGAIN (a full non-blocking pipe, as
 * `strata serve | tee log` with a slow reader gives), so no line is lost or cut while the
 * destination only falls behind.
 *
 * In front of it, a thin batching layer, because sonic-boom alone measured 1.7–2 µs per write()
 * and 4–5 µs of process CPU per line (`node bench/access-lines.js`; 0.4 µs and ≈2.1 µs for this
 * layer, the same as the hand-made writer it replaced): it re-measures its pending string on every
 * write, and writes at most 16 KiB per round trip to the thread pool, so a burst outran it. Here a
 * line costs an array push; lines are joined and handed over as one Buffer per batch (16 KiB, or
 * every second), one batch in flight at most, each written by one write(2) where the destination
 * takes it.
 *
 * Bounded: past `maxChars` waiting, new lines are dropped and counted, and the count is written as
 * a warning line once the destination has caught up. A broken destination (EPIPE: the reader is
 * gone) drops everything after it, counted the same way; nothing here throws or blocks.
 */
export class LineWriter {
  readonly #out: SonicBoom
  readonly #fd: number
  readonly #batchChars: number
  readonly #atomicBytes: number | undefined
  readonly #maxChars: number
  readonly #timer: NodeJS.Timeout
  #pending: string[] = []
  #pendingChars = 0
  /** A batch was handed to sonic-boom and is not fully written yet. */
  #busy = false
  /** An operational line is waiting: hand over at the next chance, without waiting for a full batch. */
  #urgent = false
  #dropped = 0
  #reported = 0
  /** Broken (EPIPE) or ended (closed): lines from now on are dropped and counted. */
  #broken = false
  /** close() was called (set before its promise exists: the promise's executor already hands over). */
  #closeRequested = false
  #closing: Promise<void> | undefined

  constructor(fd: number, opts: LineWriterOptions = {}) {
    this.#fd = fd
    this.#batchChars = opts.batchChars ?? 16_384
    this.#atomicBytes = opts.atomicBytes
    this.#maxChars = opts.maxChars ?? 16 * 1024 * 1024
    // Buffers, not strings: sonic-boom measures a string's byte length on write and converts it to
    // a Buffer twice more (to write it, and after the write); a Buffer is encoded once, here.
    this.#out = new SonicBoom({ fd, sync: false, contentMode: 'buffer' })
    this.#out.on('error', () => {
      // EPIPE and the like (EAGAIN is retried inside sonic-boom): nothing will be written again.
      this.#broken = true
      this.#busy = false
      this.#dropped += this.#pending.length
      this.#pending = []
      this.#pendingChars = 0
    })
    // Emitted when a handed-over batch is fully written.
    this.#out.on('drain', () => {
      this.#busy = false
      if (this.#pendingChars >= this.#batchChars || this.#urgent || this.#closeRequested) this.#handOver()
    })
    this.#timer = setInterval(() => this.#handOver(), opts.flushIntervalMs ?? 1000)
    this.#timer.unref()
  }

  /** Queues one line (ending in "\n"). Never throws, never blocks. */
  write(line: string): void {
    if (this.#broken || this.#pendingChars + line.length > this.#maxChars) {
      this.#dropped++
      return
    }
    this.#pending.push(line)
    this.#pendingChars += line.length
    if (this.#pendingChars >= this.#batchChars && !this.#busy) this.#handOver()
  }

  /**
   * Queues one line and writes it as soon as the writer is free, without waiting for a batch: for
   * the rare operational lines ("listening", errors) that share the descriptor, so tools see them
   * at once and no line is ever written into the middle of another (as two writers on one fd do).
   */
  writeNow(line: string): void {
    this.write(line)
    this.#urgent = true
    this.#handOver()
  }

  /** Lines dropped so far (the destination fell more than `maxChars` behind, or broke). */
  get dropped(): number {
    return this.#dropped
  }

  /**
   * Writes out what is still queued and stops (shutdown). Waits for the destination at most
   * `timeoutMs` (a reader that never reads again must not hold the process). The writes stay
   * asynchronous, so a batch in flight and its retries finish, in order, before the rest: a
   * synchronous flush would have to write around it. Closes the descriptor unless it is 1 or 2.
   */
  close(timeoutMs = 5000): Promise<void> {
    this.#closeRequested = true
    this.#closing ??= new Promise<void>((resolve) => {
      clearInterval(this.#timer)
      const timer = setTimeout(resolve, timeoutMs)
      timer.unref()
      const done = () => {
        clearTimeout(timer)
        resolve()
      }
      if (this.#broken) return done()
      this.#out.once('close', done)
      this.#out.once('error', done)
      this.#handOver()
    })
    return this.#closing
  }

  /** Hands everything pending to sonic-boom as one string, if it is free; ends it when closing and empty. */
  #handOver(): void {
    if (this.#busy || this.#broken) return
    this.#reportDrops()
    if (this.#pending.length === 0) {
      if (this.#closeRequested) {
        this.#broken = true
        this.#out.end()
      }
      return
    }
    if (this.#atomicBytes !== undefined) return this.#handOverAtomic(this.#atomicBytes)
    const data = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join('')
    this.#pending = []
    this.#pendingChars = 0
    this.#urgent = false
    this.#busy = true
    // (The types only know string mode.)
    ;(this.#out as unknown as { write(b: Buffer): boolean }).write(Buffer.from(data))
  }

  /** As #handOver, at most `max` bytes (whole lines; a longer line alone); the rest follows on drain. */
  #handOverAtomic(max: number): void {
    let bytes = 0
    let chars = 0
    let n = 0
    for (; n < this.#pending.length; n++) {
      const l = this.#pending[n]!
      const b = Buffer.byteLength(l)
      if (n > 0 && bytes + b > max) break
      bytes += b
      chars += l.length
    }
    const data = n === 1 ? this.#pending[0]! : this.#pending.slice(0, n).join('')
    this.#pending = n === this.#pending.length ? [] : this.#pending.slice(n)
    this.#pendingChars -= chars
    // What is left is written as soon as this write is done, not at the next timer tick.
    this.#urgent = this.#pending.length > 0
    this.#busy = true
    ;(this.#out as unknown as { write(b: Buffer): boolean }).write(Buffer.from(data))
  }

  /** Adds a warning line with the count of lines dropped since the last one. */
  #reportDrops(): void {
    const n = this.#dropped - this.#reported
    if (n === 0) return
    this.#reported = this.#dropped
    const line = `{"level":40,"time":${Date.now()},"pid":${process.pid},"module":"line-writer","dropped":${n},"fd":${this.#fd},"msg":"log lines dropped: the destination did not keep up"}\n`
    this.#pending.push(line)
    this.#pendingChars += line.length
  }
}
