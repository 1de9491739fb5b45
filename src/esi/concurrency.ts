/**
 * Small concurrency primitives for assembly: a semaphore for `esi.maxConcurrentIncludes` and a
 * cancellation tree.
 */

export class Semaphore {
  #free: number
  readonly #queue: (() => void)[] = []
  constructor(n: number) {
    this.#free = n
  }
  /** Undefined when a permit was free (no microtask on the fast path). */
  acquire(): Promise<void> | undefined {
    if (this.#free > 0) {
      this.#free--
      return undefined
    }
    return new Promise((resolve) => this.#queue.push(resolve))
  }
  release(): void {
    const next = this.#queue.shift()
    if (next) next()
    else this.#free++
  }
}

export class IncludeTimeout extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`)
    this.name = 'IncludeTimeout'
  }
}

/**
 * Cancellation as a tree of plain callbacks: cheaper than an AbortSignal + EventTarget listener per
 * include on the hot path. Only the signal handed to the fetcher is a real AbortSignal.
 */
export class Cancel {
  aborted = false
  reason: unknown
  #listeners: Set<(reason: unknown) => void> | undefined

  constructor(parent?: Cancel) {
    if (!parent) return
    if (parent.aborted) this.abort(parent.reason)
    else parent.on((r) => this.abort(r))
  }
  on(fn: (reason: unknown) => void): void {
    ;(this.#listeners ??= new Set()).add(fn)
  }
  off(fn: (reason: unknown) => void): void {
    this.#listeners?.delete(fn)
  }
  abort(reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    const listeners = this.#listeners
    this.#listeners = undefined
    if (listeners) for (const fn of listeners) fn(reason)
  }
}
