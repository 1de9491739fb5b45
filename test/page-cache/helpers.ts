import { Value } from '@sinclair/typebox/value'
import { CacheSchema, type CacheConfig } from '../../src/config/schema.js'
import type { CacheRequest } from '../../src/page-cache/types.js'

/** A full CacheConfig from the schema defaults plus overrides (deep for key/coalesce). */
export function cacheConfig(over: Partial<Omit<CacheConfig, 'key' | 'coalesce'>> & { key?: Partial<CacheConfig['key']>; coalesce?: Partial<CacheConfig['coalesce']> } = {}): CacheConfig {
  const base = Value.Default(CacheSchema, {}) as CacheConfig
  return {
    ...base,
    ...over,
    key: { ...base.key, ...over.key },
    coalesce: { ...base.coalesce, ...over.coalesce },
  } as CacheConfig
}

export function creq(url: string, headers: CacheRequest['headers'] = {}, method = 'GET', host = 'example.test'): CacheRequest {
  return { method, scheme: 'http', host, url, headers }
}
