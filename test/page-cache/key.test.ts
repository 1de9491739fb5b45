import { describe, expect, it } from 'vitest'
import { createKeyFunction, keyOrigin, keyTarget, normalizeTarget, compileGlobs } from '../../src/page-cache/key.js'

describe('cache key (RFC 9111 §2)', () => {
  it('is scheme + lower-case host + path + query, fragment dropped', () => {
    const k = createKeyFunction({ ignoreQuery: [], sortQuery: false })
    expect(k('http', 'Example.COM', '/a?b=1#frag')).toBe('http://example.com/a?b=1')
    expect(k('https', 'example.com', '/a')).toBe('https://example.com/a')
    expect(k('http', 'h', '')).toBe('http://h/')
  })
  it('drops ignored query parameters by glob and sorts the rest', () => {
    const k = createKeyFunction({ ignoreQuery: ['utm_*', 'fbclid'], sortQuery: true })
    expect(k('http', 'h', '/p?z=1&utm_source=x&a=2&fbclid=q&utm_medium=y')).toBe('http://h/p?a=2&z=1')
    expect(k('http', 'h', '/p?utm_source=x')).toBe('http://h/p')
  })
  it('keeps order without sortQuery and keeps repeated names in order', () => {
    expect(normalizeTarget('/p?b=1&a=1&b=2', undefined, false)).toBe('/p?b=1&a=1&b=2')
    expect(normalizeTarget('/p?b=1&a=1&b=2', undefined, true)).toBe('/p?a=1&b=1&b=2')
  })
  it('escapes regex metacharacters in globs', () => {
    const re = compileGlobs(['a.b', 'x?'])!
    expect(re.test('a.b')).toBe(true)
    expect(re.test('axb')).toBe(false)
    expect(re.test('xy')).toBe(true)
  })
  it('splits keys into origin and target', () => {
    expect(keyTarget('http://h:8080/a/b?c')).toBe('/a/b?c')
    expect(keyOrigin('http://h:8080/a/b?c')).toBe('http://h:8080')
  })
})
