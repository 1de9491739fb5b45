import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { decodeRecord, encodeRecord } from '../../src/data-cache/entry.js'
import { jsonSerializer, msgpackSerializer, type Serializer } from '../../src/data-cache/serializer.js'
import { decodeMessage, encodeMessage } from '../../src/data-cache/bus.js'
import { ViewKeys } from '../../src/data-cache/keys.js'

function roundTrip(value: unknown, serializer: Serializer, tags: string[] = []) {
  const rec = encodeRecord(1000.5, 2000, tags, serializer.serialize(value))
  return decodeRecord(rec, serializer)!
}

describe('L2 record', () => {
  it('keeps staleAt, deleteAt, tags and value in one buffer', () => {
    const e = roundTrip({ a: [1, 'é'] }, jsonSerializer, ['users', 'ünï'])
    expect(e).toMatchObject({ value: { a: [1, 'é'] }, staleAt: 1000.5, deleteAt: 2000, tags: ['users', 'ünï'] })
  })

  it('anything the serializer can carry survives (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.array(fc.string({ minLength: 1, maxLength: 20 }), { maxLength: 5 }), (v, tags) => {
        const e = roundTrip(v, jsonSerializer, tags)
        expect(e.value).toEqual(JSON.parse(JSON.stringify(v)))
        expect(e.tags).toEqual(tags)
      }),
    )
  })

  it('an unknown version or a truncated buffer reads as a miss', () => {
    const rec = encodeRecord(1, 2, [], '1')
    rec[0] = 99
    expect(decodeRecord(rec, jsonSerializer)).toBeUndefined()
    expect(decodeRecord(Buffer.from('short'), jsonSerializer)).toBeUndefined()
  })
})

describe('serializers', () => {
  it('msgpack round-trips Buffers, Dates, Maps, Sets and nested objects', () => {
    const v = { b: Buffer.from([1, 2, 3]), d: new Date(1234567890123), m: new Map<unknown, unknown>([[1, { x: 2 }]]), s: new Set(['a']), o: { n: null, arr: [1.5, 'x'] } }
    const e = roundTrip(v, msgpackSerializer)
    const got = e.value as typeof v
    expect(Buffer.isBuffer(got.b) && got.b.equals(v.b)).toBe(true)
    expect(got.d).toEqual(v.d)
    expect(got.m).toEqual(v.m)
    expect(got.s).toEqual(v.s)
    expect(got.o).toEqual(v.o)
  })

  it('json turns Dates into strings (documented) and keeps plain data', () => {
    expect(roundTrip({ d: new Date(0) }, jsonSerializer).value).toEqual({ d: '1970-01-01T00:00:00.000Z' })
  })
})

describe('bus messages', () => {
  it('encode/decode round-trip; malformed input is rejected', () => {
    const m = { node: 'n1', type: 'tag' as const, path: 'carts', keys: ['a', 'b'] }
    expect(decodeMessage(encodeMessage(m))).toEqual(m)
    for (const bad of ['', 'null', '[1,2,3,4]', '["n","nope","",[]]', '["n","set","",[1]]', '{']) expect(decodeMessage(bad)).toBeUndefined()
  })
})

describe('key layout', () => {
  it('views never collide with each other or with tag and lock keys', () => {
    const root = new ViewKeys('shop', '')
    const carts = new ViewKeys('shop', 'carts')
    expect(root.data('x')).toBe('shop::x')
    expect(carts.data('x')).toBe('shop:carts::x')
    expect(root.tag('x')).toBe('shop:#t:x')
    expect(root.lock('x')).toBe('shop:#l:x')
    expect(root.data('carts::x')).not.toBe(carts.data('x')) // 'shop::carts::x' vs 'shop:carts::x'
    expect(root.l1('x')).toBe('x')
    expect(carts.l1('x')).toBe('\0carts\0x')
    expect(carts.pattern).toBe('shop:carts:*')
  })
})
