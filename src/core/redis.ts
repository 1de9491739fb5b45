import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'

/**
 * Redis connections for every tier (page-cache L2 and bus, data cache, balancer learn table), so
 * they all fail fast the same way: commands are rejected at once while disconnected instead of
 * queueing (a cache that waits for Redis is slower than one that skips it), and the client keeps
 * reconnecting in the background, at most once a second, so L2 comes back by itself.
 */
export type RedisClient = Redis | Cluster

/** How to reach Redis: a URL, Cluster seed URLs, or Sentinel coordinates (with ioredis options). */
export type RedisConnectOption =
  | string
  | { cluster: string[]; options?: ClusterOptions }
  | { sentinels: string[]; name: string; options?: RedisOptions }

export interface RedisClients {
  main: RedisClient
  /** True when the caller created `main` from coordinates and must close it. */
  ownsMain: boolean
  /** A second connection for SUBSCRIBE (a subscribed connection cannot run other commands). */
  makeSubscriber(): RedisClient
}

const retryStrategy = (times: number) => Math.min(times * 50, 1000)
const COMMAND_DEFAULTS = { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy } satisfies RedisOptions
// A subscriber queues its SUBSCRIBE until connected and never gives up on it.
const SUBSCRIBER_DEFAULTS = { enableOfflineQueue: true, maxRetriesPerRequest: null, retryStrategy } satisfies RedisOptions

function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url)
  return { host: u.hostname, port: u.port === '' ? 6379 : Number(u.port) }
}

function authOf(url: string): Pick<RedisOptions, 'username' | 'password'> {
  const u = new URL(url)
  const out: Pick<RedisOptions, 'username' | 'password'> = {}
  if (u.username !== '') out.username = decodeURIComponent(u.username)
  if (u.password !== '') out.password = decodeURIComponent(u.password)
  return out
}

export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true
}

/** Duck-typed, so a client from a second copy of ioredis in node_modules is recognised too. */
export function isRedisClient(value: unknown): value is RedisClient {
  return typeof value === 'object' && value !== null && typeof (value as Redis).duplicate === 'function' && typeof (value as Redis).getBuffer === 'function'
}

/** One connection from coordinates; `subscriber` for a pub/sub connection. */
export function createRedisClient(option: RedisConnectOption, opts: { subscriber?: boolean; connectTimeoutMs?: number } = {}): RedisClient {
  const defaults: RedisOptions = { ...(opts.subscriber ? SUBSCRIBER_DEFAULTS : COMMAND_DEFAULTS) }
  if (opts.connectTimeoutMs !== undefined) defaults.connectTimeout = opts.connectTimeoutMs
  if (typeof option === 'string') return new Redis(option, { ...(option.startsWith('rediss:') ? { tls: {} } : {}), ...defaults })
  if ('cluster' in option) {
    const redisOptions: RedisOptions = { ...authOf(option.cluster[0]!), ...option.options?.redisOptions, ...defaults }
    return new Cluster(option.cluster.map(hostPort), {
      clusterRetryStrategy: retryStrategy,
      ...option.options,
      enableOfflineQueue: opts.subscriber === true,
      redisOptions,
    })
  }
  return new Redis({ ...authOf(option.sentinels[0]!), ...option.options, sentinels: option.sentinels.map(hostPort), name: option.name, ...defaults })
}

/**
 * A command connection plus a way to make subscriber connections, from coordinates or from a
 * caller's own client. A caller's client is used as configured and never closed by us; only the
 * subscriber duplicate is ours.
 */
export function createClients(option: RedisConnectOption | RedisClient, opts: { connectTimeoutMs?: number } = {}): RedisClients {
  if (isRedisClient(option)) {
    return {
      main: option,
      ownsMain: false,
      makeSubscriber: () => (isCluster(option) ? option.duplicate() : option.duplicate({ enableOfflineQueue: true })),
    }
  }
  return {
    main: createRedisClient(option, opts),
    ownsMain: true,
    makeSubscriber: () => createRedisClient(option, { ...opts, subscriber: true }),
  }
}
