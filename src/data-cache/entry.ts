import type { Serializer } from './serializer.js'

/**
 * One cached value with its timeline. `staleAt` ends freshness, `deleteAt` ends grace; both are
 * absolute epoch milliseconds so a value read from L2 keeps the TTL it was written with (nodes
 * are assumed to have synchronised clocks, as for any shared TTL).
 */
export interface Entry {
  value: unknown
  staleAt: number
  deleteAt: number
  tags: readonly string[]
  /** Serialized size in bytes, what L1 is bounded by. */
  size: number
  /**
   * The value as an already-resolved promise, created on the first L1 hit and reused: the hot
   * path of getOrSet then allocates nothing.
   */
  promise: Promise<unknown> | undefined
}

export function makeEntry(value: unknown, staleAt: number, deleteAt: number, tags: readonly string[], size: number): Entry {
  // Always the same property order so V8 keeps one hidden class for every entry.
  return { value, staleAt, deleteAt, tags, size, promise: undefined }
}

const VERSION = 1
const FIXED_HEADER = 19 // version(1) + staleAt(8) + deleteAt(8) + tag count(2)

/**
 * The L2 record: a small binary header then the serializer's bytes, in ONE Redis string, so an
 * L2 read is exactly one GET and the payload is decoded once (no JSON envelope around JSON).
 *
 *   u8 version | f64 staleAt | f64 deleteAt | u16 tagCount | (u16 len, utf8 tag)* | payload
 */
export function encodeRecord(staleAt: number, deleteAt: number, tags: readonly string[], payload: string | Uint8Array): Buffer {
  let size = FIXED_HEADER
  const tagBytes: number[] = []
  for (const t of tags) {
    const n = Buffer.byteLength(t)
    tagBytes.push(n)
    size += 2 + n
  }
  const payloadLen = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength
  const buf = Buffer.allocUnsafe(size + payloadLen)
  buf[0] = VERSION
  buf.writeDoubleBE(staleAt, 1)
  buf.writeDoubleBE(deleteAt, 9)
  buf.writeUInt16BE(tags.length, 17)
  let off = FIXED_HEADER
  for (let i = 0; i < tags.length; i++) {
    buf.writeUInt16BE(tagBytes[i]!, off)
    off += 2
    off += buf.write(tags[i]!, off, 'utf8')
  }
  if (typeof payload === 'string') buf.write(payload, off, 'utf8')
  else buf.set(payload, off)
  return buf
}

/** Decodes a record; undefined for anything this version does not understand (read as a miss). */
export function decodeRecord(buf: Buffer, serializer: Serializer): Entry | undefined {
  if (buf.length < FIXED_HEADER || buf[0] !== VERSION) return undefined
  const staleAt = buf.readDoubleBE(1)
  const deleteAt = buf.readDoubleBE(9)
  const count = buf.readUInt16BE(17)
  let off = FIXED_HEADER
  let tags: string[] = NO_TAGS as string[]
  if (count > 0) {
    tags = []
    for (let i = 0; i < count; i++) {
      const n = buf.readUInt16BE(off)
      off += 2
      tags.push(buf.toString('utf8', off, off + n))
      off += n
    }
  }
  const value = serializer.deserialize(buf.subarray(off))
  return makeEntry(value, staleAt, deleteAt, tags, buf.length - off)
}

export const NO_TAGS: readonly string[] = Object.freeze([])

/** Serialized byte length, for L1 sizing when no L2 record is built. */
export function payloadSize(payload: string | Uint8Array): number {
  return typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength
}
