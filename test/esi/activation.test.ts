import { describe, expect, it } from 'vitest'
import { isEsiResponse, parseSurrogateControl, SURROGATE_CAPABILITY } from '../../src/esi/index.js'

const on = { enabled: true, paths: [] as string[] }

describe('activation (Edge Architecture §3)', () => {
  it('sends strata="ESI/1.0" as the capability', () => {
    expect(SURROGATE_CAPABILITY).toBe('strata="ESI/1.0"')
  })

  it.each([
    ['content="ESI/1.0"', true],
    ['max-age=60, content="ESI/1.0"', true],
    ['content="ESI/1.0 ESI-INV/1.0"', true],
    ['content="ESI-INV/1.0 ESI/1.0", no-store', true],
    ['content="ESI/1.0";strata', true],
    ['content="ESI/1.0";varnish', false],
    ['content="ESI/1.0";varnish, content="ESI/1.0";strata', true],
    ['CONTENT="esi/1.0"', true],
    ['content=ESI/1.0', true],
    ['content="ESI/2.0"', false],
    ['no-store', false],
    ['max-age="60, content=ESI/1.0"', false], // inside a quoted value, not a directive
    ['', false],
  ])('Surrogate-Control: %s → %s', (value, expected) => {
    expect(isEsiResponse({ 'surrogate-control': value }, '/x', on)).toBe(expected)
  })

  it('several Surrogate-Control header lines are one list', () => {
    expect(isEsiResponse({ 'surrogate-control': ['max-age=10', 'content="ESI/1.0"'] }, '/x', on)).toBe(true)
  })

  it('path prefixes activate without a header, ignoring the query', () => {
    const cfg = { enabled: true, paths: ['/pages/'] }
    expect(isEsiResponse({}, '/pages/home', cfg)).toBe(true)
    expect(isEsiResponse({}, '/pages/home?x=/other/', cfg)).toBe(true)
    expect(isEsiResponse({}, '/other/?/pages/', cfg)).toBe(false)
    expect(isEsiResponse({}, '/page', cfg)).toBe(false)
  })

  it('esi.enabled false turns everything off', () => {
    expect(isEsiResponse({ 'surrogate-control': 'content="ESI/1.0"' }, '/pages/x', { enabled: false, paths: ['/pages/'] })).toBe(false)
  })

  it('an unmarked response is not ESI even if the body would contain <esi:', () => {
    expect(isEsiResponse({ 'content-type': 'text/html' }, '/user-content', on)).toBe(false)
  })

  it('parses directives with targets and quoted values', () => {
    expect(parseSurrogateControl('max-age=30+60;strata, content="ESI/1.0", no-store')).toEqual([
      { name: 'max-age', value: '30+60', target: 'strata' },
      { name: 'content', value: 'ESI/1.0', target: undefined },
      { name: 'no-store', value: undefined, target: undefined },
    ])
  })
})

describe('prepareEsi (the page cache hook)', () => {
  it('compiles marked templates with ESI, keeps nothing otherwise', async () => {
    const { prepareEsi } = await import('../../src/esi/index.js')
    const marked = { 'surrogate-control': 'content="ESI/1.0"' }
    expect(prepareEsi({ headers: marked, body: Buffer.from('a<esi:include src="/x"/>'), path: '/p' }, on)?.includeCount).toBe(1)
    expect(prepareEsi({ headers: marked, body: Buffer.from('plain page'), path: '/p' }, on)).toBeUndefined()
    expect(prepareEsi({ headers: {}, body: Buffer.from('user wrote <esi:include src="/admin"/>'), path: '/p' }, on)).toBeUndefined()
    expect(prepareEsi({ headers: marked, body: Buffer.from('<esi:include src="/x"/>'), path: '/p' }, { enabled: false, paths: [] })).toBeUndefined()
  })

  it('decodes a gzip body only for a marked template', async () => {
    const { prepareEsi } = await import('../../src/esi/index.js')
    const { gzipSync } = await import('node:zlib')
    const marked = { 'surrogate-control': 'content="ESI/1.0"' }
    const gz = gzipSync('a<esi:include src="/x"/>b')
    expect(prepareEsi({ headers: marked, body: gz, encoding: 'gzip', path: '/p' }, on)?.includeCount).toBe(1)
    // Not a template: the bytes are never decoded (these are not even valid gzip).
    expect(prepareEsi({ headers: {}, body: Buffer.from('not gzip'), encoding: 'gzip', path: '/p' }, on)).toBeUndefined()
  })
})
