/**
 * What could not reach Redis during an outage, kept in order and sent again once Redis answers:
 * the invalidations of the page cache and the messages of every bus. Bounded: past `max` items one
 * `overflow()` item (e.g. "purge everything") replaces them all, so nothing stale survives and
 * memory stays flat however long the outage lasts.
 */
export interface OutageQueueOptions<T> {
  max: number
  /** The single item that replaces an overflowing queue. */
  overflow: () => T
  /** Sends one item; false when Redis could not take it (it stays queued). Never rejects. */
  send: (item: T) => Promise<boolean>
  /** Retry period while items wait, so a queue drains even without a "Redis is back" signal. */
  retryMs: number
  /** Called for every item sent. */
  onSent?: (item: T) => void
}

export class OutageQueue<T> {
  readonly #opts: OutageQueueOptions<T>
  #items: T[] = []
  #overflowed = false
  #flushing: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(opts: OutageQueueOptions<T>) {
    this.#opts = opts
  }

  get size(): number {
    return this.#overflowed ? 1 : this.#items.length
  }

  /** Items must keep their order, so a new one queues behind any waiting ones. */
  get empty(): boolean {
    return !this.#overflowed && this.#items.length === 0
  }

  push(item: T): void {
    if (this.#closed) return
    if (!this.#overflowed) {
      if (this.#items.length >= this.#opts.max) {
        this.#overflowed = true
        this.#items = []
      } else this.#items.push(item)
    }
    this.#arm()
  }

  /** Sends what waits, in order, until one send fails. Concurrent calls share one run. */
  flush(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = undefined
      if (!this.empty) this.#arm()
    })
    return this.#flushing
  }

  async #drain(): Promise<void> {
    if (this.#overflowed) {
      this.#overflowed = false
      this.#items = [this.#opts.overflow()]
    }
    while (this.#items.length > 0) {
      const item = this.#items[0]!
      if (!(await this.#opts.send(item))) return
      if (this.#items[0] === item) this.#items.shift()
      this.#opts.onSent?.(item)
      if (this.#overflowed) return
    }
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#closed) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.flush()
    }, this.#opts.retryMs)
    this.#timer.unref()
  }

  close(): void {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#items = []
    this.#overflowed = false
  }
}
