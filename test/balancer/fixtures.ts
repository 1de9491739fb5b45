import type { BalancerConfig, UpstreamConfig } from '../../src/config/schema.js'
import type { PickRequest } from '../../src/balancer/index.js'

/** A full balancer config with the schema's defaults, overridden per test. */
export function balancerConfig(overrides: Partial<BalancerConfig> = {}): BalancerConfig {
  return {
    algorithm: 'round-robin',
    hashOn: 'ip',
    sticky: null,
    healthCheck: null,
    passive: { failures: 3, cooldownMs: 5000, maxCooldownMs: 60_000, statuses: [] },
    slowStartMs: 0,
    retries: 1,
    retryOn: ['connect'],
    drainMs: 30_000,
    ...overrides,
  }
}

export function upstreams(spec: Record<string, number | { weight?: number; backup?: boolean }>): UpstreamConfig[] {
  return Object.entries(spec).map(([id, s], i) => ({
    id,
    url: `http://127.0.0.1:${10_001 + i}`,
    weight: typeof s === 'number' ? s : (s.weight ?? 1),
    backup: typeof s === 'number' ? false : (s.backup ?? false),
  }))
}

export function req(over: Partial<PickRequest> = {}): PickRequest {
  return { ip: '10.0.0.1', path: '/', headers: {}, ...over }
}

/** A seeded PRNG (mulberry32) so random/p2c tests are reproducible. */
export function seeded(seed = 42): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function counts(ids: Iterable<string>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const id of ids) out[id] = (out[id] ?? 0) + 1
  return out
}
