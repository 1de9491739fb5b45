import { parseVarRef, type RequestVars, type VarRef } from './variables.js'

/**
 * ESI 1.0 §5 expressions (the `test` of `<esi:when>`), parsed once at compile time into a small
 * AST and evaluated per request by walking it: no eval, no regex on request data.
 *
 * Grammar (lowest precedence first; strata's reading of §5.1, which lists the operators without a
 * precedence table):
 *   or    := and ( '|' and )*              ('||' accepted as an alias)
 *   and   := not ( '&' not )*              ('&&' accepted as an alias)
 *   not   := '!' not | cmp                 ('!' qualifies a whole comparison: !a=='b' is !(a=='b'))
 *   cmp   := primary ( ('=='|'!='|'<'|'<='|'>'|'>=') primary )?
 *   primary := '(' or ')' | 'string' | number | $(VARIABLE)
 */

export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>='
export type Operand = { readonly t: 'str'; readonly v: string } | { readonly t: 'num'; readonly v: number } | { readonly t: 'var'; readonly ref: VarRef }
export type Expr =
  | { readonly t: 'or'; readonly a: Expr; readonly b: Expr }
  | { readonly t: 'and'; readonly a: Expr; readonly b: Expr }
  | { readonly t: 'not'; readonly e: Expr }
  | { readonly t: 'cmp'; readonly op: CompareOp; readonly a: Expr; readonly b: Expr }
  | { readonly t: 'val'; readonly v: Operand }

const MAX_NESTING = 64

export class ExpressionError extends Error {
  readonly position: number
  constructor(message: string, position: number) {
    super(`${message} at ${position}`)
    this.name = 'ExpressionError'
    this.position = position
  }
}

class Parser {
  readonly #s: string
  #i = 0
  #depth = 0
  constructor(s: string) {
    this.#s = s
  }

  parse(): Expr {
    const e = this.#or()
    this.#ws()
    if (this.#i < this.#s.length) throw new ExpressionError(`unexpected ${JSON.stringify(this.#s[this.#i])}`, this.#i)
    return e
  }

  #ws(): void {
    while (this.#i < this.#s.length) {
      const c = this.#s.charCodeAt(this.#i)
      if (c !== 32 && c !== 9 && c !== 10 && c !== 13) break
      this.#i++
    }
  }

  #peek(tok: string): boolean {
    this.#ws()
    return this.#s.startsWith(tok, this.#i)
  }

  #or(): Expr {
    let a = this.#and()
    while (this.#peek('|')) {
      this.#i += this.#s.startsWith('||', this.#i) ? 2 : 1
      a = { t: 'or', a, b: this.#and() }
    }
    return a
  }

  #and(): Expr {
    let a = this.#not()
    while (this.#peek('&')) {
      this.#i += this.#s.startsWith('&&', this.#i) ? 2 : 1
      a = { t: 'and', a, b: this.#not() }
    }
    return a
  }

  #not(): Expr {
    if (this.#peek('!') && !this.#s.startsWith('!=', this.#i)) {
      this.#i++
      if (++this.#depth > MAX_NESTING) throw new ExpressionError('expression nested too deeply', this.#i)
      const e = this.#not()
      this.#depth--
      return { t: 'not', e }
    }
    return this.#cmp()
  }

  #cmp(): Expr {
    const a = this.#primary()
    this.#ws()
    const s = this.#s
    const i = this.#i
    let op: CompareOp | undefined
    if (s.startsWith('==', i)) op = '=='
    else if (s.startsWith('!=', i)) op = '!='
    else if (s.startsWith('<=', i)) op = '<='
    else if (s.startsWith('>=', i)) op = '>='
    else if (s[i] === '<') op = '<'
    else if (s[i] === '>') op = '>'
    if (!op) return a
    this.#i += op.length
    return { t: 'cmp', op, a, b: this.#primary() }
  }

  #primary(): Expr {
    this.#ws()
    const s = this.#s
    const i = this.#i
    const c = s[i]
    if (c === undefined) throw new ExpressionError('unexpected end of expression', i)
    if (c === '(') {
      if (++this.#depth > MAX_NESTING) throw new ExpressionError('expression nested too deeply', i)
      this.#i++
      const e = this.#or()
      if (!this.#peek(')')) throw new ExpressionError('missing )', this.#i)
      this.#i++
      this.#depth--
      return e
    }
    if (c === "'") {
      // A string literal; \' and \\ escape (a common extension; ESI 1.0 defines no escapes).
      let out = ''
      let j = i + 1
      for (;;) {
        if (j >= s.length) throw new ExpressionError('unterminated string', i)
        const ch = s[j]!
        if (ch === '\\' && j + 1 < s.length) {
          out += s[j + 1]
          j += 2
          continue
        }
        if (ch === "'") break
        out += ch
        j++
      }
      this.#i = j + 1
      return { t: 'val', v: { t: 'str', v: out } }
    }
    if (c === '$') {
      const parsed = parseVarRef(s, i)
      if (!parsed) throw new ExpressionError('malformed variable', i)
      this.#i = parsed.end
      return { t: 'val', v: { t: 'var', ref: parsed.ref } }
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      let j = c === '-' ? i + 1 : i
      const digits = j
      while (j < s.length && s[j]! >= '0' && s[j]! <= '9') j++
      if (s[j] === '.') {
        j++
        while (j < s.length && s[j]! >= '0' && s[j]! <= '9') j++
      }
      if (j === digits) throw new ExpressionError('malformed number', i)
      this.#i = j
      return { t: 'val', v: { t: 'num', v: Number(s.slice(i, j)) } }
    }
    throw new ExpressionError(`unexpected ${JSON.stringify(c)}`, i)
  }
}

/** Parses an ESI expression; throws ExpressionError on malformed input (compile turns it into a warning). */
export function parseExpression(src: string): Expr {
  return new Parser(src).parse()
}

/** Every variable an expression reads (for compile-time warnings about unknown variables). */
export function expressionVars(e: Expr, out: VarRef[] = []): VarRef[] {
  switch (e.t) {
    case 'or':
    case 'and':
    case 'cmp':
      expressionVars(e.a, out)
      expressionVars(e.b, out)
      break
    case 'not':
      expressionVars(e.e, out)
      break
    case 'val':
      if (e.v.t === 'var') out.push(e.v.ref)
  }
  return out
}

type Value = string | number | boolean | undefined

function valueOf(e: Expr, vars: RequestVars): Value {
  if (e.t !== 'val') return evaluate(e, vars)
  const v = e.v
  if (v.t === 'str' || v.t === 'num') return v.v
  const raw = vars.get(v.ref)
  return raw === undefined || raw === '' ? v.ref.fallback : raw
}

/** Strict decimal number check (no hex, no exponent, no whitespace), linear. */
function asNumber(v: string | number): number | undefined {
  if (typeof v === 'number') return v
  let i = v.startsWith('-') ? 1 : 0
  const start = i
  while (i < v.length && v.charCodeAt(i) >= 48 && v.charCodeAt(i) <= 57) i++
  if (i < v.length && v[i] === '.') {
    i++
    while (i < v.length && v.charCodeAt(i) >= 48 && v.charCodeAt(i) <= 57) i++
  }
  return i === v.length && i > start && v !== '-.' ? Number(v) : undefined
}

function truthy(v: Value): boolean {
  if (typeof v === 'boolean') return v
  if (typeof v === 'number') return v !== 0
  return v !== undefined && v !== ''
}

/**
 * Evaluates an expression for one request. ESI 1.0 §5: when both operands are numeric they
 * compare as numbers, otherwise as strings; a comparison with an empty or undefined operand is
 * false (for every operator, `!=` included — use a `|'default'` to compare a missing value).
 */
export function evaluate(e: Expr, vars: RequestVars): boolean {
  switch (e.t) {
    case 'or':
      return evaluate(e.a, vars) || evaluate(e.b, vars)
    case 'and':
      return evaluate(e.a, vars) && evaluate(e.b, vars)
    case 'not':
      return !evaluate(e.e, vars)
    case 'val':
      return truthy(valueOf(e, vars))
    case 'cmp': {
      let a = valueOf(e.a, vars)
      let b = valueOf(e.b, vars)
      if (a === undefined || b === undefined || a === '' || b === '') return false
      if (typeof a === 'boolean') a = String(a)
      if (typeof b === 'boolean') b = String(b)
      const na = asNumber(a)
      const nb = asNumber(b)
      let c: number
      if (na !== undefined && nb !== undefined) c = na < nb ? -1 : na > nb ? 1 : 0
      else {
        const sa = String(a)
        const sb = String(b)
        c = sa < sb ? -1 : sa > sb ? 1 : 0
      }
      switch (e.op) {
        case '==': return c === 0
        case '!=': return c !== 0
        case '<': return c < 0
        case '<=': return c <= 0
        case '>': return c > 0
        case '>=': return c >= 0
      }
    }
  }
}
