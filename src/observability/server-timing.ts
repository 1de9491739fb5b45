import { twoDecimals } from './access-log.js'

/**
 * The Server-Timing response header (W3C Server Timing; `"serverTiming": true`): where a
 * response's time went, in milliseconds with two decimals: `cache` (the cache lookup, including
 * L2), `upstream` (waiting for the origin's response head) and `esi` (assembling the page up to
 * its first byte). A part that did not happen is left out.
 */
export function serverTiming(parts: { cache?: number; upstream?: number; esi?: number }): string {
  let out = ''
  if (parts.cache !== undefined) out = `cache;dur=${twoDecimals(parts.cache)}`
  if (parts.upstream !== undefined) out += `${out === '' ? '' : ', '}upstream;dur=${twoDecimals(parts.upstream)}`
  if (parts.esi !== undefined) out += `${out === '' ? '' : ', '}esi;dur=${twoDecimals(parts.esi)}`
  return out
}

/** Appends one more metric to a Server-Timing value built so far. */
export function appendServerTiming(value: string | undefined, name: 'cache' | 'upstream' | 'esi', ms: number): string {
  const part = `${name};dur=${twoDecimals(ms)}`
  return value === undefined || value === '' ? part : `${value}, ${part}`
}
