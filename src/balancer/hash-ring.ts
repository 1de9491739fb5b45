import { hash32 } from './hash.js'

/** Points per unit of weight: 160 as in ketama, enough to keep each server's share within a few %. */
const POINTS_PER_WEIGHT = 160
/** Cap per server so a weight of 1000 does not build a 160 000-point ring. */
const MAX_POINTS = 16_000

/**
 * A consistent-hash ring with virtual nodes (Karger et al. 1997; libketama's layout). Each member
 * owns `160 × weight` points; a key goes to the first point clockwise of its hash. Adding or
 * removing one of N members only moves the keys of the arcs it gains or loses: about 1/N.
 *
 * The ring is built from membership only (add/remove), never from health: a server that is down
 * is skipped by walking clockwise, so its keys spread over the others and come back to it when it
 * recovers, while every other key stays where it was.
 */
export class HashRing<T extends { readonly id: string; readonly weight: number }> {
  readonly #points: Uint32Array
  readonly #owners: T[]
  readonly #size: number

  constructor(members: readonly T[]) {
    const entries: { h: number; m: T }[] = []
    for (const m of members) {
      const n = Math.min(POINTS_PER_WEIGHT * m.weight, MAX_POINTS)
      for (let i = 0; i < n; i++) entries.push({ h: hash32(`${m.id}#${i}`), m })
    }
    // Ties (two members hashing to one point) are broken by id so every node builds the same ring.
    entries.sort((a, b) => a.h - b.h || (a.m.id < b.m.id ? -1 : a.m.id > b.m.id ? 1 : 0))
    this.#size = entries.length
    this.#points = new Uint32Array(this.#size)
    this.#owners = new Array<T>(this.#size)
    for (let i = 0; i < this.#size; i++) {
      this.#points[i] = entries[i]!.h
      this.#owners[i] = entries[i]!.m
    }
  }

  get size(): number {
    return this.#size
  }

  /**
   * The owner of `hash`, skipping owners `accept` rejects: O(log points) for the search, plus a
   * walk past rejected points (bounded by the ring size; typically a few steps).
   */
  lookup(hash: number, accept: (m: T) => boolean): T | undefined {
    const size = this.#size
    if (size === 0) return undefined
    // First point ≥ hash (binary search), wrapping to 0.
    let lo = 0
    let hi = size
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#points[mid]! < hash) lo = mid + 1
      else hi = mid
    }
    let last: T | undefined
    for (let i = 0; i < size; i++) {
      const owner = this.#owners[(lo + i) % size]!
      if (owner === last) continue // consecutive points of one rejected owner: no need to ask again
      if (accept(owner)) return owner
      last = owner
    }
    return undefined
  }
}
