import type { RedisClient } from '../core/redis.js'
import { LRUCache } from 'lru-cache'
import type { BalancerConfig, HealthCheckConfig, StickyConfig, UpstreamConfig } from '../config/schema.js'
import { systemClock, type Clock } from '../core/clock.js'
import { StrataError } from '../core/errors.js'
import { headerValue, parseCookies, type Headers } from '../core/headers.js'
import { silentLogger, type Logger } from '../observability/logger.js'
import { hash32 } from './hash.js'
import { HashRing } from './hash-ring.js'
import { HealthChecker } from './health-check.js'
import { findSetCookie, LearnTable } from './learn-table.js'
import {
  ALGORITHM,
  cumulativeWeights,
  leastConnections,
  p2c,
  searchCumulative,
  smoothWeightedSequence,
  swrrStep,
  weightedRandom,
  type Algorithm,
} from './pickers.js'
import { decodeStickyToken, encodeStickyToken, randomStickySecret, type StickyPayload } from './sticky-token.js'
import { HEALTH, UpstreamState, type Upstream, type UpstreamSnapshot } from './upstream-state.js'

/** What `pick` needs to know about a request. Header names lower-case. */
export interface PickRequest {
  readonly ip: string
  /** Request target path (a query string is ignored by `hashOn: "path"`). */
  readonly path: string
  readonly headers: Headers
  /** Parsed cookies, when the caller has them; otherwise parsed from `headers.cookie` if needed. */
  readonly cookies?: ReadonlyMap<string, string> | undefined
}

export interface PickResult {
  readonly upstream: Upstream
  /** A complete Set-Cookie value (insert-mode sticky) to add to the response. */
  readonly setCookie?: string
}

export interface RequestOutcome {
  /** False when the attempt failed without a usable response (connect error, reset, timeout). */
  readonly ok: boolean
  readonly statusCode?: number | undefined
  readonly connectError?: boolean | undefined
  /** The client went away first and the attempt was cancelled: says nothing about the server. */
  readonly aborted?: boolean | undefined
  readonly durationMs: number
}

export type DoneFn = (outcome: RequestOutcome) => void

export interface BalancerEvents {
  added: (upstream: Upstream) => void
  removed: (upstream: Upstream) => void
}

export interface BalancerOptions {
  readonly upstreams: readonly UpstreamConfig[]
  readonly config: BalancerConfig
  readonly clock?: Clock | undefined
  readonly logger?: Logger | undefined
  /** ioredis client for the learn-mode table (shared by every node); owned by the caller. */
  readonly redis?: RedisClient | undefined
  /** Redis key prefix of the learn-mode table (a pool's sessions under its own keys). Default `strata:learn:`. */
  readonly learnKeyPrefix?: string | undefined
  /** How long a learn-table Redis lookup may take before it counts as a miss. Default 250. */
  readonly redisTimeoutMs?: number | undefined
  /** Random source in [0, 1) for random/p2c; injectable for tests. */
  readonly random?: (() => number) | undefined
  /**
   * The insert-mode secret when `sticky.secret` is unset (default: random, made when first needed).
   * The workers of one strata share one, so a cookie issued by one is valid in every other.
   */
  readonly stickySecret?: Buffer | undefined
}

type HashSource = { kind: 'ip' } | { kind: 'path' } | { kind: 'header'; name: string } | { kind: 'cookie'; name: string }

const ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/
/**
 * A member found by DNS service discovery (see discovery.ts): `<entry id>@<IPv4 or IPv6 address>`,
 * e.g. `web@10.0.3.7`, `web@::1`. Still free of quotes, spaces and slashes, so it stays safe in a
 * log line, a metrics label and an admin URL path segment.
 */
const MEMBER_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}@[0-9A-Fa-f:.]{2,45}$/
const STICKY_ATTRIBUTES = '; Path=/; HttpOnly; SameSite=Lax'

/**
 * The load balancer: picks an upstream per request, keeps sticky sessions, tracks health (active
 * checks and passive ejection), and takes runtime changes. Framework-free: the proxy calls
 * `pick` → `begin` → `done`, and the admin routes call `list`/`add`/`remove`/`drain`/`enable`.
 *
 * The hot path (`pick`) works on a candidate list that is rebuilt only when something changes
 * (a state change, or the clock passing the next known deadline: an ejection's end, a slow-start
 * ramp's end), so a pick is O(1) for round-robin, weighted (a precomputed cycle), p2c and
 * sticky hits, O(log n) for random and consistent-hash, O(n) for least-connections.
 */
export class Balancer {
  #config: BalancerConfig
  readonly #clock: Clock
  readonly #log: Logger
  readonly #random: () => number
  readonly #redis: RedisClient | undefined
  readonly #redisTimeoutMs: number | undefined
  readonly #learnKeyPrefix: string | undefined
  // The picking policy: set together by #applyPolicy (construction and reload), read by `pick`.
  // A pick is synchronous, so a reload swaps them between two picks, never during one.
  #algorithm: Algorithm = ALGORITHM.roundRobin
  #hashSource: HashSource | undefined
  #sticky: StickyConfig | null = null
  #secret: string | Buffer = ''
  #idleRefreshMs = Number.POSITIVE_INFINITY
  /**
   * Tokens whose MAC already verified → payload. An HMAC costs microseconds; a returning visitor
   * sends the same token on every request, so a hit here makes a sticky pick a map lookup.
   * Only verified tokens enter, keyed by the exact string, so a forgery can never hit.
   */
  readonly #verified = new LRUCache<string, StickyPayload>({ max: 10_000 })
  #learn: LearnTable | undefined
  #checker: HealthChecker | undefined
  readonly #listeners: { [K in keyof BalancerEvents]: Set<BalancerEvents[K]> } = { added: new Set(), removed: new Set() }

  readonly #upstreams = new Map<string, UpstreamState>()
  #primaryRing: HashRing<UpstreamState> | undefined
  #backupRing: HashRing<UpstreamState> | undefined

  // Candidate cache, rebuilt by #refresh.
  #dirty = true
  #nextChangeAt = 0
  #primaries: UpstreamState[] = []
  #backups: UpstreamState[] = []
  /** primaries when any, else backups: what a pick without exclusions balances over. */
  #tier: UpstreamState[] = []
  #tierIsPrimary = true
  /** Some candidate is in its slow-start ramp: weights are live, precomputed forms are off. */
  #ramping = false
  #schedule: UpstreamState[] | undefined
  #scheduleAt = 0
  #cumulative: Float64Array | undefined
  #rr = 0
  /** Upstreams whose ejection was logged and whose return is not yet logged. */
  readonly #ejected = new Set<UpstreamState>()
  /** Answered statuses that count as passive-health failures (`passive.statuses`). */
  #failStatuses: ReadonlySet<number> = new Set()
  /**
   * Nothing is available (every server down or ejected), so the candidates are every server not
   * drained or removed: as nginx, try them anyway rather than answer 503 to everyone.
   */
  #tryingAll = false

  // Scratch for the ring's accept callback (one closure for the balancer's life, not one per pick).
  #acceptNow = 0
  #acceptExclude: ReadonlySet<string> | undefined
  readonly #accept = (u: UpstreamState): boolean =>
    (this.#tryingAll ? isTryable(u) : u.isAvailable(this.#acceptNow)) && !(this.#acceptExclude?.has(u.id) ?? false)

  #started = false
  #closed = false
  /** Health checkers replaced by a reload, still closing (awaited by `close`). */
  readonly #retiring = new Set<Promise<void>>()
  /** The secret of insert-mode cookies when `sticky.secret` is unset: one per process, kept across reloads. */
  #randomSecret: Buffer | undefined

  constructor(opts: BalancerOptions) {
    const config = opts.config
    this.#config = config
    this.#clock = opts.clock ?? systemClock
    this.#log = (opts.logger ?? silentLogger).child({ module: 'balancer' })
    this.#random = opts.random ?? Math.random
    this.#redis = opts.redis
    this.#redisTimeoutMs = opts.redisTimeoutMs
    this.#learnKeyPrefix = opts.learnKeyPrefix
    this.#randomSecret = opts.stickySecret
    this.#applyPolicy(config, undefined)

    const checked = config.healthCheck !== null
    for (const cfg of opts.upstreams) {
      validateUpstream(cfg, 'STRATA_CONFIG_INVALID')
      if (this.#upstreams.has(cfg.id)) throw new StrataError('STRATA_CONFIG_INVALID', `duplicate upstream id "${cfg.id}"`)
      this.#upstreams.set(cfg.id, new UpstreamState(cfg, checked))
    }
    this.#rebuildRings()
    this.#checker = this.#makeChecker(config.healthCheck)
  }

  /** Whether `pick` reads cookies (so the proxy can skip parsing them otherwise). */
  get needsCookies(): boolean {
    return this.#sticky !== null || this.#hashSource?.kind === 'cookie'
  }

  /** Starts active health checks, when configured. Idempotent. */
  start(): void {
    if (this.#started || this.#closed) return
    this.#started = true
    this.#checker?.start()
  }

  /** Runs one round of active health checks now (for tests and for `enable` right after a fix). */
  async checkNow(): Promise<void> {
    await this.#checker?.runOnce()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.all([this.#checker?.close(), ...this.#retiring])
    this.#learn?.clear()
    this.#verified.clear()
    this.#listeners.added.clear()
    this.#listeners.removed.clear()
  }

  on<K extends keyof BalancerEvents>(event: K, listener: BalancerEvents[K]): this {
    this.#listeners[event].add(listener)
    return this
  }

  off<K extends keyof BalancerEvents>(event: K, listener: BalancerEvents[K]): this {
    this.#listeners[event].delete(listener)
    return this
  }

  /** The upstream with this id, if configured. */
  get(id: string): Upstream | undefined {
    return this.#upstreams.get(id)
  }

  // ---------------------------------------------------------------------------------------------
  // The hot path

  /**
   * Picks the upstream for a request. `exclude` holds the ids a retry already tried. Undefined
   * means nothing is available: answer 503 with `Retry-After: retryAfterSeconds()`.
   *
   * In learn mode with Redis, a session this node has not seen yet is only found by `pickAsync`;
   * `pick` then balances it normally.
   */
  pick(req: PickRequest, exclude?: ReadonlySet<string>): PickResult | undefined {
    const now = this.#clock.now()
    this.#refresh(now)
    const sticky = this.#sticky
    if (sticky === null) return this.#balance(req, exclude, now)?.plainPick
    const cookies = req.cookies ?? parseCookies(headerValue(req.headers, 'cookie'))
    if (sticky.mode === 'insert') return this.#pickInsert(req, cookies, sticky.cookie, exclude, now)
    return this.#pickLearn(req, cookies, sticky.cookie, exclude, now)
  }

  /** `pick`, after looking a learn-mode session up in Redis when this node does not know it. */
  async pickAsync(req: PickRequest, exclude?: ReadonlySet<string>): Promise<PickResult | undefined> {
    const learn = this.#learn
    if (learn?.shared && this.#sticky !== null) {
      const cookies = req.cookies ?? parseCookies(headerValue(req.headers, 'cookie'))
      const sid = cookies.get(this.#sticky.cookie)
      if (sid && learn.getLocal(sid) === undefined) await learn.fetch(sid)
      return this.pick(req.cookies === undefined ? { ...req, cookies } : req, exclude)
    }
    return this.pick(req, exclude)
  }

  /**
   * Counts a request as active on `upstream` (least-connections, p2c) until the returned function
   * is called with its outcome. Calling it again is a no-op.
   */
  begin(upstream: Upstream): DoneFn {
    const u = this.#own(upstream)
    u.begin()
    let finished = false
    return (outcome) => {
      if (finished) return
      finished = true
      this.#end(u, outcome)
    }
  }

  /**
   * Learn mode: remembers the session id the application just set (Set-Cookie values of the
   * response) → `upstream`. A no-op in other modes, or when the cookie is absent or being deleted
   * (entries then expire by `ttlMs`).
   */
  learnFromResponse(upstream: Upstream, setCookie: string | readonly string[] | undefined): void {
    if (this.#learn === undefined || this.#sticky === null || setCookie === undefined) return
    const sid = findSetCookie(setCookie, this.#sticky.cookie)
    if (sid) this.#learn.set(sid, upstream.id)
  }

  /**
   * Insert mode: the Cookie header without our sticky cookie, so the application never sees it
   * (HAProxy `cookie … indirect`). Undefined when nothing is left. Other modes: unchanged.
   */
  stripStickyCookie(cookieHeader: string | undefined): string | undefined {
    if (cookieHeader === undefined || this.#sticky?.mode !== 'insert') return cookieHeader
    const name = this.#sticky.cookie
    if (!cookieHeader.includes(name)) return cookieHeader
    let out = ''
    for (const part of cookieHeader.split(';')) {
      const eq = part.indexOf('=')
      if ((eq === -1 ? part : part.slice(0, eq)).trim() === name) continue
      const kept = part.trim()
      if (kept) out = out ? `${out}; ${kept}` : kept
    }
    return out || undefined
  }

  /**
   * Seconds a client should wait before retrying when `pick` found nothing: until the earliest
   * passive ejection ends, else one health-check rise, else 1.
   */
  retryAfterSeconds(): number {
    const now = this.#clock.now()
    let soonest = Number.POSITIVE_INFINITY
    for (const u of this.#upstreams.values()) {
      if (!u.draining && u.health !== HEALTH.down && u.ejectedUntil > now) soonest = Math.min(soonest, u.ejectedUntil)
    }
    if (soonest !== Number.POSITIVE_INFINITY) return Math.max(1, Math.ceil((soonest - now) / 1000))
    const hc = this.#config.healthCheck
    if (hc !== null) return Math.max(1, Math.ceil((hc.intervalMs * hc.rise) / 1000))
    return 1
  }

  // ---------------------------------------------------------------------------------------------
  // Runtime control (admin API)

  list(): UpstreamSnapshot[] {
    const now = this.#clock.now()
    const out: UpstreamSnapshot[] = []
    for (const u of this.#upstreams.values()) out.push(u.snapshot(now, this.#config.slowStartMs))
    return out
  }

  /**
   * Adds an upstream; it ramps up over `slowStartMs`. STRATA_ADMIN_CONFLICT when the id exists.
   * `awaitCheck`: with health checks on, it takes no request until its first check passes
   * (discovery: a replica has a DNS record before it listens).
   */
  add(cfg: UpstreamConfig, opts: { awaitCheck?: boolean } = {}): UpstreamSnapshot {
    validateUpstream(cfg, 'STRATA_ADMIN_BAD_BODY')
    if (this.#upstreams.has(cfg.id)) throw new StrataError('STRATA_ADMIN_CONFLICT', `upstream "${cfg.id}" already exists`)
    const now = this.#clock.now()
    const u = new UpstreamState(cfg, this.#config.healthCheck !== null, opts.awaitCheck === true)
    u.markRecovered(now)
    this.#upstreams.set(u.id, u)
    this.#rebuildRings()
    this.#dirty = true
    this.#log.info({ upstream: u.id, url: u.url }, 'upstream added')
    for (const l of this.#listeners.added) l(u)
    return u.snapshot(now, this.#config.slowStartMs)
  }

  /**
   * Removes an upstream at once: no new requests; requests in flight finish on their own
   * connections (the proxy closes its pool gracefully on `removed`). Sticky users move.
   */
  remove(id: string): void {
    const u = this.#find(id)
    u.markRemoved()
    this.#upstreams.delete(id)
    this.#ejected.delete(u)
    this.#rebuildRings()
    this.#dirty = true
    this.#log.info({ upstream: id }, 'upstream removed')
    for (const l of this.#listeners.removed) l(u)
  }

  /**
   * A config reload of the `balancer` section; every key applies at once. The picking policy
   * (algorithm, hashing, sticky settings) is swapped in one synchronous step, so each pick sees
   * either the old policy or the new one. Sticky changes apply to the next request: a cookie
   * under the old name, or signed with the old secret, no longer matches, and that user is
   * balanced afresh (and, in insert mode, issued a new cookie). Changed health-check settings
   * replace the checker (its first round runs at once); the upstreams keep their health.
   * Throws STRATA_CONFIG_INVALID (changing nothing) for a `hashOn` it cannot parse.
   */
  reconfigure(config: BalancerConfig): void {
    const old = this.#config
    this.#applyPolicy(config, old)
    this.#config = config
    if (!sameJson(old.healthCheck, config.healthCheck)) this.#replaceChecker(old.healthCheck !== null, config.healthCheck)
    this.#dirty = true
    const changed = Object.keys(config).filter((k) => !sameJson(old[k as keyof BalancerConfig], config[k as keyof BalancerConfig]))
    if (changed.length > 0) this.#log.info({ changed, algorithm: config.algorithm }, 'balancer reconfigured')
  }

  /**
   * A config reload's upstream list. An upstream whose id and url stay is updated in place (weight,
   * backup flag): it keeps its health, ejection state, latency average and active requests, and
   * does not start over in slow start. One whose url changed is another server: removed and added
   * (so it ramps up). New ids are added, missing ones removed (their in-flight requests finish).
   * The whole list is validated first, so a bad entry changes nothing.
   */
  setUpstreams(list: readonly UpstreamConfig[]): void {
    const next = new Map<string, UpstreamConfig>()
    for (const cfg of list) {
      validateUpstream(cfg, 'STRATA_CONFIG_INVALID')
      if (next.has(cfg.id)) throw new StrataError('STRATA_CONFIG_INVALID', `duplicate upstream id "${cfg.id}"`)
      next.set(cfg.id, cfg)
    }
    for (const u of [...this.#upstreams.values()]) {
      const cfg = next.get(u.id)
      if (cfg === undefined || cfg.url !== u.url) this.remove(u.id)
    }
    let updated = false
    for (const cfg of next.values()) {
      const u = this.#upstreams.get(cfg.id)
      if (u === undefined) {
        this.add(cfg)
      } else if (u.update(cfg.weight ?? 1, cfg.backup ?? false)) {
        updated = true
        this.#log.info({ upstream: u.id, weight: u.weight, backup: u.backup }, 'upstream updated in place')
      }
    }
    if (updated) {
      this.#rebuildRings()
      this.#dirty = true
    }
  }

  /** No new sessions; sticky sessions keep it for `drainMs`, then move. Idempotent. */
  drain(id: string): UpstreamSnapshot {
    const u = this.#find(id)
    const now = this.#clock.now()
    if (u.drain(now)) {
      this.#dirty = true
      this.#log.info({ upstream: id, drainMs: this.#config.drainMs }, 'upstream draining')
    }
    return u.snapshot(now, this.#config.slowStartMs)
  }

  /** Ends a drain and any passive ejection; active health checks still decide up/down. */
  enable(id: string): UpstreamSnapshot {
    const u = this.#find(id)
    const now = this.#clock.now()
    u.enable(now)
    this.#ejected.delete(u)
    this.#dirty = true
    this.#log.info({ upstream: id }, 'upstream enabled')
    return u.snapshot(now, this.#config.slowStartMs)
  }

  // ---------------------------------------------------------------------------------------------
  // Internals

  /**
   * Sets the picking policy from `config`. Everything that can fail is computed before anything is
   * assigned, so a bad config leaves the old policy whole. `old` is undefined at construction.
   */
  #applyPolicy(config: BalancerConfig, old: BalancerConfig | undefined): void {
    const hashSource = config.algorithm === ALGORITHM.consistentHash ? parseHashOn(config.hashOn) : undefined
    if (old === undefined || !sameJson(old.sticky, config.sticky)) this.#applySticky(config.sticky)
    this.#algorithm = config.algorithm
    this.#hashSource = hashSource
    this.#failStatuses = new Set(config.passive.statuses)
    this.#rebuildRings()
  }

  #applySticky(sticky: StickyConfig | null): void {
    let secret: string | Buffer = ''
    let idleRefreshMs = Number.POSITIVE_INFINITY
    if (sticky?.mode === 'insert') {
      if (sticky.secret === undefined) {
        this.#log.warn('sticky.secret is not set: using a random secret, so sticky cookies die with this process and other nodes reject them')
        this.#randomSecret ??= randomStickySecret()
      }
      secret = sticky.secret ?? this.#randomSecret!
      // Re-sign lastSeen at most every quarter of maxIdleMs: one HMAC per request is enough, two is waste.
      if (sticky.maxIdleMs !== undefined) idleRefreshMs = Math.max(1, Math.floor(sticky.maxIdleMs / 4))
    }
    const learn =
      sticky?.mode === 'learn'
        ? new LearnTable(sticky.cookie, { ttlMs: sticky.ttlMs, clock: this.#clock, logger: this.#log, redis: this.#redis, redisTimeoutMs: this.#redisTimeoutMs, keyPrefix: this.#learnKeyPrefix })
        : undefined
    this.#learn?.clear()
    this.#learn = learn
    this.#sticky = sticky
    this.#secret = secret
    this.#idleRefreshMs = idleRefreshMs
    // Tokens verified under the old settings must be checked again (a changed secret rejects them).
    this.#verified.clear()
  }

  #makeChecker(hc: HealthCheckConfig | null): HealthChecker | undefined {
    if (hc === null) return undefined
    return new HealthChecker({
      config: hc,
      targets: () => this.#upstreams.values(),
      onResult: (u, ok, detail) => this.#onCheck(u, ok, detail, hc),
      logger: this.#log,
    })
  }

  /**
   * New health-check settings: the old checker stops (its checks in flight are aborted and report
   * nothing) and a new one starts with a round at once. Upstreams keep their health; when checks
   * are turned on they start up (as at startup), when turned off a server that was down is in again.
   */
  #replaceChecker(wasChecked: boolean, hc: HealthCheckConfig | null): void {
    const prev = this.#checker
    this.#checker = this.#makeChecker(hc)
    if (prev !== undefined) {
      const closing = prev.close().catch((err: unknown) => this.#log.error({ err }, 'closing the replaced health checker failed'))
      this.#retiring.add(closing)
      void closing.then(() => this.#retiring.delete(closing))
    }
    if (wasChecked !== (hc !== null)) for (const u of this.#upstreams.values()) u.setChecked(hc !== null)
    if (this.#started && !this.#closed) this.#checker?.start()
  }

  #pickInsert(req: PickRequest, cookies: ReadonlyMap<string, string>, name: string, exclude: ReadonlySet<string> | undefined, now: number): PickResult | undefined {
    const token = cookies.get(name)
    if (token !== undefined) {
      let p = this.#verified.get(token)
      if (p === undefined) {
        p = decodeStickyToken(this.#secret, token)
        if (p !== undefined) this.#verified.set(token, p)
      }
      if (p !== undefined && this.#fresh(p, now)) {
        const u = this.#upstreams.get(p.id)
        if (u !== undefined && u.isStickyUsable(now, this.#config.drainMs) && !(exclude?.has(u.id) ?? false)) {
          if (now - p.lastSeen < this.#idleRefreshMs) return u.plainPick
          return { upstream: u, setCookie: this.#cookie(u.id, p.issuedAt, now) }
        }
      }
    }
    // No cookie, a tampered/foreign/expired one, or its server cannot take it: balance and (re)issue.
    const u = this.#balance(req, exclude, now)
    return u && { upstream: u, setCookie: this.#cookie(u.id, now, now) }
  }

  #pickLearn(req: PickRequest, cookies: ReadonlyMap<string, string>, name: string, exclude: ReadonlySet<string> | undefined, now: number): PickResult | undefined {
    const learn = this.#learn!
    const sid = cookies.get(name)
    if (sid) {
      const id = learn.getLocal(sid)
      if (id !== undefined) {
        const u = this.#upstreams.get(id)
        if (u !== undefined && u.isStickyUsable(now, this.#config.drainMs) && !(exclude?.has(id) ?? false)) {
          learn.touch(sid)
          return u.plainPick
        }
        // A known session whose server cannot take it: move it, and remember where it went.
        const moved = this.#balance(req, exclude, now)
        if (moved !== undefined) learn.set(sid, moved.id)
        return moved?.plainPick
      }
    }
    return this.#balance(req, exclude, now)?.plainPick
  }

  #fresh(p: StickyPayload, now: number): boolean {
    const s = this.#sticky
    if (s?.mode !== 'insert') return false
    if (s.maxLifeMs !== undefined && now - p.issuedAt > s.maxLifeMs) return false
    if (s.maxIdleMs !== undefined && now - p.lastSeen > s.maxIdleMs) return false
    return true
  }

  #cookie(id: string, issuedAt: number, lastSeen: number): string {
    return `${this.#sticky!.cookie}=${encodeStickyToken(this.#secret, { id, issuedAt, lastSeen })}${STICKY_ATTRIBUTES}`
  }

  /** Picks by algorithm among available servers (primaries, else backups), minus `exclude`. */
  #balance(req: PickRequest, exclude: ReadonlySet<string> | undefined, now: number): UpstreamState | undefined {
    let c = this.#tier
    let primary = this.#tierIsPrimary
    const filtered = exclude !== undefined && exclude.size > 0
    if (filtered) {
      // Retry path only: a small allocation is fine here.
      c = this.#primaries.filter((u) => !exclude.has(u.id))
      primary = true
      if (c.length === 0) {
        c = this.#backups.filter((u) => !exclude.has(u.id))
        primary = false
      }
    }
    if (c.length === 0) return undefined
    const slow = this.#config.slowStartMs
    switch (this.#algorithm) {
      case ALGORITHM.roundRobin:
        return this.#roundRobin(c, now)
      case ALGORITHM.weighted:
        if (!filtered && !this.#ramping) {
          const s = this.#weightedSchedule()
          if (s !== undefined) {
            const i = this.#scheduleAt
            this.#scheduleAt = i + 1 === s.length ? 0 : i + 1
            return s[i]!
          }
        }
        return swrrStep(c, now, slow)
      case ALGORITHM.leastConnections:
        this.#rr = (this.#rr + 1) & 0x3fffffff // stays a small integer (no heap numbers on the hot path)
        return leastConnections(c, this.#rr, now, slow)
      case ALGORITHM.random:
        if (!filtered && !this.#ramping) {
          this.#cumulative ??= cumulativeWeights(c)
          return c[searchCumulative(this.#cumulative, this.#random() * this.#cumulative[c.length - 1]!)]!
        }
        return weightedRandom(c, this.#random(), now, slow)
      case ALGORITHM.p2c:
        return p2c(c, this.#random(), this.#random(), now, slow)
      case ALGORITHM.consistentHash: {
        const h = this.#hashKey(req)
        if (h === undefined) return this.#roundRobin(c, now) // no key to hash on: spread evenly
        const ring = primary ? this.#primaryRing : this.#backupRing
        this.#acceptNow = now
        this.#acceptExclude = filtered ? exclude : undefined
        const u = ring?.lookup(h, this.#accept)
        this.#acceptExclude = undefined
        return u
      }
    }
  }

  /**
   * Plain rotation. Round-robin has no weights, so slow start is applied as a probability: a
   * ramping server at 30% of its ramp takes its turn 30% of the time (the rest go to the next).
   */
  #roundRobin(c: readonly UpstreamState[], now: number): UpstreamState {
    const n = c.length
    const slow = this.#config.slowStartMs
    for (let k = 0; k < n; k++) {
      const u = c[this.#rr % n]!
      this.#rr = (this.#rr + 1) & 0x3fffffff
      if (!this.#ramping || this.#random() * u.weight < u.effectiveWeight(now, slow)) return u
    }
    return c[this.#rr % n]!
  }

  #weightedSchedule(): UpstreamState[] | undefined {
    if (this.#schedule !== undefined) return this.#schedule.length > 0 ? this.#schedule : undefined
    const tier = this.#tier
    const seq = smoothWeightedSequence(tier.map((u) => u.weight))
    // An empty array marks "too long to precompute" so it is not retried on every pick.
    this.#schedule = seq === undefined ? [] : seq.map((i) => tier[i]!)
    this.#scheduleAt = 0
    return this.#schedule.length > 0 ? this.#schedule : undefined
  }

  #hashKey(req: PickRequest): number | undefined {
    const src = this.#hashSource!
    switch (src.kind) {
      case 'ip':
        return req.ip ? hash32(req.ip) : undefined
      case 'path': {
        const q = req.path.indexOf('?')
        return hash32(req.path, 0, q === -1 ? req.path.length : q)
      }
      case 'header': {
        const v = headerValue(req.headers, src.name)
        return v ? hash32(v) : undefined
      }
      case 'cookie': {
        const v = (req.cookies ?? parseCookies(headerValue(req.headers, 'cookie'))).get(src.name)
        return v ? hash32(v) : undefined
      }
    }
  }

  /** Rebuilds the candidate lists when state changed or the clock passed a known deadline. */
  #refresh(now: number): void {
    if (!this.#dirty && now < this.#nextChangeAt) return
    const slow = this.#config.slowStartMs
    const primaries: UpstreamState[] = []
    const backups: UpstreamState[] = []
    let next = Number.POSITIVE_INFINITY
    let ramping = false
    for (const u of this.#upstreams.values()) {
      u.swrrCurrent = 0
      if (u.ejectedUntil > now) next = Math.min(next, u.ejectedUntil)
      else if (this.#ejected.delete(u)) this.#log.info({ upstream: u.id }, 'upstream back from passive ejection')
      if (!u.isAvailable(now)) continue
      ;(u.backup ? backups : primaries).push(u)
      const rampEnd = u.rampEndsAt(slow)
      if (rampEnd > now) {
        ramping = true
        next = Math.min(next, rampEnd)
      }
    }
    const tryingAll = primaries.length === 0 && backups.length === 0
    if (tryingAll) {
      for (const u of this.#upstreams.values()) if (isTryable(u)) (u.backup ? backups : primaries).push(u)
      ramping = false
    }
    if (tryingAll !== this.#tryingAll && primaries.length + backups.length > 0) {
      if (tryingAll) this.#log.warn({ upstreams: primaries.concat(backups).map((u) => u.id) }, 'no upstream is available: trying them all anyway')
      else this.#log.info('an upstream is available again')
    }
    this.#tryingAll = tryingAll
    this.#primaries = primaries
    this.#backups = backups
    this.#tierIsPrimary = primaries.length > 0
    this.#tier = this.#tierIsPrimary ? primaries : backups
    this.#ramping = ramping
    this.#schedule = undefined
    this.#cumulative = undefined
    this.#nextChangeAt = next
    this.#dirty = false
  }

  #rebuildRings(): void {
    if (this.#algorithm !== ALGORITHM.consistentHash) {
      this.#primaryRing = this.#backupRing = undefined
      return
    }
    const all = [...this.#upstreams.values()]
    this.#primaryRing = new HashRing(all.filter((u) => !u.backup))
    this.#backupRing = new HashRing(all.filter((u) => u.backup))
  }

  #end(u: UpstreamState, o: RequestOutcome): void {
    if (o.aborted === true) return u.cancel()
    // Connection errors, resets and timeouts always count; an answered status only when listed.
    const failed = o.connectError === true || !o.ok || (o.statusCode !== undefined && this.#failStatuses.has(o.statusCode))
    const now = this.#clock.now()
    const ejected = u.end(failed, o.connectError === true, o.durationMs, now, this.#config.passive, failed && this.#othersAvailable(u, now))
    if (ejected && !u.removed) {
      this.#dirty = true
      this.#ejected.add(u)
      this.#log.warn({ upstream: u.id, until: new Date(u.ejectedUntil).toISOString(), cooldownMs: u.ejectedUntil - now, ejections: u.ejections }, 'upstream ejected after consecutive failures')
    }
  }

  /** Could another server take `u`'s traffic now? Passive health never takes out the last one. */
  #othersAvailable(u: UpstreamState, now: number): boolean {
    for (const v of this.#upstreams.values()) if (v !== u && v.isAvailable(now)) return true
    return false
  }

  #onCheck(upstream: Upstream, ok: boolean, detail: string, hc: HealthCheckConfig): void {
    const u = this.#upstreams.get(upstream.id)
    if (u === undefined || u !== upstream) return // removed meanwhile
    const change = u.checkResult(ok, hc.rise, hc.fall, this.#clock.now())
    if (change === undefined) return
    this.#dirty = true
    if (change === HEALTH.up) this.#log.info({ upstream: u.id, detail }, 'upstream is up (health check)')
    else this.#log.warn({ upstream: u.id, detail }, 'upstream is down (health check)')
  }

  #own(upstream: Upstream): UpstreamState {
    if (upstream instanceof UpstreamState) return upstream
    const u = this.#upstreams.get(upstream.id)
    if (u === undefined) throw new StrataError('STRATA_ADMIN_NOT_FOUND', `no upstream "${upstream.id}"`)
    return u
  }

  #find(id: string): UpstreamState {
    const u = this.#upstreams.get(id)
    if (u === undefined) throw new StrataError('STRATA_ADMIN_NOT_FOUND', `no upstream "${id}"`)
    return u
  }
}

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/** May take a request when nothing is available: anything an operator did not drain or remove. */
function isTryable(u: UpstreamState): boolean {
  return !u.draining && !u.removed
}

function parseHashOn(hashOn: string): HashSource {
  if (hashOn === 'ip') return { kind: 'ip' }
  if (hashOn === 'path') return { kind: 'path' }
  if (hashOn.startsWith('header:') && hashOn.length > 7) return { kind: 'header', name: hashOn.slice(7).toLowerCase() }
  if (hashOn.startsWith('cookie:') && hashOn.length > 7) return { kind: 'cookie', name: hashOn.slice(7) }
  throw new StrataError('STRATA_CONFIG_INVALID', `balancer.hashOn must be ip, path, header:<name> or cookie:<name>; got ${JSON.stringify(hashOn)}`)
}

function validateUpstream(cfg: UpstreamConfig, code: 'STRATA_CONFIG_INVALID' | 'STRATA_ADMIN_BAD_BODY'): void {
  if (typeof cfg.id !== 'string' || !(ID_PATTERN.test(cfg.id) || MEMBER_ID_PATTERN.test(cfg.id))) {
    throw new StrataError(code, `upstream id must match ${ID_PATTERN.source}`)
  }
  let url: URL
  try {
    url = new URL(cfg.url)
  } catch (cause) {
    throw new StrataError(code, `upstream "${cfg.id}": invalid url ${JSON.stringify(cfg.url)}`, { cause })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new StrataError(code, `upstream "${cfg.id}": url must be http: or https:`)
  const w = cfg.weight
  if (w !== undefined && (!Number.isInteger(w) || w < 1 || w > 1000)) throw new StrataError(code, `upstream "${cfg.id}": weight must be an integer 1..1000`)
}
