import { StrataError } from './errors.js'

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/

/**
 * Parses a duration given as a number of milliseconds or a string such as '250ms', '10s', '5m',
 * '1h', '2d'. A bare numeric string is milliseconds. Throws a StrataError naming `field`.
 */
export function parseDuration(value: number | string, field = 'duration'): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) {
      throw new StrataError('STRATA_DATA_CACHE_OPTIONS', `${field}: must be a non-negative number of ms or a duration string`)
    }
    return value
  }
  const m = DURATION_RE.exec(value)
  if (!m) throw new StrataError('STRATA_DATA_CACHE_OPTIONS', `${field}: "${value}" is not a duration (try 500, "10s", "5m", "1h")`)
  return Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']!)
}
