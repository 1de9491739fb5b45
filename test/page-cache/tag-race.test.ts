// A tag purge racing an L2 write: the store writes the entry, then indexes it under its tags, so
// a purge that reads the index in between misses it. The page cache re-applies tag purges to its
// own recent L2 writes once they finish. A real origin, a MemoryStore behind a slow writer.
import { afterEach, describe, expect, it } from 'vitest'
import { PageCache } from '../../src/page-cache/page-cache.js'
import { MemoryStore } from '../../src/page-cache/memory-store.js'
import type { PageStore } from '../../src/page-cache/store.js'
import type { CacheEntry } from '../../src/page-cache/types.js'
import type { BusMessage, InvalidationBus } from '../../src/page-cache/bus.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { sleep, waitFor } from '../helpers/ports.js'
import { bodyOf, originFetch } from './fetch-origin.js'
import { cacheConfig, creq } from './helpers.js'

/** A store whose writes land `delayMs` after they are asked for (a slow Redis round trip). */
function slowWrites(store: MemoryStore, delayMs: number): PageStore & { writes: number } {
  const slow = {
    name: 'slow-memory',
    writes: 0,
    get: (key: string) => store.get(key),
    async set(entry: CacheEntry) {
      await sleep(delayMs)
      store.set(entry)
      slow.writes++
    },
    delete: (key: string) => store.delete(key),
    purge: store.purge.bind(store),
    stats: () => store.stats(),
    close: () => store.close(),
  }
  return slow
}

/** An in-process bus shared by the nodes of one test. */
function memoryBus(): () => InvalidationBus {
  const handlers = new Set<(msg: BusMessage) => void>()
  return () => ({
    publish: async (msg) => {
      for (const h of handlers) queueMicrotask(() => h(msg))
    },
    subscribe: async (h) => {
      handlers.add(h)
    },
    close: async () => {},
  })
}

let origin: Origin
let cache: PageCache | undefined
let other: PageCache | undefined
afterEach(async () => {
  await cache?.close()
  await other?.close()
  other = undefined
  await origin?.close()
})

describe('tag purge racing an L2 write', () => {
  it('the entry written after the purge read the index is deleted once its write finishes', async () => {
    origin = await startOrigin((_q, s) => {
      s.writeHead(200, { 'cache-control': 'max-age=300', 'surrogate-key': 'news' })
      s.end('v1')
    })
    const backing = new MemoryStore({ maxBytes: 1_000_000 })
    const l2 = slowWrites(backing, 80)
    cache = new PageCache({ config: cacheConfig(), l2 })
    const fetchOrigin = originFetch(() => origin.url)
    const r = await cache.handle(creq('/news'), fetchOrigin)
    await bodyOf(r.body)
    // The L2 write is in flight: the purge finds nothing there yet.
    expect(backing.peek('http://example.test/news')).toBeUndefined()
    const purged = await cache.purge({ tags: ['news'] })
    expect(purged.l2).toBe(0)
    await waitFor(() => l2.writes === 1, 2000, 5)
    await waitFor(() => backing.peek('http://example.test/news') === undefined, 2000, 5)
  })

  it('leaves recent writes with other tags, and soft purges, alone', async () => {
    origin = await startOrigin((q, s) => {
      s.writeHead(200, { 'cache-control': 'max-age=300', 'surrogate-key': q.url === '/a' ? 'a' : 'b' })
      s.end(q.url)
    })
    const backing = new MemoryStore({ maxBytes: 1_000_000 })
    const l2 = slowWrites(backing, 20)
    cache = new PageCache({ config: cacheConfig(), l2 })
    const fetchOrigin = originFetch(() => origin.url)
    for (const u of ['/a', '/b']) await bodyOf((await cache.handle(creq(u), fetchOrigin)).body)
    await cache.purge({ tags: ['b'], soft: true })
    await cache.purge({ tags: ['b'] })
    await waitFor(() => l2.writes === 2, 2000, 5)
    await sleep(50)
    expect(backing.peek('http://example.test/a')).toBeDefined()
    expect(backing.peek('http://example.test/b')).toBeUndefined()
  })

  it('a purge from another node, off the bus, re-applies to a write this node still had in flight', async () => {
    origin = await startOrigin((_q, s) => {
      s.writeHead(200, { 'cache-control': 'max-age=300', 'surrogate-key': 'news' })
      s.end('v1')
    })
    const backing = new MemoryStore({ maxBytes: 1_000_000 })
    const bus = memoryBus()
    const l2 = slowWrites(backing, 80)
    cache = new PageCache({ config: cacheConfig(), l2, bus: bus(), nodeId: 'writer' })
    other = new PageCache({ config: cacheConfig(), l2: slowWrites(backing, 0), bus: bus(), nodeId: 'purger' })
    await Promise.all([cache.ready(), other.ready()])
    await bodyOf((await cache.handle(creq('/news'), originFetch(() => origin.url))).body)
    expect((await other.purge({ tags: ['news'] })).l2).toBe(0)
    await waitFor(() => l2.writes === 1, 2000, 5)
    await waitFor(() => backing.peek('http://example.test/news') === undefined, 2000, 5)
    expect(cache.peek('http://example.test/news')).toBeUndefined()
  })
})
