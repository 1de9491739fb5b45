import type { EsiConfig } from '../config/schema.js'
import type { Headers } from '../core/headers.js'

/**
 * When is a response an ESI template? (W3C Edge Architecture Specification 1.0, §3: the
 * Surrogate-Capability request header and the Surrogate-Control response header.)
 */

/** strata's device token: sent upstream as `Surrogate-Capability: strata="ESI/1.0"`. */
export const SURROGATE_DEVICE = 'strata'
export const SURROGATE_CAPABILITY = `${SURROGATE_DEVICE}="ESI/1.0"`

export interface SurrogateDirective {
  readonly name: string
  readonly value: string | undefined
  /** The device token after `;`, when the directive is targeted (`max-age=30;strata`). */
  readonly target: string | undefined
}

/** Splits on `sep` outside double quotes. */
function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = []
  let quoted = false
  let start = 0
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === '"') quoted = !quoted
    else if (c === '\\' && quoted) i++
    else if (c === sep && !quoted) {
      out.push(s.slice(start, i))
      start = i + 1
    }
  }
  out.push(s.slice(start))
  return out
}

function unquote(v: string): string {
  v = v.trim()
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v
}

/**
 * Parses a Surrogate-Control field value (Edge Architecture §3.3): a comma-separated list of
 * `directive[=value][;device-token]`, values possibly quoted.
 */
export function parseSurrogateControl(value: string | string[] | undefined): SurrogateDirective[] {
  if (value === undefined) return []
  const joined = Array.isArray(value) ? value.join(',') : value
  const out: SurrogateDirective[] = []
  for (const part of splitOutsideQuotes(joined, ',')) {
    if (!part.trim()) continue
    const pieces = splitOutsideQuotes(part, ';')
    const main = pieces[0]!
    const target = pieces.length > 1 ? pieces[pieces.length - 1]!.trim().toLowerCase() || undefined : undefined
    const eq = main.indexOf('=')
    const name = (eq < 0 ? main : main.slice(0, eq)).trim().toLowerCase()
    if (!name) continue
    out.push({ name, value: eq < 0 ? undefined : unquote(main.slice(eq + 1)), target })
  }
  return out
}

/**
 * True when Surrogate-Control has a `content` directive listing the `ESI/1.0` capability, either
 * untargeted or targeted at strata (`content="ESI/1.0";strata`). A directive targeted at another
 * device is not for us. `content` may list several capabilities: `content="ESI/1.0 ESI-INV/1.0"`.
 */
export function surrogateWantsEsi(surrogateControl: string | string[] | undefined): boolean {
  for (const d of parseSurrogateControl(surrogateControl)) {
    if (d.name !== 'content' || d.value === undefined) continue
    if (d.target !== undefined && d.target !== SURROGATE_DEVICE) continue
    if (d.value.split(/[\s,]+/).some((cap) => cap.toUpperCase() === 'ESI/1.0')) return true
  }
  return false
}

/**
 * Should this upstream response be processed as an ESI template? `esi.enabled` off → never;
 * otherwise when Surrogate-Control asks for ESI/1.0 or the path (without query) starts with one of
 * `esi.paths`. An unmarked response is passed through untouched even if it contains `<esi:`
 * text: user content must never be able to inject ESI.
 */
export function isEsiResponse(headers: Headers, path: string, config: Pick<EsiConfig, 'enabled' | 'paths'>): boolean {
  if (!config.enabled) return false
  if (surrogateWantsEsi(headers['surrogate-control'])) return true
  if (config.paths.length === 0) return false
  const q = path.indexOf('?')
  const p = q < 0 ? path : path.slice(0, q)
  return config.paths.some((prefix) => p.startsWith(prefix))
}
