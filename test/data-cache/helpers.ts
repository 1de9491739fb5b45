import type { DataCache, DataCacheEvents } from '../../src/data-cache/index.js'

/** Resolves with the next bus message of this type that `cache` applies from another node. */
export function nextBus(cache: DataCache, type: DataCacheEvents['bus:received']['type']): Promise<DataCacheEvents['bus:received']> {
  return new Promise((resolve) => {
    const fn = (m: DataCacheEvents['bus:received']) => {
      if (m.type !== type) return
      cache.off('bus:received', fn)
      resolve(m)
    }
    cache.on('bus:received', fn)
  })
}
