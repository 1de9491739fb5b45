import { describe, expect, it, onTestFinished } from 'vitest'
import { Registry } from 'prom-client'
import { createDataCache, registerDataCacheMetrics } from '../../src/data-cache/index.js'

/** A data cache's metrics in a registry the application owns, read from stats() at scrape time. */

function value(text: string, line: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `))
  return found === undefined ? undefined : Number(found.slice(line.length + 1))
}

describe('registerDataCacheMetrics', () => {
  it('exposes hits per tier, misses, loader calls and L1 size, per named cache, growing between scrapes', async () => {
    const registry = new Registry()
    const news = createDataCache({ namespace: 'news', l1: { maxBytes: 1 << 20 }, defaultTtl: '1m' })
    const users = createDataCache({ namespace: 'users', l1: { maxBytes: 1 << 20 }, defaultTtl: '1m' })
    onTestFinished(() => Promise.all([news.disconnect(), users.disconnect()]).then(() => undefined))
    registerDataCacheMetrics(news, registry, { name: 'news' })
    registerDataCacheMetrics(users, registry, { name: 'users' })

    let loads = 0
    const load = async () => ({ n: ++loads })
    await news.getOrSet('a', load)
    await news.getOrSet('a', load)
    await news.getOrSet('a', load)
    await users.getOrSet('u', load)

    const text = await registry.metrics()
    expect(value(text, 'strata_data_cache_hits_total{cache="news",tier="l1"}')).toBe(2)
    expect(value(text, 'strata_data_cache_hits_total{cache="news",tier="l2"}')).toBe(0)
    expect(value(text, 'strata_data_cache_loader_calls_total{cache="news"}')).toBe(1)
    expect(value(text, 'strata_data_cache_loader_calls_total{cache="users"}')).toBe(1)
    expect(value(text, 'strata_data_cache_misses_total{cache="news"}')).toBe(1)
    expect(value(text, 'strata_data_cache_lock_waits_total{cache="news"}')).toBe(0)
    expect(value(text, 'strata_data_cache_l1_entries{cache="news"}')).toBe(1)
    expect(value(text, 'strata_data_cache_l1_bytes{cache="news"}')).toBeGreaterThan(0)
    expect(value(text, 'strata_data_cache_breaker_state{cache="news"}')).toBe(0)

    await news.getOrSet('a', load)
    const again = await registry.metrics()
    expect(value(again, 'strata_data_cache_hits_total{cache="news",tier="l1"}')).toBe(3)
  })
})
