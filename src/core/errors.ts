/**
 * One error hierarchy with stable codes (the fastify / bentocache habit).
 * Every code lives in ERROR_CODES with its HTTP status and a one-line description; a test keeps
 * the table unique and documented in the README.
 */
export const ERROR_CODES = {
  STRATA_CONFIG_INVALID: { statusCode: 500, message: 'the configuration is invalid' },
  STRATA_UPSTREAM_CONNECT: { statusCode: 502, message: 'could not connect to the upstream' },
  STRATA_UPSTREAM_RESPONSE: { statusCode: 502, message: 'the upstream sent an invalid response' },
  STRATA_UPSTREAM_TIMEOUT: { statusCode: 504, message: 'the upstream did not answer in time' },
  STRATA_NO_UPSTREAM: { statusCode: 503, message: 'no healthy upstream is available' },
  STRATA_BAD_REQUEST: { statusCode: 400, message: 'the request is malformed' },
  STRATA_ADMIN_UNAUTHORIZED: { statusCode: 401, message: 'a valid admin bearer token is required' },
  STRATA_ADMIN_BAD_BODY: { statusCode: 400, message: 'the admin request body is invalid' },
  STRATA_ADMIN_NOT_FOUND: { statusCode: 404, message: 'no such admin resource' },
  STRATA_ADMIN_CONFLICT: { statusCode: 409, message: 'the admin request conflicts with current state' },
  STRATA_ESI_FRAGMENT_FAILED: { statusCode: 502, message: 'an ESI fragment failed and esi.onError is "fail"' },
  STRATA_DATA_CACHE_OPTIONS: { statusCode: 500, message: 'invalid data cache options' },
  STRATA_DATA_CACHE_TIMEOUT: { statusCode: 504, message: 'the data cache loader timed out with nothing to serve' },
  STRATA_REDIS_UNAVAILABLE: { statusCode: 503, message: 'redis is unavailable' },
  STRATA_WORKER_UNAVAILABLE: { statusCode: 503, message: 'a worker process did not answer the admin request in time' },
} as const satisfies Record<string, { statusCode: number; message: string }>

export type ErrorCode = keyof typeof ERROR_CODES

export class StrataError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  /** Seconds for a Retry-After header (503s). */
  readonly retryAfter: number | undefined

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; retryAfter?: number }) {
    super(message ?? ERROR_CODES[code].message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'StrataError'
    this.code = code
    this.statusCode = ERROR_CODES[code].statusCode
    this.retryAfter = options?.retryAfter
  }
}

export function isStrataError(err: unknown, code?: ErrorCode): err is StrataError {
  return err instanceof StrataError && (code === undefined || err.code === code)
}
