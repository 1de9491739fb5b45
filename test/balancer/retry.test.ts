import { describe, expect, it } from 'vitest'
import { shouldRetry, type RetryInput } from '../../src/balancer/index.js'

const base: RetryInput = { method: 'GET', attempt: 1, retries: 1, connectError: true, bodySent: false, retryOn: ['connect'] }

describe('shouldRetry', () => {
  it('retries an idempotent request after a connect error, up to `retries`', () => {
    expect(shouldRetry(base)).toBe(true)
    expect(shouldRetry({ ...base, attempt: 2 })).toBe(false)
    expect(shouldRetry({ ...base, retries: 3, attempt: 3 })).toBe(true)
    expect(shouldRetry({ ...base, retries: 0 })).toBe(false)
    for (const method of ['HEAD', 'OPTIONS', 'PUT', 'DELETE', 'get']) expect(shouldRetry({ ...base, method })).toBe(true)
  })

  it('retries 502/503/504 only when retryOn lists them, and only for idempotent methods', () => {
    const gw = { ...base, connectError: false, statusCode: 502 }
    expect(shouldRetry(gw)).toBe(false)
    expect(shouldRetry({ ...gw, retryOn: ['connect', '502'] })).toBe(true)
    expect(shouldRetry({ ...gw, statusCode: 503, retryOn: ['502'] })).toBe(false)
    expect(shouldRetry({ ...gw, statusCode: 503, retryOn: ['503'] })).toBe(true)
    expect(shouldRetry({ ...gw, statusCode: 500, retryOn: ['502', '503', '504'] })).toBe(false)
    expect(shouldRetry({ ...gw, method: 'POST', retryOn: ['502'] })).toBe(false)
    expect(shouldRetry({ ...gw, retryOn: ['502'] as const, statusCode: undefined })).toBe(false)
  })

  it('never retries a non-idempotent request once its body was sent', () => {
    expect(shouldRetry({ ...base, method: 'POST', bodySent: true })).toBe(false)
    expect(shouldRetry({ ...base, method: 'PATCH', bodySent: true })).toBe(false)
    // Refused before a byte went out: the server never saw it.
    expect(shouldRetry({ ...base, method: 'POST', bodySent: false })).toBe(true)
  })

  it('does not retry connect errors unless retryOn has "connect"', () => {
    expect(shouldRetry({ ...base, retryOn: ['502'] })).toBe(false)
  })
})
