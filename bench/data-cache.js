// Data cache benchmark (issue 5). Plain ESM on the compiled build: `npx tsc -p tsconfig.build.json`
// then `node bench/data-cache.js`. Spawns its own redis-server on a free port and kills it at the
// end. Everything compared is measured in this same run, on this machine:
//   L1 hit: strata getOrSet vs BentoCache getOrSet (memory + redis drivers, default options)
//           vs a raw lru-cache get (sync loop, the ceiling)
//   L2 hit (L1 cold): strata getOrSet vs BentoCache getOrSet vs a raw ioredis GET of the same value
import { startRedis } from './lib.js'
import { Redis } from 'ioredis'
import { LRUCache } from 'lru-cache'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisDriver } from 'bentocache/drivers/redis'
import { createDataCache } from '../dist/data-cache/index.js'

const KEYS = 1000
const L1_MS = Number(process.env.BENCH_L1_MS ?? 3000) // total per candidate
const SLICE_MS = 25
const L2_SAMPLES = Number(process.env.BENCH_L2_SAMPLES ?? 3000)

// A typical "database row": ~300 bytes of JSON.
const valueFor = (i) => ({ id: i, name: `User number ${i}`, email: `user${i}@example.com`, roles: ['reader', 'writer'], createdAt: '2024-05-01T10:00:00.000Z', profile: { bio: 'x'.repeat(120), score: i * 1.5, active: true } })
const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`)

/**
 * ops/s of several candidates measured in interleaved slices (each call awaited, or plain calls
 * for sync ones), so load from other processes on the machine hits every candidate alike.
 */
async function throughput(candidates) {
  const ops = Object.fromEntries(Object.keys(candidates).map((k) => [k, 0]))
  const time = Object.fromEntries(Object.keys(candidates).map((k) => [k, 0]))
  const deadline = performance.now() + L1_MS * Object.keys(candidates).length
  let sink = 0
  while (performance.now() < deadline) {
    for (const [name, { op, sync }] of Object.entries(candidates)) {
      const t0 = performance.now()
      let n = 0
      const sliceEnd = t0 + SLICE_MS
      if (sync) {
        while (performance.now() < sliceEnd) {
          for (let i = 0; i < 1000; i++) if (op(keys[(n + i) % KEYS]) !== undefined) sink++
          n += 1000
        }
      } else {
        while (performance.now() < sliceEnd) {
          for (let i = 0; i < 1000; i++) await op(keys[(n + i) % KEYS])
          n += 1000
        }
      }
      time[name] += performance.now() - t0
      ops[name] += n
    }
  }
  if (sink === -1) console.log(sink)
  return Object.fromEntries(Object.keys(candidates).map((k) => [k, ops[k] / (time[k] / 1000)]))
}

/** Per-call latency (µs) over distinct keys, the candidates taking turns key by key. */
async function latencies(candidates, count) {
  const names = Object.keys(candidates)
  const out = Object.fromEntries(names.map((n) => [n, new Float64Array(count)]))
  for (let i = 0; i < count; i++) {
    for (const n of names) {
      const t = process.hrtime.bigint()
      await candidates[n](i)
      out[n][i] = Number(process.hrtime.bigint() - t) / 1000
    }
  }
  return Object.fromEntries(
    names.map((n) => {
      const a = out[n].sort()
      const q = (p) => +a[Math.min(a.length - 1, Math.floor(p * a.length))].toFixed(1)
      return [n, { p50: q(0.5), p90: q(0.9), p99: q(0.99), mean: +(a.reduce((x, y) => x + y, 0) / a.length).toFixed(1) }]
    }),
  )
}

const bento = (url, prefix) =>
  new BentoCache({
    default: 'c',
    prefix,
    stores: { c: bentostore().useL1Layer(memoryDriver({ maxSize: '64mb' })).useL2Layer(redisDriver({ connection: url })) },
  })

async function main() {
  const redis = await startRedis()
  const loader = () => {
    throw new Error('a hit must not load')
  }
  const results = {}
  try {
    // ---- L1 hits -------------------------------------------------------------------------
    const lru = new LRUCache({ max: 100_000 })
    for (let i = 0; i < KEYS; i++) lru.set(keys[i], valueFor(i))
    const strata = createDataCache({ namespace: 'bench-l1', redis: redis.url })
    await strata.ready()
    for (let i = 0; i < KEYS; i++) await strata.set(keys[i], valueFor(i))
    const b1 = bento(redis.url, 'bench-bento-l1')
    for (let i = 0; i < KEYS; i++) await b1.set({ key: keys[i], value: valueFor(i) })
    const l1 = await throughput({
      lru: { op: (k) => lru.get(k), sync: true },
      lruAwaited: { op: (k) => lru.get(k) },
      strata: { op: (k) => strata.getOrSet(k, loader) },
      bento: { op: (k) => b1.getOrSet({ key: k, factory: loader }) },
    })
    results.lruGetOps = l1.lru
    results.lruAwaitedOps = l1.lruAwaited
    results.strataL1Ops = l1.strata
    results.bentoL1Ops = l1.bento
    if (strata.stats().loaderCalls !== 0) throw new Error('strata L1 bench loaded: not measuring hits')

    // ---- L2 hits (L1 cold): each sample reads a key this reader has never seen -------------
    const raw = new Redis(redis.url)
    const l2keys = Array.from({ length: L2_SAMPLES }, (_, i) => `user:${i}`)
    const rawKeys = l2keys.map((k) => `bench-raw:${k}`)
    for (let i = 0; i < L2_SAMPLES; i++) await raw.set(rawKeys[i], JSON.stringify(valueFor(i)))

    const sWriter = createDataCache({ namespace: 'bench-l2', redis: redis.url })
    await sWriter.ready()
    for (let i = 0; i < L2_SAMPLES; i++) await sWriter.set(l2keys[i], valueFor(i))
    const bWriter = bento(redis.url, 'bench-bento-l2')
    for (let i = 0; i < L2_SAMPLES; i++) await bWriter.set({ key: l2keys[i], value: valueFor(i) })

    // Warm every connection and JIT first (on keys outside the measured set).
    const sReader = createDataCache({ namespace: 'bench-l2', redis: redis.url })
    await sReader.ready()
    const bReader = bento(redis.url, 'bench-bento-l2')
    for (let i = 0; i < 300; i++) {
      await raw.get('warm')
      await sReader.getOrSet(`warm${i}`, () => 1)
      await bReader.getOrSet({ key: `warm${i}`, factory: () => 1 })
    }
    const l2 = await latencies(
      {
        raw: (i) => raw.get(rawKeys[i]),
        strata: (i) => sReader.getOrSet(l2keys[i], loader),
        bento: (i) => bReader.getOrSet({ key: l2keys[i], factory: loader }),
      },
      L2_SAMPLES,
    )
    results.rawGet = l2.raw
    results.strataL2 = l2.strata
    results.bentoL2 = l2.bento
    const st = sReader.stats()
    if (st.l2Hits < L2_SAMPLES || st.loaderCalls !== 300) throw new Error(`strata L2 bench did not measure L2 hits: ${JSON.stringify(st)}`)

    raw.disconnect()
    await Promise.all([strata.disconnect(), sWriter.disconnect(), sReader.disconnect(), b1.disconnect(), bWriter.disconnect(), bReader.disconnect()])
  } finally {
    await redis.stop()
  }

  const f = (n) => Math.round(n).toLocaleString('en-US')
  const us = (n) => n.toFixed(1)
  const ratios = {
    l1_vs_bentocache: +(results.strataL1Ops / results.bentoL1Ops).toFixed(2),
    l1_vs_raw_lru_get: +(results.strataL1Ops / results.lruGetOps).toFixed(3),
    l1_vs_raw_lru_get_awaited: +(results.strataL1Ops / results.lruAwaitedOps).toFixed(3),
    l2_p50_vs_raw_get: +(results.strataL2.p50 / results.rawGet.p50).toFixed(2),
    bentocache_l2_p50_vs_raw_get: +(results.bentoL2.p50 / results.rawGet.p50).toFixed(2),
  }
  console.log('\nL1 hit throughput (ops/s, interleaved 25 ms slices, 1000 keys, each async call awaited)')
  console.table({
    'raw lru-cache get (sync loop)': { 'ops/s': f(results.lruGetOps) },
    'raw lru-cache get (awaited)': { 'ops/s': f(results.lruAwaitedOps) },
    'strata getOrSet': { 'ops/s': f(results.strataL1Ops) },
    'BentoCache getOrSet': { 'ops/s': f(results.bentoL1Ops) },
  })
  console.log(`L2 hit latency, L1 cold (µs, ${L2_SAMPLES} distinct keys, sequential, candidates take turns per key)`)
  const row = (r) => ({ p50: us(r.p50), p90: us(r.p90), p99: us(r.p99), mean: us(r.mean) })
  console.table({ 'raw ioredis GET': row(results.rawGet), 'strata getOrSet': row(results.strataL2), 'BentoCache getOrSet': row(results.bentoL2) })
  console.log(`ratios: L1 ${ratios.l1_vs_bentocache}x BentoCache (target >= 3), ${ratios.l1_vs_raw_lru_get}x raw lru get (target >= 0.2; ${ratios.l1_vs_raw_lru_get_awaited}x the same get awaited); L2 p50 ${ratios.l2_p50_vs_raw_get}x raw GET (target <= 1.3), BentoCache ${ratios.bentocache_l2_p50_vs_raw_get}x`)
  console.log(
    JSON.stringify({
      bench: 'data-cache',
      node: process.version,
      l1: { lru_get_ops: Math.round(results.lruGetOps), lru_get_awaited_ops: Math.round(results.lruAwaitedOps), strata_ops: Math.round(results.strataL1Ops), bentocache_ops: Math.round(results.bentoL1Ops) },
      l2_us: { raw_get: results.rawGet, strata: results.strataL2, bentocache: results.bentoL2 },
      ratios,
      targets: { l1_vs_bentocache: { min: 3 }, l1_vs_raw_lru_get: { min: 0.2 }, l2_p50_vs_raw_get: { max: 1.3 } },
    }),
  )
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
