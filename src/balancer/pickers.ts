import type { UpstreamState } from './upstream-state.js'

/**
 * The balancing algorithms as small functions over a non-empty candidate list. The Balancer owns
 * the state they share (round-robin counter, precomputed schedules) and decides which list
 * (primaries or backups, minus the ids a retry already tried) they see.
 */

export const ALGORITHM = {
  roundRobin: 'round-robin',
  weighted: 'weighted',
  leastConnections: 'least-connections',
  random: 'random',
  p2c: 'p2c',
  consistentHash: 'consistent-hash',
} as const
export type Algorithm = (typeof ALGORITHM)[keyof typeof ALGORITHM]

/** Longest precomputed smooth-weighted schedule; beyond it, the O(n) per-pick form is used. */
export const MAX_SCHEDULE = 65_536

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b]
  return a
}

/**
 * nginx's smooth weighted round-robin (ngx_http_upstream_get_peer) for a whole cycle: each step
 * adds every weight to its current value, picks the largest, and subtracts the total from it.
 * Weights 5,1,1 give indexes 0 0 1 0 2 0 0 — the heavy server is spread out, never bunched.
 * Weights are reduced by their gcd first (10,10 cycles like 1,1). Returns candidate indexes,
 * or undefined when the cycle would be longer than MAX_SCHEDULE.
 */
export function smoothWeightedSequence(weights: readonly number[]): number[] | undefined {
  if (weights.length === 0) return []
  let g = 0
  for (const w of weights) g = gcd(g, w)
  const reduced = weights.map((w) => w / g)
  const total = reduced.reduce((a, b) => a + b, 0)
  if (total > MAX_SCHEDULE) return undefined
  const current = new Array<number>(reduced.length).fill(0)
  const out: number[] = []
  for (let step = 0; step < total; step++) {
    let best = 0
    for (let i = 0; i < reduced.length; i++) {
      current[i]! += reduced[i]!
      if (current[i]! > current[best]!) best = i
    }
    current[best]! -= total
    out.push(best)
  }
  return out
}

/** One step of smooth weighted round-robin with live (slow-start) weights: O(n). */
export function swrrStep(c: readonly UpstreamState[], now: number, slowStartMs: number): UpstreamState {
  let total = 0
  let best = c[0]!
  let bestCurrent = Number.NEGATIVE_INFINITY
  for (const u of c) {
    const w = u.effectiveWeight(now, slowStartMs)
    u.swrrCurrent += w
    total += w
    if (u.swrrCurrent > bestCurrent) {
      best = u
      bestCurrent = u.swrrCurrent
    }
  }
  best.swrrCurrent -= total
  return best
}

/**
 * Weighted least-connections: the lowest (active + 1) / weight; "+1" so that at equal load a
 * heavier server is preferred (HAProxy's leastconn). The scan starts at a rotating offset, so
 * ties are spread round-robin instead of always going to the first server. O(n).
 */
export function leastConnections(c: readonly UpstreamState[], offset: number, now: number, slowStartMs: number): UpstreamState {
  const n = c.length
  let best = c[offset % n]!
  let bestScore = (best.active + 1) / best.effectiveWeight(now, slowStartMs)
  for (let k = 1; k < n; k++) {
    const u = c[(offset + k) % n]!
    const score = (u.active + 1) / u.effectiveWeight(now, slowStartMs)
    if (score < bestScore) {
      best = u
      bestScore = score
    }
  }
  return best
}

/** Weighted random with live weights: O(n). */
export function weightedRandom(c: readonly UpstreamState[], r: number, now: number, slowStartMs: number): UpstreamState {
  let total = 0
  for (const u of c) total += u.effectiveWeight(now, slowStartMs)
  let x = r * total
  for (const u of c) {
    x -= u.effectiveWeight(now, slowStartMs)
    if (x < 0) return u
  }
  return c[c.length - 1]!
}

/** Prefix sums of static weights, for O(log n) weighted random picks. */
export function cumulativeWeights(c: readonly UpstreamState[]): Float64Array {
  const out = new Float64Array(c.length)
  let sum = 0
  for (let i = 0; i < c.length; i++) out[i] = sum += c[i]!.weight
  return out
}

/** Index of the first prefix sum greater than x (binary search). */
export function searchCumulative(cum: Float64Array, x: number): number {
  let lo = 0
  let hi = cum.length - 1
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (cum[mid]! > x) hi = mid
    else lo = mid + 1
  }
  return lo
}

/**
 * Power of two choices (Mitzenmacher 2001): two distinct random candidates, keep the one with
 * fewer outstanding requests per unit of weight; on a tie the lower latency EWMA. O(1), and it
 * avoids least-connections' herd behaviour when many balancers share stale load information.
 */
export function p2c(c: readonly UpstreamState[], r1: number, r2: number, now: number, slowStartMs: number): UpstreamState {
  const n = c.length
  if (n === 1) return c[0]!
  const i = Math.floor(r1 * n)
  let j = Math.floor(r2 * (n - 1))
  if (j >= i) j++
  const a = c[i]!
  const b = c[j]!
  const sa = (a.active + 1) / a.effectiveWeight(now, slowStartMs)
  const sb = (b.active + 1) / b.effectiveWeight(now, slowStartMs)
  if (sa !== sb) return sa < sb ? a : b
  return (b.latencyEwmaMs ?? 0) < (a.latencyEwmaMs ?? 0) ? b : a
}
