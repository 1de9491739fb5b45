/**
 * Bodies the cache keeps get an allocation of their own. A Buffer can be a view into a larger
 * ArrayBuffer: Buffer.concat and Buffer.from take bodies under 4 KB from Node's shared 8 KB pool,
 * and a Redis reply or a socket read is one buffer holding more than the body. Kept in the cache,
 * such a view pins the whole backing store for as long as the entry lives, bytes the cache's
 * `maxBytes` never counted. Copying once at store time costs one memcpy of the body.
 */

/** `chunks` (total `size` bytes) as one Buffer backed by exactly `size` bytes of its own. */
export function ownedConcat(chunks: readonly Uint8Array[], size: number): Buffer {
  const out = Buffer.allocUnsafeSlow(size)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.byteLength
  }
  return at === size ? out : out.subarray(0, at)
}

/** `body` itself when it owns its backing store, else a copy that does. */
export function ownedBytes(body: Uint8Array): Buffer {
  if (body.byteOffset === 0 && body.byteLength === body.buffer.byteLength) {
    return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, 0, body.byteLength)
  }
  return ownedConcat([body], body.byteLength)
}
