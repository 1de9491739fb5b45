import { describe, expect, it } from 'vitest'
import { pino } from 'pino'
import { createAccessLog, twoDecimals } from '../../src/observability/access-log.js'

describe('access log line', () => {
  it('prints durations with two decimals from integer parts', () => {
    expect([0, 0.001, 0.05, 0.123, 0.999, 1.5, 12.345, 1234.5].map(twoDecimals)).toEqual(['0.00', '0.00', '0.05', '0.12', '1.00', '1.50', '12.35', '1234.50'])
    expect(twoDecimals(-1)).toBe('0')
    expect(twoDecimals(Number.NaN)).toBe('0')
  })

  it('is one valid JSON object per line, escaping what the client sent', () => {
    const lines: string[] = []
    const log = createAccessLog(pino({ level: 'info' }), { write: (s: string) => lines.push(s) })!
    log({ method: 'GET', url: '/a?q="x"\\\u0001', status: 200, ms: 0.05, upstream: undefined, cache: 'HIT', id: 'abc-1' })
    log({ method: 'PROPFIND', url: '/b', status: 502, ms: 12.3456, upstream: 'b1', cache: 'PASS', id: 'with"quote\\and-backslash' })
    log({ method: 'M"X', url: '/c', status: 400, ms: 1, upstream: undefined, cache: 'PASS', id: 'x' })
    expect(lines.every((l) => l.endsWith('\n'))).toBe(true)
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(parsed[0]).toMatchObject({ level: 30, pid: process.pid, method: 'GET', url: '/a?q="x"\\\u0001', status: 200, ms: 0.05, cache: 'HIT', reqId: 'abc-1', msg: 'request' })
    expect(parsed[0]).not.toHaveProperty('upstream')
    expect(parsed[1]).toMatchObject({ method: 'PROPFIND', ms: 12.35, upstream: 'b1', reqId: 'with"quote\\and-backslash' })
    expect(parsed[2]).toMatchObject({ method: 'M"X' })
    expect(typeof parsed[0]!['time']).toBe('number')
  })
})
