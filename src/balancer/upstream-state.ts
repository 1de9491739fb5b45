import type { UpstreamConfig } from '../config/schema.js'

/** What `GET /upstreams` reports as an upstream's state, in precedence order. */
export const UPSTREAM_STATE = {
  /** Drained by an operator: no new sessions; sticky sessions stay until `drainMs` passes. */
  draining: 'draining',
  /** Active health checks failed `fall` times in a row. */
  down: 'down',
  /** Passive ejection: too many consecutive failures; back when the cooldown ends. */
  ejected: 'ejected',
  /** Recovered recently; its effective weight is still ramping up over `slowStartMs`. */
  slowStart: 'slow-start',
  up: 'up',
} as const
export type UpstreamStateName = (typeof UPSTREAM_STATE)[keyof typeof UPSTREAM_STATE]

export const HEALTH = { up: 'up', down: 'down', unchecked: 'unchecked' } as const
export type Health = (typeof HEALTH)[keyof typeof HEALTH]

/** The read-only face of an upstream that the proxy sees (from `pick`, and in `added`/`removed` events). */
export interface Upstream {
  readonly id: string
  /** The configured URL, as given. */
  readonly url: string
  /** `scheme://host:port`, what an undici Pool is keyed on. */
  readonly origin: string
  /** The URL's path without a trailing slash ('' for none): a prefix the proxy puts before the request path. */
  readonly basePath: string
  readonly weight: number
  readonly backup: boolean
}

/** One row of `balancer.list()`. */
export interface UpstreamSnapshot {
  readonly id: string
  readonly url: string
  readonly state: UpstreamStateName
  readonly weight: number
  readonly effectiveWeight: number
  readonly active: number
  readonly health: Health
  readonly latencyEwmaMs: number | null
  /** Consecutive failures seen by passive checks (reset by a success). */
  readonly failures: number
  /** How many times passive checks ejected it. */
  readonly ejections: number
  /** Epoch ms when the current ejection ends, or null. */
  readonly ejectedUntil: number | null
  readonly backup: boolean
}

export interface PassiveConfig {
  readonly failures: number
  readonly cooldownMs: number
  readonly maxCooldownMs: number
}

/** Weight of a server that has just recovered: small but non-zero, so it is never starved entirely. */
const SLOW_START_FLOOR = 0.05
/** EWMA smoothing for latency: each sample moves the average 20% of the way. */
const EWMA_ALPHA = 0.2

/**
 * The balancer's mutable view of one upstream. State is computed lazily from the injected clock
 * (an ejection ends when `now` passes `ejectedUntil`, a drain deadline when `now` passes
 * `drainedAt + drainMs`), so no timers are needed and ManualClock tests are exact.
 */
export class UpstreamState implements Upstream {
  readonly id: string
  readonly url: string
  readonly origin: string
  readonly basePath: string
  // Weight and backup flag change only through `update` (a config reload).
  #weight: number
  #backup: boolean

  /** `pick`'s answer when no cookie is to be set: allocated once, not per request. */
  readonly plainPick: { readonly upstream: Upstream }

  /** Scratch for smooth weighted round-robin (nginx's `current_weight`); only pickers touch it. */
  swrrCurrent = 0

  #active = 0
  #health: Health
  #rises = 0
  #falls = 0
  #failures = 0
  #ejections = 0
  /** Ejections in the current streak; the cooldown doubles with each. */
  #streak = 0
  #ejectedUntil = 0
  #drainedAt: number | null = null
  /** When it last came back (health up, ejection over, added at runtime): slow start counts from here. */
  #recoveredAt = Number.NEGATIVE_INFINITY
  #ewma: number | null = null
  #removed = false
  /** Waiting for its first health check, which alone brings it up (a member discovery found at runtime). */
  #awaitingCheck = false

  /**
   * `cfg` must be validated already (the balancer does; see `validateUpstream`). `awaitCheck`:
   * with health checks on, start down until the first good check (not optimistic), so a server
   * that has a DNS record before it listens is not sent requests it cannot take.
   */
  constructor(cfg: UpstreamConfig, checked: boolean, awaitCheck = false) {
    const parsed = new URL(cfg.url)
    this.id = cfg.id
    this.url = cfg.url
    this.origin = parsed.origin
    this.basePath = parsed.pathname === '/' ? '' : parsed.pathname.replace(/\/+$/, '')
    this.#weight = cfg.weight ?? 1
    this.#backup = cfg.backup ?? false
    // Optimistic start (as nginx): a configured server takes traffic until checks say otherwise.
    this.#health = checked ? (awaitCheck ? HEALTH.down : HEALTH.up) : HEALTH.unchecked
    this.#awaitingCheck = checked && awaitCheck
    this.plainPick = Object.freeze({ upstream: this })
  }

  get weight(): number {
    return this.#weight
  }
  get backup(): boolean {
    return this.#backup
  }

  /**
   * A reload changed the weight or backup flag of this server (same id, same URL): everything it
   * learned (health, ejection, latency, active requests, slow-start ramp) stays. True when changed.
   */
  update(weight: number, backup: boolean): boolean {
    if (weight === this.#weight && backup === this.#backup) return false
    this.#weight = weight
    this.#backup = backup
    return true
  }

  /**
   * Active health checks were turned on (optimistic, as at startup: up until checks say down) or
   * off (nothing can say up again, so a server that was down is back in).
   */
  setChecked(checked: boolean): void {
    this.#awaitingCheck = false
    this.#rises = 0
    this.#falls = 0
    this.#health = checked ? HEALTH.up : HEALTH.unchecked
  }

  get active(): number {
    return this.#active
  }
  get health(): Health {
    return this.#health
  }
  get latencyEwmaMs(): number | null {
    return this.#ewma
  }
  get failures(): number {
    return this.#failures
  }
  get ejectedUntil(): number {
    return this.#ejectedUntil
  }
  get removed(): boolean {
    return this.#removed
  }
  get draining(): boolean {
    return this.#drainedAt !== null
  }

  /** May take new sessions. */
  isAvailable(now: number): boolean {
    return this.#drainedAt === null && this.#health !== HEALTH.down && now >= this.#ejectedUntil && !this.#removed
  }

  /** May keep an existing sticky session: available, or draining for less than `drainMs`. */
  isStickyUsable(now: number, drainMs: number): boolean {
    if (this.#drainedAt === null) return this.isAvailable(now)
    return this.#health !== HEALTH.down && now >= this.#ejectedUntil && !this.#removed && now - this.#drainedAt < drainMs
  }

  /** Weight with slow start applied: ramps linearly from a small floor to `weight` over `slowStartMs`. */
  effectiveWeight(now: number, slowStartMs: number): number {
    if (slowStartMs <= 0) return this.weight
    const elapsed = now - this.#recoveredAt
    if (elapsed >= slowStartMs) return this.weight
    return this.weight * Math.max(SLOW_START_FLOOR, elapsed / slowStartMs)
  }

  /** Epoch ms when the slow-start ramp ends (≤ now when not ramping). */
  rampEndsAt(slowStartMs: number): number {
    return this.#recoveredAt + slowStartMs
  }

  state(now: number, slowStartMs: number): UpstreamStateName {
    if (this.#drainedAt !== null) return UPSTREAM_STATE.draining
    if (this.#health === HEALTH.down) return UPSTREAM_STATE.down
    if (now < this.#ejectedUntil) return UPSTREAM_STATE.ejected
    if (now - this.#recoveredAt < slowStartMs) return UPSTREAM_STATE.slowStart
    return UPSTREAM_STATE.up
  }

  begin(): void {
    this.#active++
  }

  /** A request cancelled because its client left: only the active count changes. */
  cancel(): void {
    if (this.#active > 0) this.#active--
  }

  /**
   * Records the end of a request. Returns true when this failure ejected the server (so the
   * balancer logs it once and rebuilds its candidate list). `mayEject` is false when no other
   * server could take its traffic: the failures are still counted, but it stays in (as nginx never
   * marks the only server of a group down), so a struggling origin is slow rather than dark.
   */
  end(failed: boolean, connectError: boolean, durationMs: number, now: number, passive: PassiveConfig, mayEject = true): boolean {
    if (this.#active > 0) this.#active--
    // A connect error says nothing about the server's response time.
    if (!connectError && Number.isFinite(durationMs) && durationMs >= 0) {
      this.#ewma = this.#ewma === null ? durationMs : this.#ewma + EWMA_ALPHA * (durationMs - this.#ewma)
    }
    if (!failed) {
      this.#failures = 0
      return false
    }
    // Requests that were in flight when it was ejected must not eject it again.
    if (now < this.#ejectedUntil) return false
    this.#failures++
    if (this.#failures < passive.failures || !mayEject) return false
    // A streak ends when the server stayed in for a whole max cooldown after its last ejection.
    if (this.#ejectedUntil > 0 && now - this.#ejectedUntil > passive.maxCooldownMs) this.#streak = 0
    const cooldown = Math.min(passive.cooldownMs * 2 ** this.#streak, passive.maxCooldownMs)
    this.#streak++
    this.#ejections++
    this.#failures = 0
    this.#ejectedUntil = now + cooldown
    this.#recoveredAt = this.#ejectedUntil
    return true
  }

  get ejections(): number {
    return this.#ejections
  }

  /** Feeds one active health-check result; returns the new health when it changed. */
  checkResult(ok: boolean, rise: number, fall: number, now: number): Health | undefined {
    const first = this.#awaitingCheck
    this.#awaitingCheck = false
    if (ok) {
      this.#falls = 0
      if (this.#health === HEALTH.up) return undefined
      if (++this.#rises < rise && !first) return undefined
      this.#rises = 0
      this.#health = HEALTH.up
      this.#recoveredAt = now
      return HEALTH.up
    }
    this.#rises = 0
    if (this.#health === HEALTH.down) return undefined
    if (++this.#falls < fall) return undefined
    this.#falls = 0
    this.#health = HEALTH.down
    return HEALTH.down
  }

  drain(now: number): boolean {
    if (this.#drainedAt !== null) return false
    this.#drainedAt = now
    return true
  }

  /** Undoes drain and passive ejection (an operator's override); active health still rules. */
  enable(now: number): void {
    const wasOut = this.#drainedAt !== null || now < this.#ejectedUntil
    this.#drainedAt = null
    this.#ejectedUntil = 0
    this.#failures = 0
    this.#streak = 0
    if (wasOut) this.#recoveredAt = now
  }

  /** Starts the slow-start ramp now (a server added at runtime). */
  markRecovered(now: number): void {
    this.#recoveredAt = now
  }

  markRemoved(): void {
    this.#removed = true
  }

  snapshot(now: number, slowStartMs: number): UpstreamSnapshot {
    return {
      id: this.id,
      url: this.url,
      state: this.state(now, slowStartMs),
      weight: this.weight,
      effectiveWeight: Math.round(this.effectiveWeight(now, slowStartMs) * 100) / 100,
      active: this.#active,
      health: this.#health,
      latencyEwmaMs: this.#ewma === null ? null : Math.round(this.#ewma * 100) / 100,
      failures: this.#failures,
      ejections: this.#ejections,
      ejectedUntil: now < this.#ejectedUntil ? this.#ejectedUntil : null,
      backup: this.backup,
    }
  }
}
