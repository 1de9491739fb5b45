import { createDataCache, type DataCache, type DataCacheStats, type Duration } from '../data-cache/index.js'
import type { Logger } from '../observability/logger.js'
import type { Article, NewsDb } from './news-db.js'

/**
 * The demo app's reads of its database, through the data cache: each webserver is a node with
 * its own cache (namespace `demo`). Without Redis it is L1 only, so each node converges on its
 * own after `ttl`; with Redis the nodes share L2 and the bus drops every node's L1 copy on an edit.
 */
export interface NewsReadsOptions {
  db: NewsDb
  /** A redis URL: the shared L2 and the invalidation bus. Absent: L1 only. */
  redis?: string | undefined
  /** Freshness of a cached read; defaults to 10 s without Redis, 5 min with it. */
  ttl?: Duration
  logger?: Logger
}

export interface NewsReads {
  /** True when a shared L2 (and so cross-node invalidation) is in use. */
  readonly shared: boolean
  list(): Promise<Article[]>
  get(id: number): Promise<Article | undefined>
  /** After an edit of article `id`: drops it and every list, on every node. */
  invalidate(id: number): Promise<void>
  stats(): DataCacheStats
  close(): Promise<void>
}

export const L1_ONLY_TTL = '10s'
export const SHARED_TTL = '5m'

/** The demo's Redis from the environment: `STRATA_DEMO_REDIS=redis://127.0.0.1:6379`. */
export function demoRedisFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env['STRATA_DEMO_REDIS']
  return v === undefined || v.trim() === '' ? undefined : v.trim()
}

const articleTag = (id: number) => `article:${id}`

export async function createNewsReads(opts: NewsReadsOptions): Promise<NewsReads> {
  const { db } = opts
  const shared = opts.redis !== undefined
  const cache: DataCache = createDataCache({
    namespace: 'demo',
    l1: { maxBytes: 8 << 20 },
    defaultTtl: opts.ttl ?? (shared ? SHARED_TTL : L1_ONLY_TTL),
    ...(opts.redis === undefined ? {} : { redis: opts.redis }),
    ...(opts.logger === undefined ? {} : { logger: opts.logger }),
  })
  // Bounded by l2.connectWait and never rejects: a webserver starts even when Redis is down.
  await cache.ready()
  return {
    shared,
    list: () => cache.getOrSet('news:list', () => db.list(), { tags: ['news'] }),
    get: (id) => cache.getOrSet(`news:${id}`, () => db.get(id), { tags: ['news', articleTag(id)] }),
    // One call, one bus message for both tags. `news` alone would cover it (every read carries
    // it); the article tag says what changed, for a finer-grained caller.
    invalidate: (id) => cache.deleteByTag([articleTag(id), 'news']),
    stats: () => cache.stats(),
    close: () => cache.disconnect(),
  }
}
