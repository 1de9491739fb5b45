/**
 * A fast, allocation-free 32-bit string hash for the consistent-hash ring and `hashOn` keys.
 * FNV-1a over UTF-16 code units, then murmur3's fmix32 finalizer: FNV alone clusters short,
 * similar keys ("10.0.0.1", "10.0.0.2") on the ring; the finalizer spreads them (avalanche).
 * Not a security primitive: keys are client-controlled, and the worst a client can do is choose
 * its own server.
 */
export function hash32(s: string, start = 0, end = s.length): number {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return fmix32(h)
}

/** murmur3 fmix32: every input bit affects every output bit. */
export function fmix32(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
