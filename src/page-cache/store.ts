/**
 * The minimal storage interface every page-cache tier implements (the undici / bentocache habit:
 * one interface, one shared contract suite run by every store). Methods may answer synchronously
 * (the memory store does, so an L1 hit never waits for a microtask) or with a promise (Redis).
 */
import type { CacheEntry } from './types.js'

export type Awaitable<T> = T | Promise<T>

/**
 * Which entries a purge touches. `keys`: exact primary keys (all variants); `match`: a predicate
 * over primary keys (prefix, pattern, bare path on any host); `tags`: entries carrying any of the
 * surrogate keys; `all`.
 */
export type PurgeSelector =
  | { kind: 'keys'; keys: readonly string[] }
  | { kind: 'match'; match: (key: string) => boolean }
  | { kind: 'tags'; tags: ReadonlySet<string> }
  | { kind: 'all' }

export interface PurgeOptions {
  /** Mark stale (staleAt = now) instead of deleting, so grace can keep serving. */
  soft: boolean
  now: number
}

export interface StoreStats {
  entries: number
  bytes: number
}

export interface PageStore {
  readonly name: string
  /** Live variants stored under a primary key (entries past deleteAt are never returned). */
  get(key: string): Awaitable<readonly CacheEntry[] | undefined>
  /** Stores an entry, replacing the variant with the same `variant` under `entry.key`. */
  set(entry: CacheEntry): Awaitable<void>
  /** Removes every variant under a primary key; answers how many entries were removed. */
  delete(key: string): Awaitable<number>
  /** Deletes (or softens) the selected entries; answers how many entries were affected. */
  purge(selector: PurgeSelector, opts: PurgeOptions): Promise<number>
  stats(): Awaitable<StoreStats>
  close(): Promise<void>
}

/** At most this many Vary variants per URL; the oldest is dropped beyond it. */
export const MAX_VARIANTS = 32

/** Soft purge of one entry: stale from now on, lifetimes otherwise unchanged. */
export function soften(entry: CacheEntry, now: number): CacheEntry {
  return entry.staleAt <= now ? entry : { ...entry, staleAt: now }
}

/** Does a selector pick this entry (after its key matched, for tag selectors)? */
export function selectsEntry(selector: PurgeSelector, entry: CacheEntry): boolean {
  switch (selector.kind) {
    case 'tags':
      return entry.tags.some((t) => selector.tags.has(t))
    case 'match':
      return selector.match(entry.key)
    default:
      return true
  }
}

/** Replaces or appends `entry` among `variants`, dropping the oldest beyond MAX_VARIANTS. */
export function withVariant(variants: readonly CacheEntry[] | undefined, entry: CacheEntry): CacheEntry[] {
  if (!variants || variants.length === 0) return [entry]
  const out = variants.filter((v) => v.variant !== entry.variant)
  out.push(entry)
  while (out.length > MAX_VARIANTS) out.shift()
  return out
}
