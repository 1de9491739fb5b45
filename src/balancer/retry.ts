/**
 * Retry eligibility, as a pure function so the proxy's retry loop stays a loop.
 *
 * RFC 9110 §9.2.2: idempotent methods may be repeated by a client (or an intermediary) when the
 * connection fails before the response arrives. A non-idempotent request (POST, PATCH, …) may
 * only be re-sent when the first server certainly never saw it: a connect error before any byte of
 * the body went out. A 502/503/504 from a server means it did see it, so those never retry a
 * non-idempotent request.
 */

/** RFC 9110 §9.2.2 idempotent methods (safe methods plus PUT and DELETE). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

export type RetryOn = 'connect' | '502' | '503' | '504'

export interface RetryInput {
  /** Request method (any case). */
  readonly method: string
  /** The attempt that just failed, 1-based (the first try is attempt 1). */
  readonly attempt: number
  /** `balancer.retries`: how many extra attempts are allowed after the first. */
  readonly retries: number
  /** The attempt failed to connect (refused, reset before a response, connect timeout). */
  readonly connectError: boolean
  /** Status the upstream answered with, when it answered. */
  readonly statusCode?: number | undefined
  /** Whether any byte of the request body was written to the upstream. */
  readonly bodySent: boolean
  /** `balancer.retryOn`. */
  readonly retryOn: readonly RetryOn[]
}

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method) || IDEMPOTENT.has(method.toUpperCase())
}

export function shouldRetry(input: RetryInput): boolean {
  if (input.attempt > input.retries) return false
  const idempotent = isIdempotent(input.method)
  if (input.connectError) {
    if (!input.retryOn.includes('connect')) return false
    return idempotent || !input.bodySent
  }
  if (!idempotent || input.statusCode === undefined) return false
  const code = input.statusCode
  return (
    (code === 502 && input.retryOn.includes('502')) ||
    (code === 503 && input.retryOn.includes('503')) ||
    (code === 504 && input.retryOn.includes('504'))
  )
}
