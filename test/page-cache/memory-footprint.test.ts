import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/core/clock.js'
import { GarbageNudge, defaultNudgeBytes, v8Gc } from '../../src/page-cache/gc-nudge.js'
import { MemoryStore } from '../../src/page-cache/memory-store.js'
import { ownedBytes, ownedConcat } from '../../src/page-cache/owned-bytes.js'
import { decodeEntry, encodeEntry } from '../../src/page-cache/redis-store.js'
import { BodyTee } from '../../src/page-cache/tee.js'
import { makeEntry } from './store-contract.js'

const owns = (b: Buffer) => b.byteOffset === 0 && b.buffer.byteLength === b.byteLength

describe('owned bytes: a stored body never pins a larger backing store', () => {
  it('copies a view out of a pooled or larger buffer, keeps an owning buffer as is', () => {
    const pooled = Buffer.from('small body') // under 4 KB: a view into Node's 8 KB pool
    expect(owns(pooled)).toBe(false)
    const copy = ownedBytes(pooled)
    expect(owns(copy)).toBe(true)
    expect(copy.toString()).toBe('small body')
    const own = Buffer.allocUnsafeSlow(10)
    expect(ownedBytes(own)).toBe(own)
    const joined = ownedConcat([Buffer.from('ab'), new Uint8Array([99]), Buffer.from('d')], 4)
    expect(joined.toString()).toBe('abcd')
    expect(owns(joined)).toBe(true)
  })

  it('the tee stores a small body in an allocation of its own', async () => {
    const src = new PassThrough()
    const tee = new BodyTee(src, 1e6, false)
    src.write(Buffer.from('hello '))
    src.end(Buffer.from('world'))
    const body = await tee.stored
    expect(body?.toString()).toBe('hello world')
    expect(owns(body!)).toBe(true)
  })

  it('an entry read back from L2 bytes owns its body', () => {
    const clock = new ManualClock()
    const bytes = encodeEntry(makeEntry(clock, { body: Buffer.from('from redis') }))
    const reply = Buffer.concat([Buffer.alloc(100), bytes, Buffer.alloc(100)]) // a reply holding more
    const e = decodeEntry(reply.subarray(100, 100 + bytes.length))
    expect(e.body.toString()).toBe('from redis')
    expect(owns(e.body)).toBe(true)
  })
})

describe('GarbageNudge', () => {
  it('asks once per threshold of dropped bytes', () => {
    const asked: string[] = []
    const n = new GarbageNudge(100, (kind) => asked.push(kind), { minMajorGapMs: 0 })
    n.dropped(60)
    expect(asked).toEqual([])
    n.dropped(60)
    expect(asked).toEqual(['major'])
    n.dropped(99)
    n.stored(99)
    expect(asked).toEqual(['major'])
    n.dropped(1)
    expect(asked).toEqual(['major', 'major'])
    // The major collection also cleared the young generation: the stored count starts over.
    n.stored(1)
    expect(asked).toEqual(['major', 'major'])
    n.stored(100)
    expect(asked).toEqual(['major', 'major', 'minor'])
    expect(n.requested).toEqual({ minor: 1, major: 2 })
  })

  it('spaces major collections at least minMajorGapMs apart under churn, and asks once the gap has passed', () => {
    const asked: string[] = []
    let now = 1000
    const n = new GarbageNudge(100, (kind) => asked.push(kind), { minMajorGapMs: 500, now: () => now })
    n.dropped(100)
    expect(asked).toEqual(['major'])
    // Churn: thousands of bytes dropped within the gap ask for nothing more.
    for (let i = 0; i < 50; i++) n.dropped(100)
    expect(asked).toEqual(['major'])
    now += 499
    n.dropped(100)
    expect(asked).toEqual(['major'])
    now += 1
    n.dropped(1)
    expect(asked).toEqual(['major', 'major'])
  })

  it('defaults to a sixteenth of maxBytes, between 4 and 64 MB', () => {
    const MB = 1024 * 1024
    expect(defaultNudgeBytes(128 * MB)).toBe(8 * MB)
    expect(defaultNudgeBytes(1 * MB)).toBe(4 * MB)
    expect(defaultNudgeBytes(4096 * MB)).toBe(64 * MB)
  })

  it("obtains V8's gc at run time", async () => {
    const gc = v8Gc()
    expect(typeof gc).toBe('function')
    gc!('minor') // returns at once; V8 collects from a task of its own
    gc!('major')
  })
})

describe('MemoryStore asks for a collection after dropping bytes', () => {
  it('counts stores (minor) and evictions and deletions (major), not a variant list replaced by set', () => {
    const clock = new ManualClock()
    const asked: string[] = []
    const store = new MemoryStore({ maxBytes: 10_000, clock, gcNudgeBytes: 5_000, requestGc: (kind) => asked.push(kind), gcMinMajorGapMs: 0 })
    for (let i = 0; i < 4; i++) store.set(makeEntry(clock, { key: `http://h/${i}`, body: Buffer.alloc(2000) }))
    expect(asked).toEqual(['minor']) // ~9.2 KB stored, all fit: nothing dropped
    // Same key and variant again: the list is replaced, not dropped.
    for (let i = 0; i < 2; i++) store.set(makeEntry(clock, { key: 'http://h/0', body: Buffer.alloc(2000) }))
    expect(asked).toEqual(['minor', 'minor'])
    for (let i = 4; i < 7; i++) store.set(makeEntry(clock, { key: `http://h/${i}`, body: Buffer.alloc(2000) }))
    expect(asked.filter((k) => k === 'major')).toHaveLength(1) // three evictions of ~2.4 KB each
    store.delete('http://h/6')
    store.delete('http://h/5')
    store.delete('http://h/4')
    expect(asked.filter((k) => k === 'major')).toHaveLength(2)
    expect(store.gcNudges.major).toBe(2)
  })

  it('gcNudgeBytes: 0 turns it off', () => {
    const clock = new ManualClock()
    let asked = 0
    const store = new MemoryStore({ maxBytes: 3000, clock, gcNudgeBytes: 0, requestGc: () => asked++ })
    for (let i = 0; i < 10; i++) store.set(makeEntry(clock, { key: `http://h/${i}`, body: Buffer.alloc(2000) }))
    expect(asked).toBe(0)
    expect(store.gcNudges).toEqual({ minor: 0, major: 0 })
  })
})
