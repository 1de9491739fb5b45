import { isRedisClient, type RedisClient, type RedisConnectOption } from '../core/redis.js'
import { StrataError } from '../core/errors.js'
import { parseDuration } from '../core/duration.js'
import { systemClock, type Clock } from '../core/clock.js'
import { silentLogger, type Logger } from '../observability/logger.js'
import { isSerializer, jsonSerializer, msgpackSerializer, type Serializer, type SerializerOption } from './serializer.js'

/** Milliseconds as a number, or a string such as '250ms', '10s', '5m', '1h'. */
export type Duration = number | string

/** The `redis` option: a URL, a ready ioredis client, a Cluster, or Cluster / Sentinel coordinates. */
export type RedisOption = RedisConnectOption | RedisClient

export interface LockOptions {
  /** Default true when the object form is used. */
  enabled?: boolean
  /** How long a node that lost the race waits for the winner's value before loading itself. */
  wait?: Duration
  /** Lock expiry in Redis, so a crashed holder never blocks the cluster for long. */
  ttl?: Duration
  /** How often a waiting node re-reads L2. */
  pollInterval?: Duration
}

export interface DataCacheOptions {
  /** Prefix of every Redis key and the pub/sub channel. Letters, digits, `_`, `.`, `-`. */
  namespace?: string
  /** In-process tier; `false` turns it off (every read goes to Redis). */
  l1?: { maxBytes?: number; maxEntries?: number } | false
  redis?: RedisOption
  defaultTtl?: Duration
  /** How long an expired value is kept to be served when the loader fails or is slow. */
  grace?: Duration
  /** After a loader failure the stale value counts as fresh for this long (no retry storm). */
  graceBackoff?: Duration
  timeouts?: {
    /** With a stale value at hand, wait this long for the loader before serving stale. */
    soft?: Duration
    /**
     * A load running longer than this (default 10 s) is given up: callers get the stale value or
     * STRATA_DATA_CACHE_TIMEOUT, and the next call starts a fresh load.
     */
    hard?: Duration
  }
  serializer?: SerializerOption
  lock?: boolean | LockOptions
  l2?: {
    /** Per-command budget; a slower Redis counts as a failure for the breaker. */
    timeout?: Duration
    /** Consecutive failures that open the breaker. */
    breakerThreshold?: number
    /** How long the breaker stays open before one probe call is let through. */
    breakerDuration?: Duration
    /** How long the first calls wait for the initial connection before skipping L2. */
    connectWait?: Duration
  }
  /** Pub/sub invalidation between nodes; on by default when `redis` is set. */
  bus?: boolean
  logger?: Logger
  clock?: Clock
  /** Identifies this instance on the bus; random by default. */
  nodeId?: string
}

export interface ResolvedOptions {
  readonly namespace: string
  readonly l1: { readonly maxBytes: number; readonly maxEntries: number } | false
  readonly redis: RedisOption | undefined
  readonly defaultTtl: number
  readonly grace: number
  readonly graceBackoff: number
  readonly softTimeout: number
  readonly hardTimeout: number
  readonly serializer: Serializer
  readonly lock: { readonly enabled: boolean; readonly wait: number; readonly ttl: number; readonly pollInterval: number }
  readonly l2: { readonly timeout: number; readonly breakerThreshold: number; readonly breakerDuration: number; readonly connectWait: number }
  readonly bus: boolean
  readonly logger: Logger
  readonly clock: Clock
  readonly nodeId: string | undefined
}

export const DEFAULTS = {
  namespace: 'strata',
  l1MaxBytes: 64 * 1024 * 1024,
  l1MaxEntries: 1_000_000,
  defaultTtl: 5 * 60_000,
  grace: 0,
  graceBackoff: 10_000,
  softTimeout: 0,
  hardTimeout: 10_000,
  lockWait: 5_000,
  lockTtl: 10_000,
  lockPollInterval: 25,
  l2Timeout: 500,
  breakerThreshold: 3,
  breakerDuration: 5_000,
  connectWait: 1_000,
} as const

const NAME_RE = /^[A-Za-z0-9_.-]+$/
const TOP_KEYS = new Set([
  'namespace', 'l1', 'redis', 'defaultTtl', 'grace', 'graceBackoff', 'timeouts', 'serializer',
  'lock', 'l2', 'bus', 'logger', 'clock', 'nodeId',
])

function fail(field: string, message: string): never {
  throw new StrataError('STRATA_DATA_CACHE_OPTIONS', `data-cache option ${field}: ${message}`)
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function onlyKeys(obj: Record<string, unknown>, allowed: readonly string[], field: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) fail(`${field}.${k}`, `unknown option (allowed: ${allowed.join(', ')})`)
  }
}

function duration(value: unknown, field: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' && typeof value !== 'string') fail(field, 'must be a number of ms or a duration string like "10m"')
  // parseDuration already throws STRATA_DATA_CACHE_OPTIONS naming the field.
  return parseDuration(value, `data-cache option ${field}`)
}

function positiveInt(value: unknown, field: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) fail(field, 'must be a positive integer')
  return value
}

/** Names of namespaces and views; ':' is reserved as the separator of nested views. */
export function validateName(value: unknown, field: string): string {
  if (typeof value !== 'string' || !NAME_RE.test(value)) fail(field, `must match ${NAME_RE} (got ${JSON.stringify(value)})`)
  return value
}

function validateUrl(value: unknown, field: string): string {
  if (typeof value !== 'string') fail(field, 'must be a redis:// URL')
  let url: URL
  try {
    url = new URL(value)
  } catch {
    fail(field, `"${value}" is not a URL (expected redis://host:port)`)
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') fail(field, `"${value}" must use redis:// or rediss://`)
  return value
}

function validateRedis(value: unknown): RedisOption | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'string') return validateUrl(value, 'redis')
  if (isRedisClient(value)) return value
  if (!isPlainObject(value)) fail('redis', 'must be a URL, an ioredis instance, { cluster: [...] } or { sentinels: [...], name }')
  if ('cluster' in value) {
    onlyKeys(value, ['cluster', 'options'], 'redis')
    const nodes = value['cluster']
    if (!Array.isArray(nodes) || nodes.length === 0) fail('redis.cluster', 'must be a non-empty array of redis:// URLs')
    nodes.forEach((n, i) => validateUrl(n, `redis.cluster[${i}]`))
    if (value['options'] !== undefined && !isPlainObject(value['options'])) fail('redis.options', 'must be an object')
    return value as RedisOption
  }
  if ('sentinels' in value) {
    onlyKeys(value, ['sentinels', 'name', 'options'], 'redis')
    const nodes = value['sentinels']
    if (!Array.isArray(nodes) || nodes.length === 0) fail('redis.sentinels', 'must be a non-empty array of redis:// URLs')
    nodes.forEach((n, i) => validateUrl(n, `redis.sentinels[${i}]`))
    if (typeof value['name'] !== 'string' || value['name'] === '') fail('redis.name', 'the sentinel master name is required')
    if (value['options'] !== undefined && !isPlainObject(value['options'])) fail('redis.options', 'must be an object')
    return value as RedisOption
  }
  fail('redis', 'an object must have `cluster` or `sentinels` (or pass an ioredis instance)')
}

/**
 * Validates once at creation (the fastify habit) and returns a frozen, fully defaulted copy; the
 * caller's object is never mutated. Unknown keys are errors: a typo such as `ttl` for
 * `defaultTtl` would otherwise be silently ignored.
 */
export function resolveOptions(input: DataCacheOptions = {}): ResolvedOptions {
  if (!isPlainObject(input)) fail('(root)', 'options must be an object')
  for (const k of Object.keys(input)) if (!TOP_KEYS.has(k)) fail(k, `unknown option (allowed: ${[...TOP_KEYS].join(', ')})`)

  const namespace = input.namespace === undefined ? DEFAULTS.namespace : validateName(input.namespace, 'namespace')

  let l1: ResolvedOptions['l1']
  if (input.l1 === false) l1 = false
  else if (input.l1 === undefined) l1 = { maxBytes: DEFAULTS.l1MaxBytes, maxEntries: DEFAULTS.l1MaxEntries }
  else if (!isPlainObject(input.l1)) fail('l1', 'must be an object { maxBytes, maxEntries } or false')
  else {
    onlyKeys(input.l1, ['maxBytes', 'maxEntries'], 'l1')
    l1 = {
      maxBytes: positiveInt(input.l1.maxBytes, 'l1.maxBytes', DEFAULTS.l1MaxBytes),
      maxEntries: positiveInt(input.l1.maxEntries, 'l1.maxEntries', DEFAULTS.l1MaxEntries),
    }
  }

  const redis = validateRedis(input.redis)
  if (l1 === false && redis === undefined) fail('l1', 'cannot be false without `redis`: there would be no tier at all')

  const defaultTtl = duration(input.defaultTtl, 'defaultTtl', DEFAULTS.defaultTtl)
  if (defaultTtl === 0) fail('defaultTtl', 'must be greater than 0')

  let timeouts: Record<string, unknown> = {}
  if (input.timeouts !== undefined) {
    if (!isPlainObject(input.timeouts)) fail('timeouts', 'must be an object { soft, hard }')
    onlyKeys(input.timeouts, ['soft', 'hard'], 'timeouts')
    timeouts = input.timeouts
  }
  const softTimeout = duration(timeouts['soft'], 'timeouts.soft', DEFAULTS.softTimeout)
  const hardTimeout = duration(timeouts['hard'], 'timeouts.hard', DEFAULTS.hardTimeout)

  let serializer: Serializer
  const s = input.serializer
  if (s === undefined || s === 'json') serializer = jsonSerializer
  else if (s === 'msgpack') serializer = msgpackSerializer
  else if (isSerializer(s)) serializer = { serialize: s.serialize.bind(s), deserialize: s.deserialize.bind(s) }
  else fail('serializer', `must be 'json', 'msgpack' or { serialize, deserialize } (got ${JSON.stringify(s)})`)

  let lock: ResolvedOptions['lock']
  const lk = input.lock
  if (lk === undefined || typeof lk === 'boolean') {
    lock = { enabled: lk ?? false, wait: DEFAULTS.lockWait, ttl: DEFAULTS.lockTtl, pollInterval: DEFAULTS.lockPollInterval }
  } else if (isPlainObject(lk)) {
    onlyKeys(lk, ['enabled', 'wait', 'ttl', 'pollInterval'], 'lock')
    if (lk.enabled !== undefined && typeof lk.enabled !== 'boolean') fail('lock.enabled', 'must be a boolean')
    lock = {
      enabled: lk.enabled ?? true,
      wait: duration(lk.wait, 'lock.wait', DEFAULTS.lockWait),
      ttl: duration(lk.ttl, 'lock.ttl', DEFAULTS.lockTtl),
      pollInterval: Math.max(1, duration(lk.pollInterval, 'lock.pollInterval', DEFAULTS.lockPollInterval)),
    }
  } else fail('lock', 'must be a boolean or { enabled, wait, ttl, pollInterval }')
  if (lock.enabled && redis === undefined) fail('lock', 'needs `redis`: the lock lives in Redis')

  let l2in: Record<string, unknown> = {}
  if (input.l2 !== undefined) {
    if (!isPlainObject(input.l2)) fail('l2', 'must be an object')
    onlyKeys(input.l2, ['timeout', 'breakerThreshold', 'breakerDuration', 'connectWait'], 'l2')
    l2in = input.l2
  }
  const l2 = {
    timeout: duration(l2in['timeout'], 'l2.timeout', DEFAULTS.l2Timeout),
    breakerThreshold: positiveInt(l2in['breakerThreshold'], 'l2.breakerThreshold', DEFAULTS.breakerThreshold),
    breakerDuration: duration(l2in['breakerDuration'], 'l2.breakerDuration', DEFAULTS.breakerDuration),
    connectWait: duration(l2in['connectWait'], 'l2.connectWait', DEFAULTS.connectWait),
  }
  if (l2.timeout === 0) fail('l2.timeout', 'must be greater than 0')

  if (input.bus !== undefined && typeof input.bus !== 'boolean') fail('bus', 'must be a boolean')
  if (input.nodeId !== undefined && (typeof input.nodeId !== 'string' || input.nodeId === '' || input.nodeId.includes('|'))) {
    fail('nodeId', 'must be a non-empty string without "|"')
  }
  const clock = input.clock as unknown
  const logger = input.logger as unknown
  if (clock !== undefined && typeof (clock as Clock | null)?.now !== 'function') fail('clock', 'must have a now() method')
  if (logger !== undefined && typeof (logger as Logger | null)?.child !== 'function') fail('logger', 'must be a pino logger')

  return Object.freeze({
    namespace,
    l1: l1 === false ? false : Object.freeze(l1),
    redis,
    defaultTtl,
    grace: duration(input.grace, 'grace', DEFAULTS.grace),
    graceBackoff: duration(input.graceBackoff, 'graceBackoff', DEFAULTS.graceBackoff),
    softTimeout,
    hardTimeout,
    serializer: Object.freeze(serializer),
    lock: Object.freeze(lock),
    l2: Object.freeze(l2),
    bus: input.bus ?? redis !== undefined,
    logger: (logger as Logger | undefined) ?? silentLogger,
    clock: (clock as Clock | undefined) ?? systemClock,
    nodeId: input.nodeId,
  })
}
