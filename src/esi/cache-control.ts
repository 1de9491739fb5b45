/**
 * The client Cache-Control of an assembled page, computed from the template and every fragment
 * that went into it. The assembled page is never stored whole, so the browser may keep it only as
 * long as its shortest-lived part: the smallest `max-age` (RFC 9111 §5.2.2.1), `private` when any
 * part is `private` (§5.2.2.7) or `no-store` (§5.2.2.5), `no-store`/`no-cache` when any part says
 * so. A part without `max-age` has no explicit freshness for the client and counts as 0 (strata
 * does not extend heuristic freshness, §4.2.2, to an assembled page). `s-maxage` is for shared
 * caches and does not reach the client's header.
 */
export interface PartLifetime {
  readonly maxAge: number
  readonly private: boolean
  readonly noStore: boolean
  readonly noCache: boolean
}

const lifetimes = new Map<string, PartLifetime>()

/** Parses one part's Cache-Control; remembered per distinct value (a site sends few). */
export function parsePartLifetime(value: string | string[] | undefined): PartLifetime {
  if (typeof value !== 'string') return parseUncached(value)
  let r = lifetimes.get(value)
  if (r === undefined) {
    r = Object.freeze(parseUncached(value))
    if (lifetimes.size >= 1000) lifetimes.clear()
    lifetimes.set(value, r)
  }
  return r
}

function parseUncached(value: string | string[] | undefined): PartLifetime {
  let maxAge: number | undefined
  let priv = false
  let noStore = false
  let noCache = false
  if (value !== undefined) {
    const joined = Array.isArray(value) ? value.join(',') : value
    for (const part of joined.split(',')) {
      const eq = part.indexOf('=')
      const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase()
      const arg = eq < 0 ? '' : part.slice(eq + 1).trim().replace(/^"|"$/g, '')
      if (name === 'max-age') {
        // RFC 9111 §1.2.2: delta-seconds; an invalid value is treated as stale (0).
        const n = /^[0-9]+$/.test(arg) ? Number(arg) : 0
        maxAge = maxAge === undefined ? n : Math.min(maxAge, n)
      } else if (name === 'private') priv = true
      else if (name === 'no-store') noStore = true
      else if (name === 'no-cache') noCache = true
    }
  }
  return { maxAge: noCache ? 0 : maxAge ?? 0, private: priv || noStore, noStore, noCache }
}

/** Folds the lifetimes of the template and its fragments into the client's Cache-Control. */
export class CacheControlFold {
  #maxAge = Number.POSITIVE_INFINITY
  #private = false
  #noStore = false
  #noCache = false
  #parts = 0

  add(value: string | string[] | undefined): void {
    const l = parsePartLifetime(value)
    this.#parts++
    this.#maxAge = Math.min(this.#maxAge, l.maxAge)
    this.#private ||= l.private
    this.#noStore ||= l.noStore
    this.#noCache ||= l.noCache
  }

  toString(): string {
    if (this.#noStore) return 'private, no-store'
    const maxAge = this.#parts === 0 ? 0 : this.#maxAge
    const out: string[] = []
    if (this.#private) out.push('private')
    if (this.#noCache) out.push('no-cache')
    out.push(`max-age=${maxAge}`)
    return out.join(', ')
  }
}
