import type { Logger } from '../observability/logger.js'
import { silentLogger } from '../observability/logger.js'
import { ExpressionError, expressionVars, parseExpression, type Expr } from './expression.js'
import { NO_ESI, type EsiInclude, type EsiNode, type EsiProgram, type EsiWarning } from './program.js'
import { parseInterpolated, type Interpolated, type VarRef } from './variables.js'

/**
 * Template → program. A purpose-built scanner that only looks for `<esi:`, `</esi:`, `<!--esi`
 * (and `-->` while inside an ESI comment) with Buffer.indexOf; everything else is opaque bytes.
 *
 * Why not htmlparser2: in HTML mode it treats <script>/<style> content as raw text, so ESI tags
 * there would be missed, and templates need not be HTML at all (JSON, XML). ESI processors
 * (Varnish, Akamai) see tags everywhere in a marked template, including inside <script>, <style>
 * and ordinary HTML comments; strata does the same.
 *
 * The whole template is compiled at once (templates are stored whole in the page cache), so there
 * are no chunk boundaries to get wrong; the tests instead check that compile never throws and never
 * lets ESI markup through on random input.
 *
 * Malformed markup has defined output (documented in docs/esi.md) and yields warnings:
 * - unknown `esi:` element: removed with its content up to the matching close tag; if it is never
 *   closed, only the tag is removed;
 * - an element left open when its parent closes or the template ends is closed there;
 * - a stray close tag is removed; `</esi:x>` never closes across an enclosing `<!--esi`;
 * - a tag without `>` removes the rest of the template; `<esi:` not followed by a name is removed;
 * - `<esi:remove>` without its close removes the rest of the template;
 * - attempt/except outside try and when/otherwise outside choose are removed with their content;
 * - text or elements directly inside try/choose (other than whitespace) are removed.
 */

const OPEN = Buffer.from('<esi:')
const CLOSE = Buffer.from('</esi:')
const COMMENT_OPEN = Buffer.from('<!--esi')
const COMMENT_CLOSE = Buffer.from('-->')
const REMOVE_CLOSE = Buffer.from('</esi:remove')

/**
 * Deepest element nesting compiled. Real templates nest a few levels; past this the rest of the
 * template is removed (warning `too-deep`). The bound keeps compile linear in the template size:
 * close-tag matching and the comment lookup walk the open elements.
 */
export const MAX_NESTING = 64

type FrameKind = 'root' | 'vars' | 'esi-comment' | 'try' | 'attempt' | 'except' | 'choose' | 'when' | 'otherwise' | 'drop'

interface Frame {
  readonly kind: FrameKind
  /** Element name for close-tag matching ('' for root and `<!--esi`). */
  readonly name: string
  readonly offset: number
  readonly inVars: boolean
  children: EsiNode[]
  // try
  attempt?: EsiNode[] | null
  except?: EsiNode[] | null
  // choose
  whens?: { test: Expr | null; body: EsiNode[] }[]
  otherwise?: EsiNode[] | null
  // when
  test?: Expr | null
}

export interface CompileOptions {
  logger?: Logger
}

const isWs = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 12
const isNameByte = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 45

/** Decodes the XML predefined entities (and numeric references) in an attribute value. */
function decodeEntities(s: string): string {
  if (!s.includes('&')) return s
  let out = ''
  let i = 0
  while (i < s.length) {
    const amp = s.indexOf('&', i)
    if (amp < 0) break
    out += s.slice(i, amp)
    const semi = s.indexOf(';', amp + 1)
    const ent = semi > amp && semi - amp <= 10 ? s.slice(amp + 1, semi) : ''
    let rep: string | undefined
    if (ent === 'amp') rep = '&'
    else if (ent === 'lt') rep = '<'
    else if (ent === 'gt') rep = '>'
    else if (ent === 'quot') rep = '"'
    else if (ent === 'apos') rep = "'"
    else if (ent.startsWith('#')) {
      const hex = ent[1] === 'x' || ent[1] === 'X'
      const digits = ent.slice(hex ? 2 : 1)
      const n = digits && /^[0-9a-fA-F]{1,6}$/.test(digits) ? Number.parseInt(digits, hex ? 16 : 10) : NaN
      if (Number.isInteger(n) && n > 0 && n <= 0x10ffff && (hex || /^[0-9]+$/.test(digits))) rep = String.fromCodePoint(n)
    }
    if (rep === undefined) {
      out += '&'
      i = amp + 1
    } else {
      out += rep
      i = semi + 1
    }
  }
  return out + s.slice(i)
}

class Compiler {
  readonly #buf: Buffer
  readonly #warnings: EsiWarning[] = []
  readonly #stack: Frame[]
  #includes = 0
  #usesVariables = false
  #sawEsi = false
  /** Cached next positions of each needle (-1: none left), recomputed only when passed. */
  #next = [-2, -2, -2, -2]

  constructor(buf: Buffer) {
    this.#buf = buf
    this.#stack = [{ kind: 'root', name: '', offset: 0, inVars: false, children: [] }]
  }

  #warn(code: string, message: string, offset: number): void {
    this.#warnings.push({ code, message, offset })
  }

  #find(which: number, needle: Buffer, pos: number): number {
    const cached = this.#next[which]!
    if (cached === -1) return -1
    if (cached >= pos) return cached
    const found = this.#buf.indexOf(needle, pos)
    this.#next[which] = found
    return found
  }

  get #top(): Frame {
    return this.#stack[this.#stack.length - 1]!
  }

  /** At the nesting bound: warns (the caller then drops the rest of the template). */
  #tooDeep(at: number): boolean {
    if (this.#stack.length <= MAX_NESTING) return false
    this.#warn('too-deep', `ESI elements nested deeper than ${MAX_NESTING}; the rest of the template is removed`, at)
    return true
  }

  #commentDepth(): number {
    for (let i = this.#stack.length - 1; i > 0; i--) if (this.#stack[i]!.kind === 'esi-comment') return i
    return -1
  }

  run(): EsiProgram {
    const buf = this.#buf
    const len = buf.length
    let pos = 0
    let textStart = 0
    for (;;) {
      const inComment = this.#commentDepth() > 0
      let m = len
      let kind = -1
      const o = this.#find(0, OPEN, pos)
      if (o >= 0 && o < m) (m = o), (kind = 0)
      const c = this.#find(1, CLOSE, pos)
      if (c >= 0 && c < m) (m = c), (kind = 1)
      const co = this.#find(2, COMMENT_OPEN, pos)
      if (co >= 0 && co < m) (m = co), (kind = 2)
      if (inComment) {
        const cc = this.#find(3, COMMENT_CLOSE, pos)
        if (cc >= 0 && cc < m) (m = cc), (kind = 3)
      }
      if (kind < 0) {
        this.#text(textStart, len)
        break
      }
      if (kind === 2) {
        // `<!--esi` opens an ESI comment (ESI 1.0 §3.7) unless it continues a longer word:
        // `<!--esifoo` and `<!--esi-x` are ordinary comments; `<!--esi-->` is an empty ESI comment.
        const after = m + COMMENT_OPEN.length
        const next = buf[after]
        const isEsiComment =
          next === undefined || !isNameByte(next) || (next === 45 && buf[after + 1] === 45 && buf[after + 2] === 62)
        if (!isEsiComment) {
          pos = after
          continue
        }
        this.#text(textStart, m)
        this.#sawEsi = true
        if (this.#tooDeep(m)) {
          pos = textStart = len
          continue
        }
        this.#stack.push({ kind: 'esi-comment', name: '', offset: m, inVars: this.#top.inVars, children: [] })
        pos = textStart = after
        continue
      }
      this.#text(textStart, m)
      this.#sawEsi = true
      if (kind === 3) {
        this.#closeTo(this.#commentDepth())
        pos = textStart = m + COMMENT_CLOSE.length
      } else if (kind === 1) {
        pos = textStart = this.#closeTag(m)
      } else {
        pos = textStart = this.#openTag(m)
      }
    }
    while (this.#stack.length > 1) {
      const f = this.#top
      this.#warn('unclosed-element', f.kind === 'esi-comment' ? '<!--esi without -->' : `<esi:${f.name}> is never closed`, f.offset)
      this.#pop(true)
    }
    if (!this.#sawEsi) return NO_ESI
    return {
      hasEsi: true,
      nodes: mergeText(this.#stack[0]!.children),
      warnings: this.#warnings,
      includeCount: this.#includes,
      usesVariables: this.#usesVariables,
    }
  }

  /** Adds a node to the current frame; try and choose only hold their own branches. */
  #add(node: EsiNode, offset: number): void {
    const top = this.#top
    if (top.kind === 'try' || top.kind === 'choose') {
      if (node.type === 'text' && node.bytes.every(isWs)) return
      this.#warn('misplaced-content', `content directly inside <esi:${top.name}> is removed`, offset)
      return
    }
    top.children.push(node)
  }

  #text(start: number, end: number): void {
    if (start >= end) return
    if (!this.#top.inVars) {
      this.#add({ type: 'text', bytes: this.#buf.subarray(start, end) }, start)
      return
    }
    // Inside <esi:vars> (ESI 1.0 §3.7) variables in text are substituted.
    const parsed = parseInterpolated(this.#buf.toString('utf8', start, end))
    if (typeof parsed === 'string') {
      this.#add({ type: 'text', bytes: this.#buf.subarray(start, end) }, start)
      return
    }
    this.#usesVariables = true
    for (const p of parsed) {
      if (typeof p === 'string') this.#add({ type: 'text', bytes: Buffer.from(p) }, start)
      else {
        this.#checkVar(p, start)
        this.#add({ type: 'var', ref: p }, start)
      }
    }
  }

  #checkVar(ref: VarRef, offset: number): void {
    if (!ref.known) this.#warn('unknown-variable', `unsupported variable $(${ref.name}) is empty`, offset)
  }

  #interpolated(value: string, offset: number): Interpolated | string {
    const parsed = parseInterpolated(value)
    if (typeof parsed !== 'string') {
      this.#usesVariables = true
      for (const p of parsed) if (typeof p !== 'string') this.#checkVar(p, offset)
    }
    return parsed
  }

  /**
   * Finds the end of a tag starting at `nameEnd`: the first `>` outside quotes, before the next
   * `<esi:`, `</esi:` or `<!--esi` (a quoted value does not span another ESI tag). The bound keeps
   * compile linear: an unbalanced quote in every tag would otherwise scan to the end each time.
   */
  #tagEnd(from: number): number {
    const buf = this.#buf
    let limit = buf.length
    for (const [which, needle] of [[0, OPEN], [1, CLOSE], [2, COMMENT_OPEN]] as const) {
      const n = this.#find(which, needle, from)
      if (n >= 0 && n < limit) limit = n
    }
    let quote = 0
    for (let i = from; i < limit; i++) {
      const c = buf[i]!
      if (quote) {
        if (c === quote) quote = 0
      } else if (c === 34 || c === 39) quote = c
      else if (c === 62) return i
    }
    // An unbalanced quote: fall back to the first `>` at all.
    return buf.indexOf(62, from)
  }

  #openTag(at: number): number {
    const buf = this.#buf
    const nameStart = at + OPEN.length
    let nameEnd = nameStart
    while (nameEnd < buf.length && isNameByte(buf[nameEnd]!)) nameEnd++
    if (nameEnd === nameStart) {
      this.#warn('malformed-tag', '<esi: without an element name is removed', at)
      return nameStart
    }
    const name = buf.toString('latin1', nameStart, nameEnd).toLowerCase()
    const gt = this.#tagEnd(nameEnd)
    if (gt < 0) {
      this.#warn('unterminated-tag', `<esi:${name} has no closing '>'; the rest of the template is removed`, at)
      return buf.length
    }
    let inner = buf.toString('utf8', nameEnd, gt)
    const selfClosing = inner.trimEnd().endsWith('/')
    if (selfClosing) inner = inner.trimEnd().slice(0, -1)
    if (inner.length > 0 && !isWs(inner.charCodeAt(0))) {
      this.#warn('malformed-tag', `<esi:${name}${inner.slice(0, 20)}…> is removed`, at)
      return gt + 1
    }
    const attrs = this.#attributes(inner, at)
    const end = gt + 1
    const top = this.#top
    if (!selfClosing && this.#tooDeep(at)) return buf.length
    const push = (kind: FrameKind, extra: Partial<Frame> = {}) =>
      this.#stack.push({ kind, name, offset: at, inVars: top.inVars || kind === 'vars', children: [], ...extra })

    switch (name) {
      case 'include': {
        this.#include(attrs, at)
        // A non-empty include (`<esi:include ...>…</esi:include>`): the body is ignored.
        if (!selfClosing) push('drop')
        return end
      }
      case 'comment':
        if (!selfClosing) push('drop')
        return end
      case 'remove': {
        if (selfClosing) return end
        // ESI 1.0 §3.6: nothing inside remove is processed; it cannot nest.
        const close = buf.indexOf(REMOVE_CLOSE, end)
        if (close < 0) {
          this.#warn('unclosed-element', '<esi:remove> is never closed; the rest of the template is removed', at)
          return buf.length
        }
        const closeGt = buf.indexOf(62, close)
        return closeGt < 0 ? buf.length : closeGt + 1
      }
      case 'vars':
        if (!selfClosing) push('vars')
        return end
      case 'try':
        if (!selfClosing) push('try', { attempt: null, except: null })
        else this.#warn('empty-element', '<esi:try/> is empty', at)
        return end
      case 'choose':
        if (!selfClosing) push('choose', { whens: [], otherwise: null })
        else this.#warn('empty-element', '<esi:choose/> is empty', at)
        return end
      case 'attempt':
      case 'except':
        if (top.kind !== 'try') {
          this.#warn('misplaced-element', `<esi:${name}> outside <esi:try> is removed`, at)
          if (!selfClosing) push('drop')
        } else if (selfClosing) {
          if (name === 'attempt') top.attempt ??= []
          else top.except ??= []
        } else push(name as FrameKind)
        return end
      case 'when':
      case 'otherwise': {
        if (top.kind !== 'choose') {
          this.#warn('misplaced-element', `<esi:${name}> outside <esi:choose> is removed`, at)
          if (!selfClosing) push('drop')
          return end
        }
        let test: Expr | null = null
        if (name === 'when') test = this.#test(attrs, at)
        if (selfClosing) {
          if (name === 'when') top.whens!.push({ test, body: [] })
          else top.otherwise ??= []
        } else push(name as FrameKind, { test })
        return end
      }
      default:
        this.#warn('unknown-element', `unsupported <esi:${name}> is removed${selfClosing ? '' : ' with its content'}`, at)
        if (!selfClosing) push('drop')
        return end
    }
  }

  #test(attrs: Map<string, string>, at: number): Expr | null {
    const src = attrs.get('test')
    if (src === undefined) {
      this.#warn('missing-attribute', '<esi:when> without test is never taken', at)
      return null
    }
    try {
      const e = parseExpression(src)
      const vars = expressionVars(e)
      if (vars.length) this.#usesVariables = true
      for (const v of vars) this.#checkVar(v, at)
      return e
    } catch (err) {
      const msg = err instanceof ExpressionError ? err.message : String(err)
      this.#warn('bad-expression', `<esi:when test=${JSON.stringify(src)}>: ${msg}; never taken`, at)
      return null
    }
  }

  #include(attrs: Map<string, string>, at: number): void {
    const src = attrs.get('src')
    if (src === undefined || src.trim() === '') {
      this.#warn('missing-attribute', '<esi:include> without src is removed', at)
      return
    }
    const alt = attrs.get('alt')
    const onerror = attrs.get('onerror')
    if (onerror !== undefined && onerror !== 'continue') this.#warn('bad-attribute', `onerror="${onerror}" is not supported (only "continue")`, at)
    let maxwaitMs: number | null = null
    const maxwait = attrs.get('maxwait')
    if (maxwait !== undefined) {
      if (/^[0-9]{1,9}$/.test(maxwait) && Number(maxwait) > 0) maxwaitMs = Number(maxwait)
      else this.#warn('bad-attribute', `maxwait="${maxwait}" is not a positive number of milliseconds`, at)
    }
    const node: EsiInclude = {
      type: 'include',
      src: this.#interpolated(src.trim(), at),
      alt: alt !== undefined && alt.trim() !== '' ? this.#interpolated(alt.trim(), at) : null,
      continueOnError: onerror === 'continue',
      maxwaitMs,
      offset: at,
    }
    this.#includes++
    this.#add(node, at)
  }

  /** Parses `name="v" name='v' name=v name` pairs; junk is skipped with a warning. */
  #attributes(s: string, at: number): Map<string, string> {
    const out = new Map<string, string>()
    let i = 0
    let warned = false
    const junk = () => {
      if (!warned) this.#warn('malformed-attribute', `malformed attributes in ${JSON.stringify(s.slice(0, 40))}`, at)
      warned = true
    }
    while (i < s.length) {
      while (i < s.length && isWs(s.charCodeAt(i))) i++
      if (i >= s.length) break
      const nameStart = i
      while (i < s.length && !isWs(s.charCodeAt(i)) && s[i] !== '=' && s[i] !== '"' && s[i] !== "'") i++
      const name = s.slice(nameStart, i).toLowerCase()
      if (!name) {
        junk()
        // Skip a stray quote or '=' (and a quoted run after it) so we make progress.
        const q = s[i]
        if (q === '"' || q === "'") {
          const close = s.indexOf(q, i + 1)
          i = close < 0 ? s.length : close + 1
        } else i++
        continue
      }
      while (i < s.length && isWs(s.charCodeAt(i))) i++
      let value = ''
      if (s[i] === '=') {
        i++
        while (i < s.length && isWs(s.charCodeAt(i))) i++
        const q = s[i]
        if (q === '"' || q === "'") {
          const close = s.indexOf(q, i + 1)
          if (close < 0) {
            junk()
            value = s.slice(i + 1)
            i = s.length
          } else {
            value = s.slice(i + 1, close)
            i = close + 1
          }
        } else {
          const vs = i
          while (i < s.length && !isWs(s.charCodeAt(i))) i++
          value = s.slice(vs, i)
        }
      }
      if (!out.has(name)) out.set(name, decodeEntities(value))
    }
    return out
  }

  #closeTag(at: number): number {
    const buf = this.#buf
    const nameStart = at + CLOSE.length
    let nameEnd = nameStart
    while (nameEnd < buf.length && isNameByte(buf[nameEnd]!)) nameEnd++
    let j = nameEnd
    while (j < buf.length && isWs(buf[j]!)) j++
    if (nameEnd === nameStart || buf[j] !== 62) {
      this.#warn('malformed-tag', 'malformed </esi: close tag is removed', at)
      return nameStart
    }
    const name = buf.toString('latin1', nameStart, nameEnd).toLowerCase()
    const stop = Math.max(this.#commentDepth(), 0)
    for (let k = this.#stack.length - 1; k > stop; k--) {
      if (this.#stack[k]!.name === name) {
        this.#closeTo(k)
        return j + 1
      }
    }
    // `</esi:include>` after a self-closed include and `</esi:comment>` are harmless.
    if (name !== 'include' && name !== 'comment') this.#warn('stray-close', `stray </esi:${name}> is removed`, at)
    return j + 1
  }

  /** Closes frames down to and including stack[k]; inner frames are closed implicitly. */
  #closeTo(k: number): void {
    if (k <= 0) return
    while (this.#stack.length - 1 > k) {
      const f = this.#top
      this.#warn('unclosed-element', `<esi:${f.name}> is closed implicitly`, f.offset)
      this.#pop(true)
    }
    this.#pop(false)
  }

  #pop(implicit: boolean): void {
    const f = this.#stack.pop()!
    const parent = this.#top
    const children = mergeText(f.children)
    switch (f.kind) {
      case 'vars':
      case 'esi-comment':
        for (const n of children) this.#add(n, f.offset)
        return
      case 'drop':
        // Properly closed: removed with its content. Never closed: only the tag is removed.
        if (implicit) for (const n of children) this.#add(n, f.offset)
        return
      case 'try':
        if (f.attempt === null) this.#warn('missing-attempt', '<esi:try> without <esi:attempt> renders nothing', f.offset)
        this.#add({ type: 'try', attempt: f.attempt ?? [], except: f.except ?? [] }, f.offset)
        return
      case 'choose':
        if (!f.whens!.length) this.#warn('missing-when', '<esi:choose> without <esi:when>', f.offset)
        this.#add({ type: 'choose', whens: f.whens!, otherwise: f.otherwise ?? null }, f.offset)
        return
      case 'attempt':
      case 'except': {
        const slot = f.kind === 'attempt' ? 'attempt' : 'except'
        if (parent[slot] != null) this.#warn('duplicate-element', `a second <esi:${f.kind}> is ignored`, f.offset)
        else parent[slot] = children
        return
      }
      case 'when':
        parent.whens!.push({ test: f.test ?? null, body: children })
        return
      case 'otherwise':
        if (parent.otherwise != null) this.#warn('duplicate-element', 'a second <esi:otherwise> is ignored', f.offset)
        else parent.otherwise = children
        return
      case 'root':
        return
    }
  }
}

/** Merges adjacent text nodes into one pre-encoded Buffer (copied: the program owns its bytes). */
function mergeText(nodes: EsiNode[]): EsiNode[] {
  const out: EsiNode[] = []
  let run: Buffer[] = []
  const flush = () => {
    if (run.length) {
      const bytes = Buffer.concat(run)
      if (bytes.length) out.push({ type: 'text', bytes })
    }
    run = []
  }
  for (const n of nodes) {
    if (n.type === 'text') run.push(n.bytes)
    else {
      flush()
      out.push(n)
    }
  }
  flush()
  return out
}

/**
 * Compiles a template once into an instruction list. Pure and total: malformed markup gives
 * defined output and `program.warnings`, never an exception. A template without ESI markup gives
 * the shared `NO_ESI` program (`hasEsi: false`): serve it as stored.
 */
export function compile(template: Buffer | string, opts: CompileOptions = {}): EsiProgram {
  const buf = typeof template === 'string' ? Buffer.from(template) : template
  if (buf.indexOf(OPEN) < 0 && buf.indexOf(CLOSE) < 0 && buf.indexOf(COMMENT_OPEN) < 0) return NO_ESI
  const program = new Compiler(buf).run()
  if (program.warnings.length) {
    const log = (opts.logger ?? silentLogger).child({ module: 'esi' })
    log.warn({ warnings: program.warnings.slice(0, 20), count: program.warnings.length }, 'malformed ESI markup in template')
  }
  return program
}
