import type { BalancerConfig, StrataConfig, UpstreamConfig } from '../config/schema.js'
import { poolConfigs } from '../config/pools.js'
import { Balancer, type RetryOn } from '../balancer/index.js'
import type { Upstream } from '../balancer/upstream-state.js'
import { staticUpstreams, UpstreamDiscovery, type Resolver } from '../balancer/discovery.js'
import type { RedisClient } from '../core/redis.js'
import type { Logger } from '../observability/logger.js'

/** One pool's effective config, named. */
type NamedPoolConfig = ReturnType<typeof poolConfigs>[number]

/** What every pool of one strata shares. */
export interface PoolDeps {
  readonly logger: Logger
  /** The learn-mode sticky table's Redis client, when the cluster shares one. */
  readonly learnRedis?: RedisClient | undefined
  readonly redisTimeoutMs: number
  /** The insert-mode secret when a pool's `sticky.secret` is unset (one per strata, shared by workers). */
  readonly stickySecret?: Buffer | undefined
  /** DNS discovery's resolver (tests inject one); default `dns.promises.lookup`. */
  readonly resolver?: Resolver | undefined
  /** An upstream left a pool (removed, replaced, or a discovered member gone): its connections close gracefully. */
  readonly onRemoved: (upstream: Upstream) => void
}

/**
 * One upstream pool at runtime (what the forwarder calls a ForwardPool): its balancer (algorithm, sticky sessions, health), its retry
 * settings, and the DNS discovery of its `resolve: true` entries. The forwarder reads `retries`,
 * `retryOn` and `asyncPick` per request, so a reload applies to the next request.
 */
export class Pool {
  readonly name: string
  readonly balancer: Balancer
  readonly asyncPick: boolean
  /** DNS discovery of the pool's `resolve: true` entries (made when the first such entry appears). */
  #discovery: UpstreamDiscovery | undefined
  readonly #log: Logger
  readonly #resolver: Resolver | undefined
  #config: BalancerConfig
  #upstreams: readonly UpstreamConfig[]

  constructor(cfg: NamedPoolConfig, deps: PoolDeps) {
    this.name = cfg.name
    this.#config = cfg.balancer
    this.#upstreams = cfg.upstreams
    const learn = cfg.balancer.sticky?.mode === 'learn' && deps.learnRedis !== undefined
    // The default pool's lines read as they did before pools existed.
    this.#log = cfg.name === 'default' ? deps.logger : deps.logger.child({ pool: cfg.name })
    this.balancer = new Balancer({
      upstreams: staticUpstreams(cfg.upstreams),
      config: cfg.balancer,
      logger: this.#log,
      ...(learn ? { redis: deps.learnRedis, learnKeyPrefix: learnPrefix(cfg.name) } : {}),
      redisTimeoutMs: deps.redisTimeoutMs,
      ...(deps.stickySecret === undefined ? {} : { stickySecret: deps.stickySecret }),
    })
    this.asyncPick = learn
    this.balancer.on('removed', deps.onRemoved)
    this.#resolver = deps.resolver
    this.#discovery = cfg.upstreams.some((u) => u.resolve === true) ? this.#makeDiscovery(cfg.upstreams) : undefined
  }

  #makeDiscovery(entries: readonly UpstreamConfig[]): UpstreamDiscovery {
    return new UpstreamDiscovery({ balancer: this.balancer, entries, logger: this.#log, ...(this.#resolver === undefined ? {} : { resolver: this.#resolver }) })
  }

  get retries(): number {
    return this.#config.retries
  }

  get retryOn(): readonly RetryOn[] {
    return this.#config.retryOn
  }

  /** The pool's effective balancer config (what GET /pools shows). */
  get config(): BalancerConfig {
    return this.#config
  }

  /** Health checks begin and names resolve; resolves once the first DNS round is done. */
  async start(): Promise<void> {
    this.balancer.start()
    await this.#discovery?.start()
  }

  /**
   * A reload of this pool: balancer settings first (so added upstreams follow the new health
   * checks), then the upstream list, keeping the members discovery found for names still listed.
   */
  reconfigure(next: NamedPoolConfig): void {
    if (JSON.stringify(next.balancer) !== JSON.stringify(this.#config)) {
      this.balancer.reconfigure(next.balancer)
      this.#config = next.balancer
    }
    if (JSON.stringify(next.upstreams) !== JSON.stringify(this.#upstreams)) {
      // Discovered members are passed along (with the new weights) so setUpstreams keeps them;
      // discovery then drops, replaces or resolves what the new entries say.
      this.balancer.setUpstreams([...staticUpstreams(next.upstreams), ...(this.#discovery?.memberConfigs(next.upstreams) ?? [])])
      if (this.#discovery !== undefined) void this.#discovery.update(next.upstreams)
      else if (next.upstreams.some((u) => u.resolve === true)) {
        this.#discovery = this.#makeDiscovery(next.upstreams)
        void this.#discovery.start()
      }
      this.#upstreams = next.upstreams
    }
  }

  /** Discovered members by entry id (for GET /pools), or undefined without `resolve` entries. */
  discovered(): Record<string, string[]> | undefined {
    const d = this.#discovery
    if (d === undefined) return undefined
    const out: Record<string, string[]> = {}
    for (const entry of d.snapshot()) out[entry.id] = entry.members
    return out
  }

  async close(): Promise<void> {
    this.#discovery?.close()
    await this.balancer.close()
  }
}

/** Pools' learn-mode sessions live under their own Redis keys (the default pool keeps today's). */
function learnPrefix(pool: string): string {
  return pool === 'default' ? 'strata:learn:' : `strata:learn:${pool}:`
}

/**
 * Every pool of one strata, by name: `default` (the top-level `upstreams` and `balancer`) and
 * the `pools` of the config. A reload adds, reconfigures and retires pools in one step; a retired
 * pool's in-flight requests finish on their own connections.
 */
export class PoolSet {
  #pools: ReadonlyMap<string, Pool>
  #list: readonly Pool[]
  readonly #deps: PoolDeps

  constructor(config: StrataConfig, deps: PoolDeps) {
    this.#deps = deps
    const pools = new Map<string, Pool>()
    for (const cfg of poolConfigs(config)) pools.set(cfg.name, new Pool(cfg, deps))
    this.#pools = pools
    this.#list = [...pools.values()]
  }

  get default(): Pool {
    return this.#pools.get('default')!
  }

  get(name: string): Pool | undefined {
    return this.#pools.get(name)
  }

  /** Every pool (the same array until a reload changes the set: read it per request for free). */
  list(): readonly Pool[] {
    return this.#list
  }

  async start(): Promise<void> {
    await Promise.all(this.list().map((p) => p.start()))
  }

  /**
   * A reload's pools, in two steps so that no request is routed to a pool that is not there: new
   * pools are built (and `started`: health checks, first DNS round) and existing ones reconfigured
   * now; pools the config no longer names stay until `retire()`, which the caller runs once the
   * new routes are in force. (What changed is the reload plan's to say: `pools.<name>`.)
   */
  apply(config: StrataConfig): { started: Promise<void>; retire(): Promise<void> } {
    const next = new Map<string, Pool>()
    const fresh: Pool[] = []
    for (const cfg of poolConfigs(config)) {
      const pool = this.#pools.get(cfg.name)
      if (pool === undefined) {
        const made = new Pool(cfg, this.#deps)
        fresh.push(made)
        next.set(cfg.name, made)
      } else {
        pool.reconfigure(cfg)
        next.set(cfg.name, pool)
      }
    }
    const gone = [...this.#pools.values()].filter((p) => !next.has(p.name))
    this.#set(new Map([...next, ...gone.map((p) => [p.name, p] as const)]))
    const retire = async (): Promise<void> => {
      if (gone.length === 0) return
      this.#set(new Map([...this.#pools].filter(([name]) => next.has(name))))
      // A retired pool's servers leave like removed upstreams: their connections close gracefully.
      await Promise.all(gone.map(async (p) => {
        for (const u of p.balancer.list()) p.balancer.remove(u.id)
        await p.close()
      }))
    }
    return { started: Promise.all(fresh.map((p) => p.start())).then(() => undefined), retire }
  }

  #set(pools: ReadonlyMap<string, Pool>): void {
    this.#pools = pools
    this.#list = [...pools.values()]
  }

  async close(): Promise<void> {
    await Promise.all(this.list().map((p) => p.close()))
  }
}
