import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/core/clock.js'
import { MemoryStore } from '../../src/page-cache/memory-store.js'
import { makeEntry, runStoreContract } from './store-contract.js'

runStoreContract('memory', async () => {
  const clock = new ManualClock()
  const store = new MemoryStore({ maxBytes: 10 * 1024 * 1024, clock })
  return { store, clock, close: () => store.close() }
})

describe('MemoryStore specifics', () => {
  it('is bounded by bytes: the least recently used entry is evicted', () => {
    const clock = new ManualClock()
    const store = new MemoryStore({ maxBytes: 5000, clock })
    store.set(makeEntry(clock, { key: 'http://h/1', body: Buffer.alloc(2000) }))
    store.set(makeEntry(clock, { key: 'http://h/2', body: Buffer.alloc(2000) }))
    store.get('http://h/1')
    store.set(makeEntry(clock, { key: 'http://h/3', body: Buffer.alloc(2000) }))
    expect(store.get('http://h/1')).toBeDefined()
    expect(store.get('http://h/2')).toBeUndefined()
    expect(store.stats().bytes).toBeLessThanOrEqual(5000)
  })

  it('answers get synchronously and returns the stored body without copying', () => {
    const clock = new ManualClock()
    const store = new MemoryStore({ maxBytes: 1e6, clock })
    const e = makeEntry(clock)
    store.set(e)
    const got = store.get(e.key)
    expect(Array.isArray(got)).toBe(true)
    expect(got![0]!.body).toBe(e.body)
  })

  it('purges a large cache by predicate without blocking the event loop', async () => {
    const clock = new ManualClock()
    const store = new MemoryStore({ maxBytes: 1e9, clock })
    for (let i = 0; i < 20_000; i++) store.set(makeEntry(clock, { key: `http://h/p/${i}`, body: Buffer.alloc(1) }))
    let ticks = 0
    const timer = setInterval(() => ticks++, 0)
    const n = await store.purge({ kind: 'match', match: (k) => k.startsWith('http://h/p/1') }, { soft: false, now: clock.now() })
    clearInterval(timer)
    expect(n).toBe(11_111)
    expect(ticks).toBeGreaterThan(0)
  })
})
