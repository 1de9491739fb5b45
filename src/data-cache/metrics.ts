import { Counter, Gauge, type Registry } from 'prom-client'
import { mirrorCounter } from '../observability/metrics.js'
import type { DataCacheStats } from './types.js'

/**
 * Registers one data cache's metrics into a prom-client registry the application passes in
 * (`registerDataCacheMetrics(cache, registry, { name: 'news' })`). Everything is read from
 * `cache.stats()` when the registry is scraped, so the cache's own calls pay nothing. Several
 * caches can share a registry: each is one `cache="<name>"` label value.
 */
export function registerDataCacheMetrics(cache: { stats(): DataCacheStats }, registry: Registry, opts: { name?: string } = {}): void {
  const label = { cache: opts.name ?? 'default' }
  const seen = new Map<string, number>()
  // Shared metric objects per registry: a second cache adds its label value to the same names.
  const counter = (name: string, help: string, labelNames: string[], read: (c: Counter<string>, s: DataCacheStats) => void) =>
    withCollector(registry, name, () => new Counter({ name, help, labelNames: ['cache', ...labelNames], registers: [registry] }), (m) => read(m as Counter<string>, cache.stats()))
  const gauge = (name: string, help: string, read: (s: DataCacheStats) => number) =>
    withCollector(registry, name, () => new Gauge({ name, help, labelNames: ['cache'], registers: [registry] }), (m) => (m as Gauge<string>).set(label, read(cache.stats())))

  const key = (k: string) => `${label.cache}:${k}`
  counter('strata_data_cache_hits_total', 'Data-cache calls answered with a fresh value, by tier.', ['tier'], (c, s) => {
    mirrorCounter(c, { ...label, tier: 'l1' }, key('l1'), seen, s.l1Hits)
    mirrorCounter(c, { ...label, tier: 'l2' }, key('l2'), seen, s.l2Hits)
  })
  counter('strata_data_cache_misses_total', 'Data-cache calls that found nothing fresh in either tier.', [], (c, s) => mirrorCounter(c, label, key('miss'), seen, s.misses))
  counter('strata_data_cache_loader_calls_total', 'Loader calls (after single-flight and the cross-node lock).', [], (c, s) => mirrorCounter(c, label, key('loader'), seen, s.loaderCalls))
  counter('strata_data_cache_loader_errors_total', 'Loader calls that threw.', [], (c, s) => mirrorCounter(c, label, key('loaderErr'), seen, s.loaderErrors))
  counter('strata_data_cache_lock_waits_total', 'Loads that waited for the cross-node lock held by another node.', [], (c, s) => mirrorCounter(c, label, key('lockWaits'), seen, s.lockWaits))
  counter('strata_data_cache_stale_served_total', 'Calls answered with a graced stale value.', [], (c, s) => mirrorCounter(c, label, key('stale'), seen, s.staleServed))
  counter('strata_data_cache_l2_errors_total', 'Redis commands that failed or timed out.', [], (c, s) => mirrorCounter(c, label, key('l2err'), seen, s.l2Errors))
  counter('strata_data_cache_bus_messages_total', 'Invalidation bus messages, by direction.', ['direction'], (c, s) => {
    mirrorCounter(c, { ...label, direction: 'out' }, key('busOut'), seen, s.busPublished)
    mirrorCounter(c, { ...label, direction: 'in' }, key('busIn'), seen, s.busReceived)
  })
  gauge('strata_data_cache_l1_entries', 'Entries in the data cache\'s memory tier.', (s) => s.l1Entries)
  gauge('strata_data_cache_l1_bytes', 'Bytes in the data cache\'s memory tier.', (s) => s.l1Bytes)
  gauge('strata_data_cache_in_flight', 'Loads in flight (single-flight waiters share one).', (s) => s.inFlight)
  gauge('strata_data_cache_bus_queued', 'Invalidations waiting for Redis to come back.', (s) => s.busQueued)
  gauge('strata_data_cache_breaker_state', 'Redis circuit breaker: 0 closed, 1 half-open, 2 open.', (s) => (s.breaker === 'closed' ? 0 : s.breaker === 'half-open' ? 1 : 2))
}

/** One metric object per name and registry, whose collect runs every registered cache's reader. */
const readers = new WeakMap<Registry, Map<string, Array<(m: Counter<string> | Gauge<string>) => void>>>()

function withCollector(registry: Registry, name: string, create: () => Counter<string> | Gauge<string>, read: (m: Counter<string> | Gauge<string>) => void): void {
  let byName = readers.get(registry)
  if (byName === undefined) readers.set(registry, (byName = new Map()))
  let list = byName.get(name)
  if (list === undefined) {
    const fns: Array<(m: Counter<string> | Gauge<string>) => void> = (list = [])
    const metric = create()
    ;(metric as unknown as { collect: () => void }).collect = () => {
      for (const fn of fns) fn(metric)
    }
    byName.set(name, list)
  }
  list.push(read)
}
