import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { ERROR_CODES, StrataError } from '../../src/core/errors.js'

describe('error table', () => {
  it('has unique codes with HTTP statuses', () => {
    const codes = Object.keys(ERROR_CODES)
    expect(new Set(codes).size).toBe(codes.length)
    for (const [code, def] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^STRATA_[A-Z0-9_]+$/)
      expect(def.statusCode).toBeGreaterThanOrEqual(400)
      expect(def.statusCode).toBeLessThan(600)
    }
  })

  it('documents every code in the README', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    const missing = Object.keys(ERROR_CODES).filter((c) => !readme.includes(`\`${c}\``))
    expect(missing).toEqual([])
  })

  it('carries code, status and cause', () => {
    const cause = new Error('boom')
    const e = new StrataError('STRATA_UPSTREAM_TIMEOUT', undefined, { cause })
    expect(e.statusCode).toBe(504)
    expect(e.code).toBe('STRATA_UPSTREAM_TIMEOUT')
    expect(e.cause).toBe(cause)
    expect(e.message).toBe(ERROR_CODES.STRATA_UPSTREAM_TIMEOUT.message)
  })
})
