import { Type, type Static, type TOptional, type TSchema } from '@sinclair/typebox'

/**
 * The one schema that holds every config key and its default (the fastify habit: validate at the
 * boundary, once). Units: keys ending in `Ms` are milliseconds; cache lifetimes (`defaultTtl`,
 * `grace`, `staleIfError`, `hitForPass`, rule TTLs) are seconds, as in HTTP headers.
 * Every object is closed (`additionalProperties: false`) so a typo is an error, not a silent no-op.
 */
const Obj = <T extends Record<string, TSchema>>(props: T, defaults: Record<string, unknown> = {}) =>
  Type.Object(props, { additionalProperties: false, default: defaults })

const Port = Type.Integer({ minimum: 0, maximum: 65535 })
const Ms = (def: number, min = 0) => Type.Integer({ minimum: min, default: def })
const Seconds = (def: number) => Type.Number({ minimum: 0, default: def })

export const ListenSchema = Obj({
  host: Type.String({ minLength: 1, default: '0.0.0.0' }),
  port: Type.Optional(Port),
})

export const AdminSchema = Obj({
  enabled: Type.Boolean({ default: true }),
  host: Type.String({ minLength: 1, default: '127.0.0.1' }),
  port: Type.Optional(Port),
  token: Type.Optional(Type.String({ minLength: 1 })),
  /** Serve GET /metrics without the token, so a Prometheus scraper needs no secret. */
  publicMetrics: Type.Boolean({ default: false }),
})

export const UpstreamSchema = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' }),
    url: Type.String({ minLength: 1 }),
    weight: Type.Integer({ minimum: 1, maximum: 1000, default: 1 }),
    backup: Type.Boolean({ default: false }),
    /**
     * The url's host is a DNS name standing for several servers: every A/AAAA address becomes a
     * member of the pool (`<id>@<address>`). No Ajv default (false when absent), so a config
     * without it prints unchanged.
     */
    resolve: Type.Optional(Type.Boolean()),
    /** With `resolve`: how often the name is resolved again (the discovery applies 5000 when absent). */
    resolveEveryMs: Type.Optional(Type.Integer({ minimum: 100 })),
  },
  { additionalProperties: false },
)

export const TimeoutsSchema = Obj({
  connectMs: Ms(3000, 1),
  responseMs: Ms(30_000, 1),
  keepAliveMs: Ms(4000, 1),
  shutdownMs: Ms(10_000, 0),
  /** With `workers` > 1: how long the primary waits for each worker's answer to an admin call. */
  workerCallMs: Ms(5000, 1),
})

export const Algorithm = Type.Union([
  Type.Literal('round-robin'),
  Type.Literal('weighted'),
  Type.Literal('least-connections'),
  Type.Literal('random'),
  Type.Literal('p2c'),
  Type.Literal('consistent-hash'),
])

const CookieName = Type.String({ minLength: 1, pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' })

/**
 * Sticky sessions. One closed object for both modes (Ajv applies defaults inside plain objects but
 * not inside anyOf branches); mode-specific rules are checked by the loader.
 * - insert: strata sets its own signed cookie (`cookie`, default strata_srv).
 * - learn: strata follows the application's session cookie (`cookie` required).
 */
export const StickySchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('insert'), Type.Literal('learn')]),
    cookie: Type.Optional(CookieName),
    secret: Type.Optional(Type.String({ minLength: 16 })),
    maxLifeMs: Type.Optional(Type.Integer({ minimum: 1 })),
    maxIdleMs: Type.Optional(Type.Integer({ minimum: 1 })),
    ttlMs: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
)

export type StickyConfig =
  | { mode: 'insert'; cookie: string; secret?: string; maxLifeMs?: number; maxIdleMs?: number }
  | { mode: 'learn'; cookie: string; ttlMs: number }

/** `null` or an object, without anyOf, so defaults inside the object still apply. */
const nullable = <T extends TSchema, S>(schema: T) => Type.Unsafe<S | null>({ ...schema, nullable: true, default: null })

export const HealthCheckSchema = Type.Object(
  {
    path: Type.String({ pattern: '^/', default: '/health' }),
    intervalMs: Ms(2000, 10),
    timeoutMs: Ms(1000, 1),
    expectStatus: Type.Integer({ minimum: 100, maximum: 599, default: 200 }),
    rise: Type.Integer({ minimum: 1, default: 2 }),
    fall: Type.Integer({ minimum: 1, default: 3 }),
  },
  { additionalProperties: false },
)

export const BalancerSchema = Obj({
  algorithm: Type.Union([Algorithm], { default: 'round-robin' }),
  hashOn: Type.String({ pattern: '^(ip|path|header:.+|cookie:.+)$', default: 'ip' }),
  sticky: nullable<typeof StickySchema, StickyConfig>(StickySchema),
  healthCheck: nullable<typeof HealthCheckSchema, Static<typeof HealthCheckSchema>>(HealthCheckSchema),
  passive: Obj({
    failures: Type.Integer({ minimum: 1, default: 3 }),
    cooldownMs: Ms(5000, 1),
    maxCooldownMs: Ms(60_000, 1),
    // Answered 5xx statuses that count as a failure; connection errors and timeouts always count.
    statuses: Type.Array(Type.Integer({ minimum: 500, maximum: 599 }), { default: [], uniqueItems: true }),
  }),
  slowStartMs: Ms(0),
  retries: Type.Integer({ minimum: 0, maximum: 10, default: 1 }),
  retryOn: Type.Array(Type.Union([Type.Literal('connect'), Type.Literal('502'), Type.Literal('503'), Type.Literal('504')]), {
    default: ['connect'],
    uniqueItems: true,
  }),
  drainMs: Ms(30_000),
})

/**
 * A pool's own balancer: the keys of BalancerSchema, each optional and without its top-level
 * default, so a key the pool does not give stays visibly absent and the loader fills it from the
 * top-level `balancer`. A nested object that is given (`passive`, `healthCheck`) keeps its own
 * inner defaults: it replaces the top-level one whole.
 */
const withoutDefault = <T extends TSchema>(schema: T): T => {
  const { default: _dropped, ...rest } = schema as T & { default?: unknown }
  return rest as T
}
type BalancerProps = (typeof BalancerSchema)['properties']
export const PoolBalancerSchema = Type.Object(
  Object.fromEntries(Object.entries(BalancerSchema.properties).map(([k, s]) => [k, Type.Optional(withoutDefault(s))])) as {
    [K in keyof BalancerProps]: TOptional<BalancerProps[K]>
  },
  { additionalProperties: false },
)

export const PoolSchema = Type.Object(
  {
    upstreams: Type.Array(UpstreamSchema, { minItems: 1, messages: { minItems: 'is empty: a pool needs at least one upstream' } }),
    balancer: Type.Optional(PoolBalancerSchema),
  },
  { additionalProperties: false },
)

/** A path prefix for rewriting: starts with '/', no query or fragment. */
const RewritePrefix = Type.String({ pattern: '^/[^?#]*$', messages: { pattern: "must start with '/' and hold no '?' or '#'" } })

/**
 * What a route matches on; every given condition must hold. `host`: a hostname (or IP literal)
 * compared case-insensitively with the Host header's name (its port ignored), or `*.example.com`
 * for any subdomain at any depth (never the bare domain).
 */
export const RouteMatchSchema = Type.Object(
  {
    host: Type.Optional(
      Type.String({
        maxLength: 253,
        pattern: '^(\\*\\.)?[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$|^\\[[0-9A-Fa-f:.]+\\]$',
        messages: { pattern: 'must be a hostname ("www.example.com") or "*.example.com" for any subdomain, without a port' },
      }),
    ),
    pathPrefix: Type.Optional(Type.String({ pattern: '^/', messages: { pattern: "must start with '/'" } })),
    methods: Type.Optional(
      Type.Array(Type.String({ pattern: '^[A-Z][A-Z0-9_-]*$', messages: { pattern: 'must be an upper-case method name ("GET")' } }), {
        minItems: 1,
        uniqueItems: true,
      }),
    ),
    header: Type.Optional(
      Type.Object(
        {
          name: Type.String({ minLength: 1, pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", messages: { pattern: 'must be a header field name' } }),
          /** Exact value; absent: the header only has to be present. */
          value: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
)

/** A route's cache policy: each key given replaces the top-level `cache` one for its requests. */
export const RouteCacheSchema = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    defaultTtl: Type.Optional(Type.Number({ minimum: 0 })),
    grace: Type.Optional(Type.Number({ minimum: 0 })),
    staleIfError: Type.Optional(Type.Number({ minimum: 0 })),
  },
  { additionalProperties: false },
)

/** One route: first match wins; a request no route matches goes to the default pool. */
export const RouteSchema = Type.Object(
  {
    match: RouteMatchSchema,
    /** A key of `pools`, or "default" (the top-level upstreams and balancer), which is also the default. */
    pool: Type.Optional(Type.String({ minLength: 1 })),
    stripPrefix: Type.Optional(RewritePrefix),
    addPrefix: Type.Optional(RewritePrefix),
    cache: Type.Optional(RouteCacheSchema),
    esi: Type.Optional(Type.Object({ enabled: Type.Optional(Type.Boolean()) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
)

export const CacheRuleSchema = Type.Object(
  {
    prefix: Type.String({ pattern: '^/' }),
    defaultTtl: Type.Optional(Type.Number({ minimum: 0 })),
    stripSetCookie: Type.Boolean({ default: false }),
  },
  { additionalProperties: false },
)

/** ioredis options are open-ended; a URL string is the common case. */
export const RedisOptionSchema = Type.Union([
  Type.String({ pattern: '^rediss?://' }),
  Type.Object({ cluster: Type.Array(Type.String({ pattern: '^rediss?://' }), { minItems: 1 }) }, { additionalProperties: false }),
  Type.Object(
    { sentinels: Type.Array(Type.String({ pattern: '^rediss?://' }), { minItems: 1 }), name: Type.String({ minLength: 1 }) },
    { additionalProperties: false },
  ),
  Type.Null(),
])

export const CacheSchema = Obj({
  enabled: Type.Boolean({ default: true }),
  maxBytes: Type.Integer({ minimum: 0, default: 256 * 1024 * 1024 }),
  maxObjectBytes: Type.Integer({ minimum: 0, default: 8 * 1024 * 1024 }),
  defaultTtl: Seconds(0),
  grace: Seconds(0),
  staleIfError: Seconds(0),
  hitForPass: Seconds(10),
  redis: Type.Union([RedisOptionSchema], { default: null }),
  redisTimeoutMs: Ms(250, 1),
  rules: Type.Array(CacheRuleSchema, { default: [] }),
  key: Obj({
    ignoreQuery: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
    sortQuery: Type.Boolean({ default: false }),
  }),
  /**
   * Ask V8 to collect what the cache drops (a scavenge per maxBytes/16 stored, a major collection
   * per maxBytes/16 evicted, at most one every 100 ms), so RSS stays near maxBytes under churn.
   */
  gcNudge: Type.Boolean({ default: true }),
  coalesce: Obj({
    enabled: Type.Boolean({ default: true }),
    maxWaiters: Type.Integer({ minimum: 0, default: 1000 }),
  }),
})

export const EsiSchema = Obj({
  enabled: Type.Boolean({ default: true }),
  paths: Type.Array(Type.String({ pattern: '^/' }), { default: [] }),
  allowedHosts: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
  /** Hosts (besides the page's own origin) that receive the client's Cookie and Authorization. */
  credentialHosts: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
  maxDepth: Type.Integer({ minimum: 0, maximum: 20, default: 5 }),
  maxConcurrentIncludes: Type.Integer({ minimum: 1, default: 32 }),
  maxIncludes: Type.Integer({ minimum: 1, default: 256 }),
  fragmentTimeoutMs: Ms(5000, 1),
  onError: Type.Union([Type.Literal('continue'), Type.Literal('fail')], { default: 'continue' }),
  forwardHeaders: Type.Array(Type.String({ minLength: 1 }), { default: ['cookie', 'accept-language', 'authorization'] }),
  compress: Type.Boolean({ default: false }),
  /**
   * Bytes of whole assembled pages kept in memory beside the page cache (besides cache.maxBytes)
   * for pages whose every part is public and fresh; 0 turns it off.
   */
  assembledPagesBytes: Type.Integer({ minimum: 0, default: 16 * 1024 * 1024 }),
})

export const LogSchema = Obj({
  level: Type.Union(
    [Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')],
    { default: 'info' },
  ),
  access: Type.Boolean({ default: true }),
})

export const ConfigSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    listen: ListenSchema,
    admin: AdminSchema,
    upstreams: Type.Array(UpstreamSchema, { minItems: 1 }),
    timeouts: TimeoutsSchema,
    balancer: BalancerSchema,
    cache: CacheSchema,
    esi: EsiSchema,
    log: LogSchema,
    /**
     * Peers (IP addresses and CIDR ranges) whose Forwarded / X-Forwarded-* fields strata keeps and
     * appends to; from anyone else they are dropped. Checked by the loader (ipaddr.js).
     */
    trustProxy: Type.Array(Type.String({ minLength: 1 }), { default: [], maxItems: 1000 }),
    /** Add a Server-Timing header (cache lookup, upstream, ESI assembly durations) to responses. */
    serverTiming: Type.Boolean({ default: false }),
    /**
     * Processes serving the proxy port (node:cluster). 1: one process, no cluster. "auto": one per
     * core (os.availableParallelism()). The loader resolves it to a number.
     */
    workers: Type.Union([Type.Integer({ minimum: 1, maximum: 256 }), Type.Literal('auto')], { default: 1 }),
    /**
     * Named upstream pools besides the default one (the top-level `upstreams` + `balancer`). Names
     * (`[A-Za-z0-9._-]`, 1–64, not "default") are checked by the loader, which also resolves each
     * pool's balancer into its effective form.
     */
    pools: Type.Record(Type.String(), PoolSchema, { default: {} }),
    /** Checked in order; the first route whose every condition holds decides the pool. */
    routes: Type.Array(RouteSchema, { default: [] }),
  },
  { additionalProperties: false },
)

type Raw = Static<typeof ConfigSchema>

export type UpstreamConfig = Static<typeof UpstreamSchema>
export type BalancerConfig = Static<typeof BalancerSchema>
/** A pool as the config file gives it: its balancer holds only the keys it overrides. */
export type PoolInput = Static<typeof PoolSchema>
/** A pool in its effective form: the full balancer (top-level keys merged with the pool's own). */
export interface PoolConfig {
  upstreams: UpstreamConfig[]
  balancer: BalancerConfig
}
export type RouteConfig = Static<typeof RouteSchema>
export type RouteMatchConfig = Static<typeof RouteMatchSchema>
export type RouteCacheConfig = Static<typeof RouteCacheSchema>

/** The validated, defaulted, frozen config every module receives. */
export type StrataConfig = Readonly<
  Omit<Raw, 'listen' | 'admin' | '$schema' | 'workers' | 'pools' | 'routes'> & {
    listen: { host: string; port: number }
    workers: number
    admin: { enabled: boolean; host: string; port: number; token: string; publicMetrics: boolean }
    /** Named pools in their effective form (never "default": that is `upstreams` + `balancer`). */
    pools: Readonly<Record<string, PoolConfig>>
    routes: readonly RouteConfig[]
  }
>
export type CacheConfig = Static<typeof CacheSchema>
export type CacheRule = Static<typeof CacheRuleSchema>
export type EsiConfig = Static<typeof EsiSchema>
export type HealthCheckConfig = Static<typeof HealthCheckSchema>
export type RedisOption = Static<typeof RedisOptionSchema>
export type TimeoutsConfig = Static<typeof TimeoutsSchema>
