import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * Constant-time bearer-token check. Both sides are hashed first so their lengths match and the
 * comparison time says nothing about the token's length or prefix.
 */
export function createTokenCheck(token: string): (authorization: string | undefined) => boolean {
  const expected = createHash('sha256').update(token).digest()
  return (authorization) => {
    if (typeof authorization !== 'string') return false
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization)
    if (!m) return false
    const given = createHash('sha256').update(m[1]!).digest()
    return timingSafeEqual(given, expected)
  }
}
