import { randomBytes } from 'node:crypto'

/**
 * X-Request-Id: a client's id is kept when it is 1–128 visible ASCII characters (0x21–0x7E);
 * anything else (absent, longer, spaces, control or non-ASCII bytes) is replaced by one strata
 * generates. The id then lives in the request's own headers, so the upstream request (which copies
 * them), every ESI fragment request and the access line all carry the same one.
 *
 * Generated ids are a per-process random prefix (one crypto call at startup) and a counter in
 * base 36: unique per request and across processes, and cheap (no crypto call per request, which
 * the hit path could not afford).
 */
export const REQUEST_ID_HEADER = 'x-request-id'
const MAX_LENGTH = 128
const VISIBLE_ASCII = /^[\x21-\x7e]+$/

const PREFIX = `${randomBytes(6).toString('base64url')}-`
let counter = 0

/** A new id, unique per request: `<12 random chars>-<counter in base 36>`. */
export function generateRequestId(): string {
  counter = counter === Number.MAX_SAFE_INTEGER ? 1 : counter + 1
  return PREFIX + counter.toString(36)
}

/** Whether a client's X-Request-Id is kept as it is. */
export function isValidRequestId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_LENGTH && VISIBLE_ASCII.test(value)
}

/**
 * The request's id: the client's when valid, else a generated one written into `headers` in its
 * place (a repeated header is an array, never valid). Idempotent: a second call returns the same id.
 */
export function ensureRequestId(headers: Record<string, string | string[] | undefined>): string {
  const given = headers[REQUEST_ID_HEADER]
  if (isValidRequestId(given)) return given
  const id = generateRequestId()
  headers[REQUEST_ID_HEADER] = id
  return id
}

/** The id as a JSON string: generated ids never need escaping; a client's may hold `"` or `\`. */
export function requestIdJson(id: string): string {
  return id.includes('"') || id.includes('\\') ? JSON.stringify(id) : `"${id}"`
}
