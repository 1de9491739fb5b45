import { LRUCache } from 'lru-cache'
import type { Entry } from './entry.js'

// Fixed per-entry overhead added to the payload size: the Entry object, the LRU's slots and the
// key. An estimate, but it keeps many tiny values from escaping the byte bound.
const ENTRY_OVERHEAD = 96

/** Keys of a view are `\0<path>\0<key>`; root keys carry no prefix so the hot path builds no string. */
export function l1PrefixOf(path: string): string {
  return path === '' ? '' : `\0${path}\0`
}

function prefixOfKey(key: string): string {
  if (key.charCodeAt(0) !== 0) return ''
  return key.slice(0, key.indexOf('\0', 1) + 1)
}

/**
 * The in-process tier: an lru-cache bounded by bytes, plus a local tag index (tag → keys) so
 * deleteByTag can drop L1 entries without scanning. lru-cache's own TTL is not used: entries
 * carry staleAt/deleteAt that the cache checks itself, which keeps `get` at its cheapest.
 */
export class L1Store {
  /** Exposed for the getOrSet hot path, which must not pay for an extra call layer. */
  readonly lru: LRUCache<string, Entry>
  readonly #tags = new Map<string, Set<string>>()

  constructor(opts: { maxBytes: number; maxEntries: number }) {
    this.lru = new LRUCache<string, Entry>({
      max: opts.maxEntries,
      maxSize: opts.maxBytes,
      sizeCalculation: (entry, key) => entry.size + key.length * 2 + ENTRY_OVERHEAD,
      dispose: (entry, key) => {
        if (entry.tags.length > 0) this.#unindex(key, entry)
      },
    })
  }

  get(key: string): Entry | undefined {
    return this.lru.get(key)
  }

  set(key: string, entry: Entry): void {
    this.lru.set(key, entry)
    // An entry larger than maxBytes is refused by lru-cache; only index what was stored.
    if (entry.tags.length > 0 && this.lru.peek(key) === entry) {
      const prefix = prefixOfKey(key)
      for (const tag of entry.tags) {
        const tk = prefix + tag
        let keys = this.#tags.get(tk)
        if (keys === undefined) this.#tags.set(tk, (keys = new Set()))
        keys.add(key)
      }
    }
  }

  delete(key: string): void {
    this.lru.delete(key)
  }

  /** Drops every entry tagged `tag` in the view with this L1 prefix; returns how many. */
  deleteTag(prefix: string, tag: string): number {
    const keys = this.#tags.get(prefix + tag)
    if (keys === undefined) return 0
    this.#tags.delete(prefix + tag)
    let n = 0
    for (const key of keys) if (this.lru.delete(key)) n++
    return n
  }

  /** Drops a view and its sub-views: O(entries), which is why clear() is not a hot operation. */
  deleteView(path: string): void {
    if (path === '') return this.clear()
    const own = l1PrefixOf(path)
    const nested = `\0${path}:`
    for (const key of [...this.lru.keys()]) {
      if (key.startsWith(own) || key.startsWith(nested)) this.lru.delete(key)
    }
  }

  clear(): void {
    this.lru.clear()
    this.#tags.clear()
  }

  get entries(): number {
    return this.lru.size
  }

  get bytes(): number {
    return this.lru.calculatedSize
  }

  #unindex(key: string, entry: Entry): void {
    const prefix = prefixOfKey(key)
    for (const tag of entry.tags) {
      const keys = this.#tags.get(prefix + tag)
      if (keys === undefined) continue
      keys.delete(key)
      if (keys.size === 0) this.#tags.delete(prefix + tag)
    }
  }
}
