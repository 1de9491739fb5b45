/**
 * Assembled ESI pages kept whole, for pages whose every part is public and fresh (issue 14: an
 * idea worth measuring). Today a stored template is assembled on every hit: the program walk,
 * one L1 lookup per include, the Cache-Control fold, a Buffer.concat of the page and a header
 * copy. bench/esi.js puts that at 0.83x a plain hit of the same bytes (esi5/plain in
 * bench/results/2026-12-06-4acb528.md); a kept page costs one map lookup plus one identity check
 * per part, which is all a plain hit plus the per-part checks.
 *
 * Correctness does not rest on invalidation events: a kept page remembers, for every part it was
 * built from (the template and each fragment at every depth), the stored entry it came from, and
 * a hit asks the caller whether each part would still resolve, for this request, to that same
 * entry (`isCurrent`). A purge, a refresh, an eviction or another Vary variant gives another
 * entry (or none), so the page is dropped and assembled again. The page is also dropped once its
 * shortest-lived part goes stale (`freshUntil`), since a stale part means a refresh or a
 * revalidation the normal path must do. `invalidate(key)` only frees memory early.
 *
 * Only pages that need nothing from the request are kept (`keepable`): no ESI variables or
 * conditions (a `$(HTTP_COOKIE)` page differs per visitor), every part public (the folded
 * Cache-Control has no private, no-store or no-cache), and a positive max-age.
 */
import type { EsiProgram } from './program.js'

/** A page as it goes out: status, the page's headers (copy before adding per-response fields), bytes. */
export interface AssembledPage<P> {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[]>>
  readonly body: Buffer
  /** What it was built from, as the caller described each part (see `isCurrent`). */
  readonly parts: readonly P[]
  /** When the first part goes stale, ms (the smallest staleAt). */
  readonly freshUntil: number
  /** The caller's precomputed form of the head, if it keeps one (e.g. a flat header list). */
  readonly wire?: readonly (string | string[])[]
}

export interface AssembledPagesOptions {
  /** Bytes of kept pages (bodies, headers and bookkeeping); the least recently used go first. */
  maxBytes: number
  /** Bookkeeping counted per part, bytes (default 64). */
  partOverhead?: number
}

/** Why `keepable` (or `varyKeepable`) said no (for stats and tests), or 'ok'. */
export type KeepVerdict = 'ok' | 'variables' | 'private' | 'no-store' | 'no-cache' | 'no-max-age' | 'vary'

/**
 * Whether an assembly may be kept whole: its program reads nothing from the request and its
 * folded client Cache-Control (CacheControlFold.toString()) is public with a positive max-age
 * (RFC 9111 §5.2.2.7 private, §5.2.2.5 no-store, §5.2.2.4 no-cache).
 */
export function keepable(program: EsiProgram, cacheControl: string): KeepVerdict {
  if (program.usesVariables) return 'variables'
  let maxAge = 0
  for (const part of cacheControl.split(',')) {
    const d = part.trim().toLowerCase()
    if (d === 'private') return 'private'
    if (d === 'no-store') return 'no-store'
    if (d === 'no-cache') return 'no-cache'
    if (d.startsWith('max-age=')) maxAge = Number(d.slice(8)) || 0
  }
  return maxAge > 0 ? 'ok' : 'no-max-age'
}

/**
 * Whether a part stored with this Vary (RFC 9111 §4.1, lower-case field names) may go into a kept
 * page. Only Accept-Encoding is allowed: a page is kept under its URL alone, so a part that varies
 * by a visitor's Cookie, language or any other field would make the kept page flip between
 * visitors (each flip a drop and a new assembly) and would lean on the per-hit identity check
 * alone to keep one visitor's variant from another. Accept-Encoding selects the identity-coded
 * variant every memory assembly uses anyway; the identity check still confirms it per request.
 */
export function varyKeepable(vary: readonly string[]): KeepVerdict {
  for (const f of vary) if (f !== 'accept-encoding') return 'vary'
  return 'ok'
}

function headersSize(h: Readonly<Record<string, string | string[]>>): number {
  let n = 0
  for (const k in h) {
    const v = h[k]!
    n += k.length + 4 + (Array.isArray(v) ? v.reduce((a, s) => a + s.length + 2, 0) : v.length)
  }
  return n
}

interface Kept<P> {
  page: AssembledPage<P>
  size: number
}

/**
 * The kept pages, by a key the caller chooses (the template's cache key and variant). `P` is the
 * caller's description of a part (e.g. its cache key, its request target and the entry it
 * resolved to), handed back to `isCurrent` on every hit.
 */
export class AssembledPages<P> {
  /** Least recently used first: a Map keeps insertion order, and a hit re-inserts its key. */
  readonly #map = new Map<string, Kept<P>>()
  readonly #maxBytes: number
  readonly #partOverhead: number
  #bytes = 0
  /**
   * Pages served whole, pages dropped because a part changed or went stale, pages kept, pages
   * pushed out by the byte bound (least recently used first).
   */
  readonly stats = { hits: 0, dropped: 0, kept: 0, evicted: 0 }

  constructor(opts: AssembledPagesOptions) {
    this.#maxBytes = Math.max(1, opts.maxBytes)
    this.#partOverhead = opts.partOverhead ?? 64
  }

  /**
   * The kept page for `key` if it is still exactly what an assembly would produce now: fresh at
   * `now`, and every part still current for this request. A page that is not is dropped.
   */
  get(key: string, now: number, isCurrent: (part: P) => boolean): AssembledPage<P> | undefined {
    const kept = this.#map.get(key)
    if (kept === undefined) return undefined
    const page = kept.page
    if (now >= page.freshUntil || !page.parts.every(isCurrent)) {
      this.#delete(key, kept)
      this.stats.dropped++
      return undefined
    }
    this.#map.delete(key)
    this.#map.set(key, kept)
    this.stats.hits++
    return page
  }

  /** Keeps a page (the caller checked `keepable`); a page too big for the cache is not kept. */
  set(key: string, page: AssembledPage<P>): void {
    const size = page.body.length + headersSize(page.headers) + key.length + page.parts.length * this.#partOverhead
    if (size > this.#maxBytes) return
    const old = this.#map.get(key)
    if (old !== undefined) this.#delete(key, old)
    const wire = page.wire === undefined ? {} : { wire: Object.freeze([...page.wire]) }
    this.#map.set(key, { page: { ...page, headers: Object.freeze({ ...page.headers }), parts: Object.freeze([...page.parts]), ...wire }, size })
    this.#bytes += size
    for (const [k, v] of this.#map) {
      if (this.#bytes <= this.#maxBytes) break
      this.#delete(k, v)
      this.stats.evicted++
    }
    this.stats.kept++
  }

  #delete(key: string, kept: Kept<P>): void {
    this.#map.delete(key)
    this.#bytes -= kept.size
  }

  /** Drops the pages `matches` picks (e.g. those built from a purged key); the count dropped. */
  invalidate(matches: (page: AssembledPage<P>, key: string) => boolean): number {
    let n = 0
    for (const [key, kept] of [...this.#map]) {
      if (!matches(kept.page, key)) continue
      this.#delete(key, kept)
      n++
    }
    return n
  }

  /** Bytes and pages held. */
  get size(): { bytes: number; pages: number } {
    return { bytes: this.#bytes, pages: this.#map.size }
  }

  /** The byte bound it was made with. */
  get maxBytes(): number {
    return this.#maxBytes
  }

  clear(): void {
    this.#map.clear()
    this.#bytes = 0
  }
}
