import type { ServerResponse } from 'node:http'
import { ERROR_CODES, type ErrorCode, type StrataError } from '../core/errors.js'

/**
 * Writing a response whose bytes are all in memory straight to Node's response: the head and the
 * body leave in one corked write. Used by the fast path before fastify and by hijacked replies.
 */

/** A stored response (or none, for HEAD and 304): sent with its length. */
export function writeStored(res: ServerResponse, status: number, headers: Record<string, string | string[]>, body: Buffer | null): void {
  if (body !== null && headers['content-length'] === undefined) headers['content-length'] = String(body.length)
  res.writeHead(status, headers)
  if (body === null) res.end()
  else res.end(body)
}

/**
 * An assembled ESI page: chunked without a Content-Length like every assembled page, as one chunk
 * (write + end in one tick go out as one socket write).
 */
export function writeChunkedPage(res: ServerResponse, status: number, headers: Record<string, string | string[]> | (string | string[])[], page: Buffer): void {
  res.writeHead(status, headers)
  if (page.length > 0) res.write(page)
  res.end()
}

/**
 * strata's own error answer: a JSON body with the stable code and the error table's generic
 * sentence, Retry-After when no upstream is up. The error's own message (upstream ids, undici's
 * socket errors, internal details) goes to the log only, never to the client.
 */
export function errorResponse(e: StrataError): { status: number; headers: Record<string, string>; body: string } {
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' }
  if (e.code === 'STRATA_NO_UPSTREAM') headers['retry-after'] = String(e.retryAfter ?? 1)
  return { status: e.statusCode, headers, body: ERROR_BODIES[e.code] }
}

/** Each code's answer body, built once from the one error table. */
const ERROR_BODIES = Object.fromEntries(
  Object.entries(ERROR_CODES).map(([code, { message }]) => [code, `{"error":"${code}","message":${JSON.stringify(message)}}\n`]),
) as Record<ErrorCode, string>
