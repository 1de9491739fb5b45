import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { RedisOption } from './options.js'

export type RedisClient = Redis | Cluster

export interface RedisClients {
  main: RedisClient
  /** True when this library created `main` and must close it on disconnect. */
  ownsMain: boolean
  /** A second connection for SUBSCRIBE (a subscribed connection cannot run other commands). */
  makeSubscriber(): RedisClient
}

// Commands fail at once while disconnected instead of queueing: a cache that waits for Redis is
// slower than one that skips it. The first connection is awaited separately (connectWait).
const COMMAND_DEFAULTS = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  // Keep reconnecting forever, at most once a second: L2 must come back by itself.
  retryStrategy: (times: number) => Math.min(times * 50, 1000),
} satisfies RedisOptions

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

export function createClients(option: RedisOption): RedisClients {
  if (typeof option === 'string') {
    return {
      main: new Redis(option, { ...COMMAND_DEFAULTS }),
      ownsMain: true,
      makeSubscriber: () => new Redis(option, { retryStrategy: COMMAND_DEFAULTS.retryStrategy }),
    }
  }
  if ('cluster' in option && Array.isArray(option.cluster)) {
    const spec = option as { cluster: string[]; options?: ClusterOptions }
    const nodes = spec.cluster.map(hostPort)
    const redisOptions: RedisOptions = { ...authOf(spec.cluster[0]!), ...spec.options?.redisOptions }
    const base = {
      clusterRetryStrategy: COMMAND_DEFAULTS.retryStrategy,
      ...spec.options,
      redisOptions,
    } as ClusterOptions
    return {
      main: new Cluster(nodes, { ...base, enableOfflineQueue: false, redisOptions: { ...redisOptions, ...COMMAND_DEFAULTS } }),
      ownsMain: true,
      makeSubscriber: () => new Cluster(nodes, base),
    }
  }
  if ('sentinels' in option && Array.isArray(option.sentinels)) {
    const spec = option as { sentinels: string[]; name: string; options?: RedisOptions }
    const base: RedisOptions = {
      ...authOf(spec.sentinels[0]!),
      ...spec.options,
      sentinels: spec.sentinels.map(hostPort),
      name: spec.name,
    }
    return {
      main: new Redis({ ...base, ...COMMAND_DEFAULTS }),
      ownsMain: true,
      makeSubscriber: () => new Redis({ ...base, retryStrategy: COMMAND_DEFAULTS.retryStrategy }),
    }
  }
  // A caller's own client: used as configured and never closed by us; only the subscriber
  // duplicate is ours. Offline queueing stays on for it so SUBSCRIBE survives a slow start.
  const client = option as RedisClient
  return {
    main: client,
    ownsMain: false,
    makeSubscriber: () => (isCluster(client) ? client.duplicate() : client.duplicate({ enableOfflineQueue: true })),
  }
}
