import { promises as dns } from 'node:dns'
import { isIP } from 'node:net'
import type { UpstreamConfig } from '../config/schema.js'
import { silentLogger, type Logger } from '../observability/logger.js'
import type { Balancer } from './balancer.js'

/**
 * DNS service discovery: an upstream entry with `"resolve": true` names a service, not a server.
 * Its host is resolved at start and every `resolveEveryMs`, and every address in the answer
 * becomes a balancer member `<entry id>@<address>` (`web@10.0.3.7`, `web@::1`) with the entry's
 * url (host replaced by the address), weight and backup flag. This is what turns Docker's DNS
 * round-robin for `docker compose up --scale web=3` into real balancing (nginx `server … resolve`,
 * HAProxy `server-template` + `resolvers`).
 *
 * Members go in and out through `balancer.add` / `balancer.remove`, never `setUpstreams`, so the
 * upstreams an operator added through the admin API survive every resolution. A removed member
 * takes no new requests, its in-flight requests finish on their own connections (the proxy closes
 * its pool gracefully on `removed`), and its sticky users move at once.
 */

/** Resolves a host name to its addresses (A and AAAA). Injectable, so tests drive discovery with fake answers. */
export type Resolver = (host: string) => Promise<Array<{ address: string; family: number }>>

/** getaddrinfo through libuv, as every other connection of the process: /etc/hosts, then DNS. A literal IP resolves to itself. */
export const defaultResolver: Resolver = (host) => dns.lookup(host, { all: true, verbatim: true })

/** How often an entry is resolved again when it names no `resolveEveryMs`. */
export const DEFAULT_RESOLVE_EVERY_MS = 5000

/** The part of the Balancer that discovery uses (a narrow face, so tests can watch the calls). */
export type MemberSink = Pick<Balancer, 'add' | 'remove' | 'get'>

export interface UpstreamDiscoveryOptions {
  readonly balancer: MemberSink
  /** The pool's upstream entries, as configured; only those with `resolve: true` are watched. */
  readonly entries: readonly UpstreamConfig[]
  readonly resolver?: Resolver | undefined
  readonly logger?: Logger | undefined
  /**
   * How long one resolution may take before it counts as failed (default: `resolveEveryMs`, at
   * least 1000). A lookup that hangs never holds up `start()` or stacks up: the next one for that
   * entry waits until it settles.
   */
  readonly timeoutMs?: number | undefined
}

/** One watched entry, for the admin API and /stats. */
export interface DiscoverySnapshot {
  readonly id: string
  readonly host: string
  readonly resolveEveryMs: number
  /** Member ids in the balancer now, sorted. */
  readonly members: string[]
  /** The last resolution failed or came back empty (the members above are the last good answer). */
  readonly failing: boolean
  readonly lastError: string | null
  /** Epoch ms of the last good answer, or null before the first one. */
  readonly resolvedAt: number | null
}

/** The entries a Balancer is built with: everything but the names discovery resolves. */
export function staticUpstreams(entries: readonly UpstreamConfig[]): UpstreamConfig[] {
  return entries.filter((e) => e.resolve !== true)
}

/** `web` + `10.0.3.7` → `web@10.0.3.7`. */
export function memberId(entryId: string, address: string): string {
  return `${entryId}@${address}`
}

/**
 * The entry's url with the host replaced by `address` (IPv6 bracketed); port, path and query kept.
 * No trailing slash is added where the entry had none, so the url reads as configured.
 */
export function memberUrl(entryUrl: string, address: string): string {
  const u = new URL(entryUrl)
  u.hostname = isIP(address) === 6 ? `[${address}]` : address
  const href = u.href
  const bare = u.pathname === '/' && u.search === '' && u.hash === '' && !entryUrl.endsWith('/')
  return bare ? href.slice(0, -1) : href
}

/** Keys of an entry that, when changed by a reload, change its members' config in place. */
const sameMemberShape = (a: UpstreamConfig, b: UpstreamConfig): boolean => (a.weight ?? 1) === (b.weight ?? 1) && (a.backup ?? false) === (b.backup ?? false)

/**
 * Watches the `resolve: true` entries of one pool and keeps the balancer's members in line with
 * their DNS answers. See the module comment.
 */
export class UpstreamDiscovery {
  readonly #balancer: MemberSink
  readonly #resolver: Resolver
  readonly #log: Logger
  readonly #timeoutMs: number | undefined
  readonly #watches = new Map<string, EntryWatch>()
  #started = false
  #closed = false

  constructor(opts: UpstreamDiscoveryOptions) {
    this.#balancer = opts.balancer
    this.#resolver = opts.resolver ?? defaultResolver
    this.#log = (opts.logger ?? silentLogger).child({ module: 'discovery' })
    this.#timeoutMs = opts.timeoutMs
    for (const e of opts.entries) if (e.resolve === true) this.#watches.set(e.id, this.#watch(e))
  }

  /**
   * Resolves every entry once, adds the members, then keeps re-resolving on each entry's timer.
   * Never rejects: an entry whose first resolution fails starts with no members (logged) and is
   * tried again on its timer, so strata still starts when a name does not resolve yet.
   */
  async start(): Promise<void> {
    if (this.#started || this.#closed) return
    this.#started = true
    await Promise.all([...this.#watches.values()].map((w) => w.resolveNow()))
  }

  /** Resolves every entry now (joining a resolution already running); for tests and operators. */
  async resolveNow(): Promise<void> {
    await Promise.all([...this.#watches.values()].map((w) => w.resolveNow()))
  }

  /**
   * A config reload's entries. Entries no longer there (or no longer `resolve`) lose their
   * members; new ones are resolved now; one whose url changed is another service (its members are
   * removed, the new name resolved now); a changed weight or backup flag is applied to the members
   * (in place when the caller already did it with `setUpstreams`, see `memberConfigs`, else by
   * replacing them). Resolves once the new entries have had their first answer.
   */
  async update(entries: readonly UpstreamConfig[]): Promise<void> {
    if (this.#closed) return
    const next = new Map<string, UpstreamConfig>()
    for (const e of entries) if (e.resolve === true) next.set(e.id, e)
    const fresh: EntryWatch[] = []
    for (const [id, w] of this.#watches) {
      const e = next.get(id)
      if (e !== undefined && e.url === w.entry.url) continue
      w.close()
      this.#removeMembers(w, [...w.addresses])
      this.#watches.delete(id)
      this.#log.info({ upstream: id }, e === undefined ? 'upstream no longer resolved: members removed' : 'resolved upstream url changed: members replaced')
    }
    for (const e of next.values()) {
      const w = this.#watches.get(e.id)
      if (w === undefined) {
        const nw = this.#watch(e)
        this.#watches.set(e.id, nw)
        fresh.push(nw)
      } else {
        const reshaped = !sameMemberShape(w.entry, e)
        w.setEntry(e)
        if (reshaped) this.#reshape(w)
      }
    }
    if (this.#started) await Promise.all(fresh.map((w) => w.resolveNow()))
  }

  /** Stops every timer; members stay in the balancer (it is closing too, or the caller decides). */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const w of this.#watches.values()) w.close()
  }

  /** Member ids of one entry, sorted; empty for an unknown entry or one not resolved yet. */
  members(entryId: string): string[] {
    const w = this.#watches.get(entryId)
    return w === undefined ? [] : [...w.addresses].map((a) => memberId(entryId, a)).sort()
  }

  /**
   * The members' configs, for `balancer.setUpstreams` on a reload (which removes whatever it is not
   * given): with `entries` (the reload's), only members of entries that stay with the same url,
   * carrying the new weight and backup flag, so `setUpstreams` updates them in place and they keep
   * their health, stickiness and slow-start state.
   */
  memberConfigs(entries?: readonly UpstreamConfig[]): UpstreamConfig[] {
    const next = entries === undefined ? undefined : new Map(entries.filter((e) => e.resolve === true).map((e) => [e.id, e]))
    const out: UpstreamConfig[] = []
    for (const w of this.#watches.values()) {
      const e = next === undefined ? w.entry : next.get(w.entry.id)
      if (e === undefined || e.url !== w.entry.url) continue
      for (const a of w.addresses) out.push(memberConfig(e, a))
    }
    return out
  }

  snapshot(): DiscoverySnapshot[] {
    return [...this.#watches.values()].map((w) => ({
      id: w.entry.id,
      host: w.host,
      resolveEveryMs: w.everyMs,
      members: this.members(w.entry.id),
      failing: w.failing,
      lastError: w.lastError,
      resolvedAt: w.resolvedAt,
    }))
  }

  #watch(entry: UpstreamConfig): EntryWatch {
    return new EntryWatch(entry, {
      resolver: this.#resolver,
      timeoutMs: this.#timeoutMs,
      onAnswer: (w, addresses) => this.#apply(w, addresses),
      onFailure: (w, err, first) => this.#failed(w, err, first),
    })
  }

  /**
   * A good answer: members for new addresses are added, those for addresses gone are removed. The
   * answer is a set (keyed by address), so the same addresses in another order change nothing.
   * A member missing from the balancer (an operator removed it) is added again: DNS still names it.
   * Members of the first answer are trusted as configured servers are (up until checks say down);
   * later ones wait for their first health check, since a new replica is in DNS before it listens.
   */
  #apply(w: EntryWatch, answer: readonly string[]): void {
    const awaitCheck = w.resolvedAt !== null
    const next = new Set(answer)
    const gone = [...w.addresses].filter((a) => !next.has(a))
    const added: string[] = []
    for (const a of next) {
      if (this.#balancer.get(memberId(w.entry.id, a)) !== undefined) continue
      try {
        this.#balancer.add(memberConfig(w.entry, a), { awaitCheck })
        added.push(a)
      } catch (err) {
        // Cannot happen for a validated entry and an IP address; never let it stop the others.
        this.#log.error({ err, upstream: w.entry.id, address: a }, 'could not add a discovered member')
        next.delete(a)
      }
    }
    this.#removeMembers(w, gone)
    w.addresses = next
    if (w.failing) this.#log.info({ upstream: w.entry.id, host: w.host, members: this.members(w.entry.id) }, 'upstream resolves again')
    else if (added.length > 0 || gone.length > 0) this.#log.info({ upstream: w.entry.id, host: w.host, added, removed: gone }, 'upstream members changed')
  }

  /** A failed or empty answer: the last members stay. Logged once per outage, not on every try. */
  #failed(w: EntryWatch, err: string, first: boolean): void {
    if (w.failing) return
    const detail = { upstream: w.entry.id, host: w.host, error: err, members: this.members(w.entry.id) }
    if (first) this.#log.warn(detail, 'upstream does not resolve: it has no members until it does')
    else this.#log.warn(detail, 'upstream does not resolve: keeping the last answer')
  }

  #removeMembers(w: EntryWatch, addresses: readonly string[]): void {
    for (const a of addresses) {
      w.addresses.delete(a)
      const id = memberId(w.entry.id, a)
      if (this.#balancer.get(id) !== undefined) this.#balancer.remove(id)
    }
  }

  /**
   * Weight or backup changed without `setUpstreams` having applied it: the members are replaced,
   * which costs them their state (and their sticky users), so the app's reload path updates them
   * in place first and this finds nothing to do.
   */
  #reshape(w: EntryWatch): void {
    for (const a of w.addresses) {
      const id = memberId(w.entry.id, a)
      const u = this.#balancer.get(id)
      if (u !== undefined && u.weight === (w.entry.weight ?? 1) && u.backup === (w.entry.backup ?? false)) continue
      if (u !== undefined) this.#balancer.remove(id)
      this.#balancer.add(memberConfig(w.entry, a))
    }
  }
}

function memberConfig(entry: UpstreamConfig, address: string): UpstreamConfig {
  return { id: memberId(entry.id, address), url: memberUrl(entry.url, address), weight: entry.weight ?? 1, backup: entry.backup ?? false }
}

interface WatchHooks {
  readonly resolver: Resolver
  readonly timeoutMs: number | undefined
  onAnswer(w: EntryWatch, addresses: string[]): void
  onFailure(w: EntryWatch, error: string, first: boolean): void
}

/**
 * The resolution loop of one entry. One lookup at a time: the next is scheduled when the last one
 * settled (a timer, unref'd so it never keeps the process alive), and `resolveNow` joins a
 * lookup already running instead of starting a second.
 */
class EntryWatch {
  entry: UpstreamConfig
  readonly host: string
  /** Addresses whose members discovery put in the balancer. */
  addresses = new Set<string>()
  failing = false
  lastError: string | null = null
  resolvedAt: number | null = null
  readonly #hooks: WatchHooks
  #running: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  /** The resolver call in progress (outlives `#running` when it timed out). */
  #pending: Promise<Array<{ address: string; family: number }>> | undefined
  #closed = false

  constructor(entry: UpstreamConfig, hooks: WatchHooks) {
    this.entry = entry
    // URL keeps IPv6 literals bracketed; the resolver wants the bare address.
    this.host = new URL(entry.url).hostname.replace(/^\[(.*)\]$/, '$1')
    this.#hooks = hooks
  }

  get everyMs(): number {
    return this.entry.resolveEveryMs ?? DEFAULT_RESOLVE_EVERY_MS
  }

  /** Same id and url, new weight, backup flag or interval (a reload): the timer follows a new interval. */
  setEntry(entry: UpstreamConfig): void {
    const rescheduled = entry.resolveEveryMs !== this.entry.resolveEveryMs
    this.entry = entry
    if (rescheduled && this.#timer !== undefined) this.#schedule()
  }

  resolveNow(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    if (this.#running !== undefined) return this.#running
    clearTimeout(this.#timer)
    this.#timer = undefined
    const run = this.#resolve().finally(() => {
      this.#running = undefined
      this.#schedule()
    })
    this.#running = run
    return run
  }

  close(): void {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #schedule(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#closed) return
    this.#timer = setTimeout(() => void this.resolveNow(), this.everyMs)
    this.#timer.unref()
  }

  async #resolve(): Promise<void> {
    const first = this.resolvedAt === null
    let addresses: string[]
    try {
      addresses = usable(await this.#lookup())
      if (addresses.length === 0) throw new Error('no A or AAAA record')
    } catch (err) {
      if (this.#closed) return
      const message = err instanceof Error ? err.message : String(err)
      this.#hooks.onFailure(this, message, first)
      this.failing = true
      this.lastError = message
      return
    }
    if (this.#closed) return
    this.#hooks.onAnswer(this, addresses)
    this.failing = false
    this.lastError = null
    this.resolvedAt = Date.now()
  }

  /**
   * The resolver's answer, or a timeout. A lookup that timed out is not started again while it
   * still runs: the next round waits on the same one, so a hung resolver never piles up lookups.
   */
  #lookup(): Promise<Array<{ address: string; family: number }>> {
    const ms = this.#hooks.timeoutMs ?? Math.max(1000, this.everyMs)
    const lookup = (this.#pending ??= this.#hooks.resolver(this.host).finally(() => (this.#pending = undefined)))
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
      timer.unref()
    })
    return Promise.race([lookup, timeout]).finally(() => clearTimeout(timer))
  }
}

/**
 * The addresses that can be members: IP literals only (a resolver is outside input), without
 * IPv6 zone ids (`fe80::1%eth0` cannot be written in a URL that undici accepts), deduplicated.
 */
function usable(answer: ReadonlyArray<{ address: string; family: number }>): string[] {
  const out = new Set<string>()
  for (const r of answer) if (typeof r?.address === 'string' && !r.address.includes('%') && isIP(r.address) !== 0) out.add(r.address)
  return [...out]
}
