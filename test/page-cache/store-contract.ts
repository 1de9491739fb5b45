/**
 * The one contract every PageStore passes (the undici cache-store habit). Each store's test file
 * calls runStoreContract with a factory; the suite only uses the PageStore interface.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/core/clock.js'
import { createEntry } from '../../src/page-cache/entry.js'
import { effectivePolicy } from '../../src/page-cache/policy.js'
import type { PageStore } from '../../src/page-cache/store.js'
import type { CacheEntry } from '../../src/page-cache/types.js'

export interface StoreFixture {
  store: PageStore
  clock: ManualClock
  close(): Promise<void>
}

export function makeEntry(clock: ManualClock, over: { key?: string; variant?: string; body?: Buffer; ttl?: number; tags?: string; headers?: Record<string, string> } = {}): CacheEntry {
  const headers: Record<string, string> = { 'content-type': 'text/plain', 'cache-control': `max-age=${over.ttl ?? 60}`, ...over.headers }
  if (over.tags) headers['surrogate-key'] = over.tags
  return createEntry({
    key: over.key ?? 'http://h/a',
    variant: over.variant ?? '',
    vary: over.variant ? ['accept-language'] : [],
    status: 200,
    headers,
    body: over.body ?? Buffer.from('hello'),
    requestTime: clock.now(),
    responseTime: clock.now(),
    ttl: over.ttl ?? 60,
    policy: effectivePolicy(headers),
    grace: 0,
    staleIfError: 0,
    keepMs: 0,
  })
}

const sorted = (v: readonly CacheEntry[] | undefined) => [...(v ?? [])].map((e) => e.variant).sort()

export function runStoreContract(name: string, factory: () => Promise<StoreFixture>): void {
  describe(`PageStore contract: ${name}`, () => {
    let fx: StoreFixture
    afterEach(async () => {
      await fx?.close()
    })
    const setup = async () => {
      fx = await factory()
      return fx
    }

    it('answers undefined for an unknown key', async () => {
      const { store } = await setup()
      expect(await store.get('http://h/none')).toBeUndefined()
    })

    it('round-trips an entry with a binary body byte-exact', async () => {
      const { store, clock } = await setup()
      const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe, 0x80, 0x00])
      const e = makeEntry(clock, { body: png, tags: 'img t2' })
      await store.set(e)
      const got = await store.get(e.key)
      expect(got).toHaveLength(1)
      const g = got![0]!
      expect(Buffer.isBuffer(g.body)).toBe(true)
      expect(g.body.equals(png)).toBe(true)
      expect(g).toMatchObject({ key: e.key, status: 200, staleAt: e.staleAt, deleteAt: e.deleteAt, tags: ['img', 't2'] })
      expect(g.headers).toEqual(e.headers)
    })

    it('keeps variants apart and replaces the same variant', async () => {
      const { store, clock } = await setup()
      await store.set(makeEntry(clock, { variant: 'accept-language:en', body: Buffer.from('en1') }))
      await store.set(makeEntry(clock, { variant: 'accept-language:fr', body: Buffer.from('fr') }))
      await store.set(makeEntry(clock, { variant: 'accept-language:en', body: Buffer.from('en2') }))
      const got = await store.get('http://h/a')
      expect(sorted(got)).toEqual(['accept-language:en', 'accept-language:fr'])
      expect(got!.find((e) => e.variant.endsWith('en'))!.body.toString()).toBe('en2')
    })

    it('never returns entries past deleteAt', async () => {
      const { store, clock } = await setup()
      await store.set(makeEntry(clock, { ttl: 10 }))
      clock.advance(9_000)
      expect(await store.get('http://h/a')).toHaveLength(1)
      clock.advance(1_000)
      expect(await store.get('http://h/a')).toBeUndefined()
    })

    it('deletes all variants of a key and says how many', async () => {
      const { store, clock } = await setup()
      await store.set(makeEntry(clock, { variant: 'accept-language:en' }))
      await store.set(makeEntry(clock, { variant: 'accept-language:fr' }))
      expect(await store.delete('http://h/a')).toBe(2)
      expect(await store.get('http://h/a')).toBeUndefined()
      expect(await store.delete('http://h/a')).toBe(0)
    })

    it('purges exact keys, key predicates, tags and all', async () => {
      const { store, clock } = await setup()
      for (const p of ['/news/1', '/news/2', '/sport/1', '/x']) await store.set(makeEntry(clock, { key: `http://h${p}`, tags: p.startsWith('/news') ? 'news' : 'other' }))
      expect(await store.purge({ kind: 'keys', keys: ['http://h/x', 'http://h/missing'] }, { soft: false, now: clock.now() })).toBe(1)
      expect(await store.purge({ kind: 'match', match: (k) => k.includes('/sport/') }, { soft: false, now: clock.now() })).toBe(1)
      expect(await store.get('http://h/sport/1')).toBeUndefined()
      expect(await store.purge({ kind: 'tags', tags: new Set(['news']) }, { soft: false, now: clock.now() })).toBe(2)
      expect(await store.get('http://h/news/1')).toBeUndefined()
      await store.set(makeEntry(clock, { key: 'http://h/y' }))
      expect(await store.purge({ kind: 'all' }, { soft: false, now: clock.now() })).toBe(1)
      expect(await store.get('http://h/y')).toBeUndefined()
    })

    it('purges only the tagged variant of a key', async () => {
      const { store, clock } = await setup()
      await store.set(makeEntry(clock, { variant: 'accept-language:en', tags: 'a' }))
      await store.set(makeEntry(clock, { variant: 'accept-language:fr', tags: 'b' }))
      expect(await store.purge({ kind: 'tags', tags: new Set(['a']) }, { soft: false, now: clock.now() })).toBe(1)
      expect(sorted(await store.get('http://h/a'))).toEqual(['accept-language:fr'])
    })

    it('soft purge marks entries stale and keeps them', async () => {
      const { store, clock } = await setup()
      await store.set(makeEntry(clock, { key: 'http://h/s', ttl: 100 }))
      clock.advance(1000)
      expect(await store.purge({ kind: 'all' }, { soft: true, now: clock.now() })).toBe(1)
      const got = await store.get('http://h/s')
      expect(got).toHaveLength(1)
      expect(got![0]!.staleAt).toBe(clock.now())
    })

    it('reports entries and bytes', async () => {
      const { store, clock } = await setup()
      await store.set(makeEntry(clock, { key: 'http://h/1', body: Buffer.alloc(1000) }))
      await store.set(makeEntry(clock, { key: 'http://h/2', body: Buffer.alloc(1000) }))
      const s = await store.stats()
      expect(s.entries).toBe(2)
      expect(s.bytes).toBeGreaterThanOrEqual(2000)
    })
  })
}
