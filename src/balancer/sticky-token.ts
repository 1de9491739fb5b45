import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * The insert-mode sticky token: `1.<id>.<issuedAt>.<lastSeen>.<mac>`
 *
 * - `1` is the format version, so a later format can be told apart and rejected cleanly.
 * - `<id>` is the upstream id in base64url: an operator-chosen name, never an address, so the
 *   cookie reveals nothing about the internal network.
 * - `<issuedAt>` / `<lastSeen>` are epoch milliseconds in base36; they let `maxLifeMs` and
 *   `maxIdleMs` expire a session without any server-side state.
 * - `<mac>` is base64url(HMAC-SHA256(secret, everything before it)), compared in constant time.
 *
 * Every character is in base64url or `.`, so the token is a valid cookie-value (RFC 6265 §4.1.1)
 * without quoting.
 */
export interface StickyPayload {
  readonly id: string
  readonly issuedAt: number
  readonly lastSeen: number
}

const VERSION = '1'
const MAC_BYTES = 32
/** base64url length of a 32-byte MAC. */
const MAC_CHARS = 43
/** Tokens longer than this are junk; checked before any work so a huge cookie costs nothing. */
const MAX_TOKEN_CHARS = 512

export function encodeStickyToken(secret: string | Buffer, payload: StickyPayload): string {
  const body = `${VERSION}.${Buffer.from(payload.id, 'utf8').toString('base64url')}.${payload.issuedAt.toString(36)}.${payload.lastSeen.toString(36)}`
  return `${body}.${mac(secret, body).toString('base64url')}`
}

/** The payload of a token this secret signed, or undefined for anything else (tampered, foreign, junk). */
export function decodeStickyToken(secret: string | Buffer, token: string): StickyPayload | undefined {
  if (token.length > MAX_TOKEN_CHARS || token.length < MAC_CHARS + 8) return undefined
  if (token.charCodeAt(0) !== 49 /* '1' */ || token.charCodeAt(1) !== 46 /* '.' */) return undefined
  const macDot = token.length - MAC_CHARS - 1
  if (token.charCodeAt(macDot) !== 46) return undefined
  const body = token.slice(0, macDot)
  const given = Buffer.from(token.slice(macDot + 1), 'base64url')
  if (given.length !== MAC_BYTES || !timingSafeEqual(given, mac(secret, body))) return undefined
  // Signed by us, so the shape is ours; still parse defensively.
  const parts = body.split('.')
  if (parts.length !== 4) return undefined
  const id = Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')
  const issuedAt = parseInt(parts[2] ?? '', 36)
  const lastSeen = parseInt(parts[3] ?? '', 36)
  if (!id || !Number.isFinite(issuedAt) || !Number.isFinite(lastSeen)) return undefined
  return { id, issuedAt, lastSeen }
}

/** 32 random bytes: used when `sticky.secret` is not configured (cookies then die with the process). */
export function randomStickySecret(): Buffer {
  return randomBytes(32)
}

function mac(secret: string | Buffer, body: string): Buffer {
  return createHmac('sha256', secret).update(body).digest()
}
