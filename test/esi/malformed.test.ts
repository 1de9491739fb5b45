import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compile } from '../../src/esi/index.js'
import { run } from './helpers.js'

/**
 * Malformed markup never crashes and has a defined output (docs/esi.md, "Malformed markup"),
 * with a warning code in program.warnings.
 */
const corpus: { name: string; template: string; expected: string; warning: string }[] = [
  { name: 'unknown element with content', template: 'a<esi:inline name="x">body</esi:inline>b', expected: 'ab', warning: 'unknown-element' },
  { name: 'unknown self-closing element', template: 'a<esi:assign name="x" value="1"/>b', expected: 'ab', warning: 'unknown-element' },
  { name: 'unknown element never closed: only the tag goes', template: 'a<esi:foo>body', expected: 'abody', warning: 'unknown-element' },
  { name: 'stray close tag', template: 'a</esi:try>b', expected: 'ab', warning: 'stray-close' },
  { name: 'unclosed vars at end', template: '<esi:vars>x$(HTTP_COOKIE{a}|d)', expected: 'xd', warning: 'unclosed-element' },
  { name: 'unclosed try at end keeps attempt', template: '<esi:try><esi:attempt>A', expected: 'A', warning: 'unclosed-element' },
  { name: 'attempt closed implicitly by </esi:try>', template: '<esi:try><esi:attempt>A</esi:try>!', expected: 'A!', warning: 'unclosed-element' },
  { name: 'try without attempt renders nothing', template: '[<esi:try><esi:except>E</esi:except></esi:try>]', expected: '[]', warning: 'missing-attempt' },
  { name: 'text directly in try is removed', template: '<esi:try>junk<esi:attempt>A</esi:attempt></esi:try>', expected: 'A', warning: 'misplaced-content' },
  { name: 'attempt outside try removed with content', template: 'a<esi:attempt>x</esi:attempt>b', expected: 'ab', warning: 'misplaced-element' },
  { name: 'when outside choose removed', template: 'a<esi:when test="1==1">x</esi:when>b', expected: 'ab', warning: 'misplaced-element' },
  { name: 'otherwise outside choose removed', template: 'a<esi:otherwise>x</esi:otherwise>b', expected: 'ab', warning: 'misplaced-element' },
  { name: 'when without test never taken', template: '<esi:choose><esi:when>x</esi:when><esi:otherwise>o</esi:otherwise></esi:choose>', expected: 'o', warning: 'missing-attribute' },
  { name: 'when with broken expression never taken', template: "<esi:choose><esi:when test=\"'a == \">x</esi:when><esi:otherwise>o</esi:otherwise></esi:choose>", expected: 'o', warning: 'bad-expression' },
  { name: 'second otherwise ignored', template: '<esi:choose><esi:otherwise>1</esi:otherwise><esi:otherwise>2</esi:otherwise></esi:choose>', expected: '1', warning: 'duplicate-element' },
  { name: 'choose without when', template: '[<esi:choose></esi:choose>]', expected: '[]', warning: 'missing-when' },
  { name: 'include without src removed', template: 'a<esi:include alt="/x"/>b', expected: 'ab', warning: 'missing-attribute' },
  { name: 'include with bad maxwait still works', template: '<esi:include src="/a" maxwait="soon"/>', expected: 'A', warning: 'bad-attribute' },
  { name: 'include with unsupported onerror', template: '<esi:include src="/a" onerror="abort"/>', expected: 'A', warning: 'bad-attribute' },
  { name: 'tag without > removes the rest', template: 'a<esi:include src="/a" b', expected: 'a', warning: 'unterminated-tag' },
  { name: 'unbalanced quote falls back to first >', template: 'a<esi:include src="/a/>b', expected: 'aAb', warning: 'malformed-attribute' },
  { name: '<esi: without a name', template: 'a<esi: b', expected: 'a b', warning: 'malformed-tag' },
  { name: 'name glued to junk', template: 'a<esi:include"/a"/>b', expected: 'ab', warning: 'malformed-tag' },
  { name: 'malformed close tag', template: 'a</esi:try b', expected: 'atry b', warning: 'malformed-tag' },
  { name: 'remove without close removes the rest', template: 'a<esi:remove>b<esi:include src="/a"/>', expected: 'a', warning: 'unclosed-element' },
  { name: 'esi comment without close', template: 'a<!--esi b', expected: 'a b', warning: 'unclosed-element' },
  { name: 'esi comment glued to a tag', template: '<!--esi<esi:include src="/a"/>-->', expected: 'A', warning: '' },
  { name: 'esi comment at the very end', template: 'a<!--esi', expected: 'a', warning: 'unclosed-element' },
  { name: 'close tag does not cross <!--esi', template: '<esi:vars><!--esi x</esi:vars>y-->z</esi:vars>', expected: ' xyz', warning: 'stray-close' },
  { name: 'unknown variable in vars', template: '<esi:vars>[$(NOPE)]</esi:vars>', expected: '[]', warning: 'unknown-variable' },
  { name: 'uppercase element names are accepted', template: '<esi:INCLUDE src="/a"/>', expected: 'A', warning: '' },
  { name: 'junk attribute characters skipped', template: '<esi:include = "x" src="/a"/>', expected: 'A', warning: 'malformed-attribute' },
]

describe('malformed templates', () => {
  it.each(corpus)('$name', async ({ template, expected, warning }) => {
    const program = compile(template)
    if (warning) expect(program.warnings.map((w) => w.code)).toContain(warning)
    else expect(program.warnings).toEqual([])
    const { body } = await run(template, { fragments: { '/a': 'A' } })
    expect(body).toBe(expected)
  })

  it('a template without ESI markup keeps no program', () => {
    const p = compile('<html><script>if (a<b) {}</script><!-- esi --><esi-x></html>')
    expect(p.hasEsi).toBe(false)
    expect(p.nodes).toEqual([])
  })

  it('static chunks are pre-encoded and merged', () => {
    const p = compile('a<esi:comment text="x"/>b<esi:remove>r</esi:remove>c<esi:include src="/x"/>d')
    expect(p.nodes.map((n) => n.type)).toEqual(['text', 'include', 'text'])
    const first = p.nodes[0]!
    expect(first.type === 'text' && Buffer.isBuffer(first.bytes) && first.bytes.toString()).toBe('abc')
  })
})

/** Tokens that make ESI-heavy junk; only tag-like tokens contain '<'. */
const esiTokens = [
  '<esi:include src="/a"/>', '<esi:include src="/a" alt="/b" onerror="continue"/>', '<esi:include src="', '<esi:include',
  '<esi:try>', '</esi:try>', '<esi:attempt>', '</esi:attempt>', '<esi:except>', '</esi:except>',
  '<esi:choose>', '</esi:choose>', '<esi:when test="1==1">', '<esi:when test="$(HTTP_COOKIE{a})==\'x\'">', '<esi:when test="((">', '</esi:when>',
  '<esi:otherwise>', '</esi:otherwise>', '<esi:vars>', '</esi:vars>', '<esi:remove>', '</esi:remove>', '<esi:comment text="c"/>',
  '<!--esi ', '<!--esi', '-->', '<esi:', '</esi:', '</esi:foo>', '<esi:foo>', '<esi:bar/>', '<esi:inline>', '<esi:include src="/a">',
  '<div>', '</div>', '<script>', '</script>', '<!-- c -->', '$(HTTP_COOKIE{a})', '$(', '"', "'", '>', '/>', ' ', '\n', 'text', 'é',
]
const junk = fc.array(fc.constantFrom(...esiTokens), { maxLength: 40 }).map((t) => t.join(''))

describe('compile properties (fast-check)', () => {
  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        compile(Buffer.from(bytes))
      }),
      { numRuns: 500 },
    )
  })

  it('never throws on arbitrary strings with ESI prefixes', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 50 }), (a, b) => {
        compile(`${a}<esi:${b}${a}</esi:${b}<!--esi ${a}`)
      }),
      { numRuns: 500 },
    )
  })

  it('never lets ESI markup through on ESI-heavy junk', async () => {
    await fc.assert(
      fc.asyncProperty(junk, fc.constantFrom<'continue' | 'fail'>('continue', 'fail'), async (template, onError) => {
        const program = compile(template)
        const { body } = await run(template, { fragments: { '/a': 'A', '/b': 'B' }, config: { onError } }).catch(() => ({ body: '' }))
        if (program.hasEsi) {
          expect(body).not.toContain('<esi:')
          expect(body).not.toContain('</esi:')
          expect(body).not.toMatch(/<!--esi(?:-->|[^A-Za-z0-9_-]|$)/)
        }
      }),
      { numRuns: Number(process.env.ESI_FC_RUNS ?? 400) },
    )
  })

  it('compile is deterministic and does not depend on how the input Buffer was built', () => {
    fc.assert(
      fc.property(junk, fc.integer({ min: 0, max: 64 }), (template, pad) => {
        // Same bytes at a different offset of a bigger allocation (pooled/sliced Buffers).
        const big = Buffer.alloc(pad + Buffer.byteLength(template) + 3, 0x41)
        big.write(template, pad)
        const sliced = big.subarray(pad, pad + Buffer.byteLength(template))
        expect(JSON.stringify(compile(sliced))).toBe(JSON.stringify(compile(template)))
      }),
      { numRuns: 300 },
    )
  })
})
