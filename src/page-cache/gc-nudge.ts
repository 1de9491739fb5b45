/**
 * Telling V8 about garbage it cannot see. A body's bytes live outside the JS heap (malloc), so
 * what V8 sees of a 64 KB page is a few dozen bytes, and it collects late:
 * - every byte read from the origin first arrives in a socket read buffer (Node allocates 64 KB
 *   per read), garbage once the body is copied into the cache. Those die young, but a scavenge
 *   only comes when the 16 MB semi-space fills with JS objects or V8's external-memory limit
 *   trips (bench/rss.js, 600 pages in: 29 MB of array buffers beyond the cached bodies with a
 *   scavenge asked every 8 MB stored, 3 MB with one every 1 MB);
 * - an evicted body is old-generation garbage that waits for a major collection, which V8 starts
 *   for external memory only 64 MB (a fixed soft limit) past the last one.
 * glibc keeps the heap that peak grew to (it returns only the top of its heap to the OS), so the
 * peak stays in RSS after the churn ends. (The rest of the growth during a fill is V8's own: the
 * new space grows to its 32 MB, and TurboFan's zones peak near 46 MB while the fill path gets
 * optimised; neither is the cache's to change.)
 *
 * The memory store counts the bytes it stores and drops; each `thresholdBytes` stored asks for a
 * scavenge (2-5 ms in bench/rss.js's traces), each `thresholdBytes` dropped for a major collection. V8 runs
 * both from a task of its own, not inside the store's call. A cache that does not fill or evict
 * never asks. A major collection is atomic (7-140 ms on a loaded 2-core machine, where V8's own
 * are incremental), so under heavy eviction churn they are spaced at least `minMajorGapMs` (100 ms) apart:
 * the pause share stays bounded (a few percent) while RSS still stops short of V8's 64 MB slack.
 * Config `cache.gcNudge: false` turns all of it off.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/** Asks V8 for a collection; the request returns at once. */
export type GcRequest = (kind: 'minor' | 'major') => void

interface GcOptions {
  type: 'major' | 'minor'
  execution: 'async' | 'sync'
}

let cached: GcRequest | null | undefined

/**
 * V8's own `gc` function, obtained without `--expose-gc` on the command line: the flag set at run
 * time installs `gc` in contexts created afterwards. `undefined` where the runtime refuses; the
 * store then simply does not nudge.
 */
export function v8Gc(): GcRequest | undefined {
  if (cached !== undefined) return cached ?? undefined
  cached = null
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as unknown
    if (typeof gc === 'function') {
      const fn = gc as (opts: GcOptions) => unknown
      cached = (kind) => {
        // `async` execution: V8 collects from a task of its own, with no JS on the stack.
        const p = fn({ type: kind, execution: 'async' })
        if (p instanceof Promise) p.catch(() => {})
      }
    }
  } catch {
    // no gc: no nudges
  }
  return cached ?? undefined
}

/**
 * The default threshold: a sixteenth of the cache, between 4 and 64 MB (V8's own limit, above
 * which nudging changes nothing). bench/rss.js at 128 MB: 32 MB of drops per nudge left RSS at
 * 261–289 MB, 16 MB at 267–293, 8 MB at 251–259, 4 MB at 254–262 (no better, twice the GCs).
 */
export function defaultNudgeBytes(maxBytes: number): number {
  return Math.min(64 * 1024 * 1024, Math.max(4 * 1024 * 1024, Math.floor(maxBytes / 16)))
}

/** Counts stored and dropped bytes; asks for a collection each time `thresholdBytes` accumulated. */
export class GarbageNudge {
  readonly thresholdBytes: number
  #stored = 0
  #dropped = 0
  #request: GcRequest | undefined
  readonly #minMajorGapMs: number
  readonly #now: () => number
  #lastMajor = Number.NEGATIVE_INFINITY
  /** Collections asked for so far (for stats and tests). */
  readonly requested = { minor: 0, major: 0 }

  /**
   * @param request how to ask for a collection; when omitted, V8's own (`v8Gc`), resolved
   * lazily the first time the threshold is crossed.
   */
  constructor(thresholdBytes: number, request?: GcRequest, opts: { minMajorGapMs?: number; now?: () => number } = {}) {
    this.thresholdBytes = Math.max(1, thresholdBytes)
    this.#request = request
    this.#minMajorGapMs = opts.minMajorGapMs ?? 100
    this.#now = opts.now ?? (() => performance.now())
  }

  /** `bytes` were stored: about as many bytes of read buffers just became young garbage. */
  stored(bytes: number): void {
    this.#stored += bytes
    if (this.#stored < this.thresholdBytes) return
    this.#stored = 0
    this.#ask('minor')
  }

  /** `bytes` just became garbage that only a major collection frees. */
  dropped(bytes: number): void {
    this.#dropped += bytes
    if (this.#dropped < this.thresholdBytes) return
    // Too soon after the last one: keep counting; the next drop past the gap asks.
    const now = this.#now()
    if (now - this.#lastMajor < this.#minMajorGapMs) return
    this.#lastMajor = now
    this.#dropped = 0
    // A major collection also clears the young generation.
    this.#stored = 0
    this.#ask('major')
  }

  #ask(kind: 'minor' | 'major'): void {
    this.requested[kind]++
    this.#request ??= v8Gc() ?? (() => {})
    this.#request(kind)
  }
}
