/**
 * Purge commands: validation (a bad body is a StrataError STRATA_ADMIN_BAD_BODY naming the problem)
 * and compilation into store selectors. Regex patterns are length-limited and restricted to a
 * subset that cannot backtrack catastrophically.
 */
import { StrataError } from '../core/errors.js'
import { canonicalAbsolute, canonicalTarget, keyTarget, type KeyFunction } from './key.js'
import type { PurgeSelector } from './store.js'

export const MAX_PATTERN_LENGTH = 256
export const MAX_PURGE_ITEMS = 1000

const bad = (message: string) => new StrataError('STRATA_ADMIN_BAD_BODY', message)

/**
 * Rejects regex features that can make matching exponential: backreferences, lookaround, and a
 * quantified group that itself contains a quantifier or an alternation (`(a+)+`, `(a|ab)*`).
 * Returns the reason, or undefined when the pattern is in the safe subset.
 */
export function unsafeRegexReason(pattern: string): string | undefined {
  const stack: { quant: boolean; alt: boolean }[] = [{ quant: false, alt: false }]
  const isQuant = (i: number): boolean => {
    const c = pattern[i]
    if (c === '*' || c === '+') return true
    if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i))
      if (!m) return false
      // {n} repeats a fixed number of times; only a range can backtrack.
      return m[2] !== undefined && (m[3] === '' || Number(m[3]) > Number(m[1]))
    }
    return false
  }
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === '\\') {
      const n = pattern[i + 1]
      if (n !== undefined && /[1-9k]/.test(n)) return 'backreferences are not allowed'
      i++
      continue
    }
    if (c === '[') {
      // Skip a character class.
      for (i++; i < pattern.length && pattern[i] !== ']'; i++) if (pattern[i] === '\\') i++
      continue
    }
    if (c === '(') {
      if (/^\(\?<?[=!]/.test(pattern.slice(i))) return 'lookaround is not allowed'
      stack.push({ quant: false, alt: false })
      continue
    }
    if (c === '|') {
      stack[stack.length - 1]!.alt = true
      continue
    }
    if (c === ')') {
      const f = stack.pop()
      if (!f || stack.length === 0) return 'unbalanced parenthesis'
      const quantified = isQuant(i + 1)
      if (quantified && (f.quant || f.alt)) return 'nested quantifiers (a quantified group containing a quantifier or alternation) can backtrack catastrophically'
      if (f.quant || quantified) stack[stack.length - 1]!.quant = true
      continue
    }
    if (isQuant(i)) stack[stack.length - 1]!.quant = true
  }
  return undefined
}

export interface CompiledPurge {
  selectors: PurgeSelector[]
  soft: boolean
}

const KINDS = ['urls', 'prefix', 'pattern', 'tags', 'all'] as const

function stringArray(v: unknown, name: string): string[] {
  if (!Array.isArray(v) || v.length === 0) throw bad(`"${name}" must be a non-empty array of strings`)
  if (v.length > MAX_PURGE_ITEMS) throw bad(`"${name}" has more than ${MAX_PURGE_ITEMS} items`)
  for (const s of v) if (typeof s !== 'string' || s.length === 0) throw bad(`"${name}" must contain only non-empty strings`)
  return v as string[]
}

function parseAbsolute(s: string, what: string): URL {
  let u: URL
  try {
    u = new URL(s)
  } catch {
    throw bad(`${what} "${s}" is neither a path starting with "/" nor an absolute http(s) URL`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw bad(`${what} "${s}" must use http or https`)
  return u
}

/** Validates a purge body (already JSON-parsed) and compiles it into selectors. */
export function compilePurge(cmd: unknown, keyFn: KeyFunction): CompiledPurge {
  if (typeof cmd !== 'object' || cmd === null || Array.isArray(cmd)) throw bad('the purge body must be a JSON object')
  const body = cmd as Record<string, unknown>
  for (const k of Object.keys(body)) {
    if (k !== 'soft' && !(KINDS as readonly string[]).includes(k)) throw bad(`unknown purge property "${k}"`)
  }
  const kinds = KINDS.filter((k) => body[k] !== undefined)
  if (kinds.length !== 1) throw bad(`the purge body needs exactly one of ${KINDS.map((k) => `"${k}"`).join(', ')}`)
  if (body['soft'] !== undefined && typeof body['soft'] !== 'boolean') throw bad('"soft" must be a boolean')
  const soft = body['soft'] === true
  const kind = kinds[0]!
  const v = body[kind]
  switch (kind) {
    case 'urls': {
      const exact: string[] = []
      const anyHost = new Set<string>()
      for (const s of stringArray(v, 'urls')) {
        // Canonicalised as a request target is (see canonicalTarget), so "/a/./b" or "x:80" purge
        // what a request for them stored.
        if (s.startsWith('/')) {
          // A bare path means that path on any host: normalise it like a key's target.
          anyHost.add(keyTarget(keyFn('http', 'h', canonicalTarget(s))))
        } else {
          parseAbsolute(s, 'url')
          const c = canonicalAbsolute(s)
          if (c === undefined) throw bad(`url "${s}" is neither a path starting with "/" nor an absolute http(s) URL`)
          exact.push(keyFn(c.scheme, c.host, c.target))
        }
      }
      const selectors: PurgeSelector[] = []
      if (exact.length > 0) selectors.push({ kind: 'keys', keys: exact })
      if (anyHost.size > 0) selectors.push({ kind: 'match', match: (k) => anyHost.has(keyTarget(k)) })
      return { selectors, soft }
    }
    case 'prefix': {
      if (typeof v !== 'string' || v.length === 0) throw bad('"prefix" must be a non-empty string')
      if (v.startsWith('/')) {
        const target = canonicalTarget(v)
        return { selectors: [{ kind: 'match', match: (k) => keyTarget(k).startsWith(target) }], soft }
      }
      parseAbsolute(v, 'prefix')
      const c = canonicalAbsolute(v)
      if (c === undefined) throw bad(`prefix "${v}" is neither a path starting with "/" nor an absolute http(s) URL`)
      const p = `${c.scheme}://${c.host}${c.target}`
      return { selectors: [{ kind: 'match', match: (k) => k.startsWith(p) }], soft }
    }
    case 'pattern': {
      if (typeof v !== 'string' || v.length === 0) throw bad('"pattern" must be a non-empty string')
      if (v.length > MAX_PATTERN_LENGTH) throw bad(`"pattern" is longer than ${MAX_PATTERN_LENGTH} characters`)
      const reason = unsafeRegexReason(v)
      if (reason) throw bad(`"pattern" is rejected: ${reason}`)
      let re: RegExp
      try {
        re = new RegExp(v)
      } catch (err) {
        throw bad(`"pattern" is not a valid regular expression: ${(err as Error).message}`)
      }
      // Matched against the path and query of each cached URL.
      return { selectors: [{ kind: 'match', match: (k) => re.test(keyTarget(k)) }], soft }
    }
    case 'tags': {
      const tags = stringArray(v, 'tags')
      for (const t of tags) if (/\s/.test(t)) throw bad(`tag "${t}" contains whitespace`)
      return { selectors: [{ kind: 'tags', tags: new Set(tags) }], soft }
    }
    case 'all': {
      if (v !== true) throw bad('"all" must be true')
      return { selectors: [{ kind: 'all' }], soft }
    }
  }
}

