import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { evaluate, parseExpression, RequestVars } from '../../src/esi/index.js'
import { parseUserAgent } from '../../src/esi/variables.js'

const vars = (headers: Record<string, string> = {}, url = 'http://site.test/p') => new RequestVars(headers, new URL(url))
const ev = (src: string, v = vars()) => evaluate(parseExpression(src), v)

describe('ESI expressions (§5)', () => {
  it.each([
    ['1==1', true],
    ['1!=1', false],
    ["'a'=='a'", true],
    ["'a' != 'b'", true],
    ['2 < 10', true], // numeric
    ["'2' < '10'", true], // both numeric-looking strings compare numerically
    ["'2a' < '10'", false], // string comparison
    ['3 >= 3', true],
    ['3 > 3', false],
    ['-1 < 0', true],
    ['1.5 <= 1.50', true],
    ["'a'==3", false],
    ['1==1 & 2==2', true],
    ['1==1 & 2==3', false],
    ['1==2 | 2==2', true],
    ['!(1==2)', true],
    ['!1==2', true], // ! qualifies the whole comparison
    ['!!(1==1)', true],
    ['1==2 | 1==1 & 2==3', false], // & binds tighter than |
    ['(1==2 | 1==1) & 2==2', true],
    ['1==1 && 2==2', true],
    ['1==2 || 2==2', true],
    ["'it\\'s'=='it\\'s'", true],
    ["''==''", false], // empty operand → false (§5)
  ])('%s → %s', (src, expected) => {
    expect(ev(src)).toBe(expected)
  })

  it('variables: cookies, query, defaults, undefined compare false', () => {
    const v = vars({ cookie: 'group=beta; n=7' }, 'http://site.test/p?lang=de')
    expect(ev("$(HTTP_COOKIE{group})=='beta'", v)).toBe(true)
    expect(ev('$(HTTP_COOKIE{n}) > 6', v)).toBe(true)
    expect(ev("$(QUERY_STRING{lang})=='de'", v)).toBe(true)
    expect(ev("$(HTTP_COOKIE{missing})!='x'", v)).toBe(false)
    expect(ev("$(HTTP_COOKIE{missing}|'x')=='x'", v)).toBe(true)
    expect(ev('$(HTTP_COOKIE{group})', v)).toBe(true) // bare operand: defined and non-empty
    expect(ev('$(HTTP_COOKIE{missing})', v)).toBe(false)
    expect(ev('!$(HTTP_COOKIE{missing})', v)).toBe(true)
  })

  it.each(['', '(', '1==', "'open", '1 == 1 1', '$(', '==1', '@', '((1==1)', '- == 1'])('rejects %j', (src) => {
    expect(() => parseExpression(src)).toThrow()
  })

  it('rejects absurd nesting instead of overflowing the stack', () => {
    expect(() => parseExpression('('.repeat(10_000) + '1' + ')'.repeat(10_000))).toThrow(/nested/)
    expect(() => parseExpression('!'.repeat(10_000) + '1')).toThrow(/nested/)
  })

  it('parse either throws an ExpressionError or gives an AST that evaluates to a boolean (fast-check)', () => {
    const tok = fc.constantFrom('(', ')', '!', '&', '|', '==', '!=', '<', '>=', "'a'", "'", '1', '-2.5', '$(HTTP_COOKIE{a})', '$(QUERY_STRING{q}|\'d\')', ' ', 'x')
    fc.assert(
      fc.property(fc.array(tok, { maxLength: 30 }), (toks) => {
        let ast
        try {
          ast = parseExpression(toks.join(''))
        } catch (err) {
          expect((err as Error).name).toBe('ExpressionError')
          return
        }
        expect(typeof evaluate(ast, vars({ cookie: 'a=1' }, 'http://s.test/?q=2'))).toBe('boolean')
      }),
      { numRuns: 1000 },
    )
  })
})

describe('variables (§4)', () => {
  it('user agent dictionary', () => {
    expect(parseUserAgent('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1.15')).toEqual({ browser: 'MOZILLA', os: 'MAC', version: '5.0' })
    expect(parseUserAgent('Mozilla/5.0 (X11; Linux x86_64) Chrome/120')).toEqual({ browser: 'MOZILLA', os: 'UNIX', version: '5.0' })
    expect(parseUserAgent('Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko')).toEqual({ browser: 'MSIE', os: 'WIN', version: '11.0' })
    expect(parseUserAgent('curl/8.5.0')).toEqual({ browser: 'OTHER', os: 'OTHER', version: undefined })
  })

  it('resolves each header once per request (memoized)', () => {
    const headers = { cookie: 'a=1' }
    const v = new RequestVars(headers, new URL('http://s.test/'))
    const ref = { name: 'HTTP_COOKIE', key: 'a', known: true }
    expect(v.get(ref)).toBe('1')
    headers.cookie = 'a=2'
    expect(v.get(ref)).toBe('1')
  })

  it('multiple cookie headers are joined', () => {
    const v = new RequestVars({ cookie: ['a=1', 'b=2'] }, new URL('http://s.test/'))
    expect(v.get({ name: 'HTTP_COOKIE', key: 'b', known: true })).toBe('2')
  })
})
