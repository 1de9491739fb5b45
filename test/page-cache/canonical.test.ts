import { describe, expect, it } from 'vitest'
import { canonicalAbsolute, canonicalHost, canonicalTarget, createKeyFunction, isCanonicalTarget } from '../../src/page-cache/key.js'
import { compilePurge } from '../../src/page-cache/purge.js'

describe('canonical request target (RFC 3986 §6.2.2)', () => {
  it.each([
    ['/a/./b', '/a/b'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/a/.', '/a/'],
    ['/..', '/'],
    ['/../../x', '/x'],
    ['/a//b', '/a//b'],
    ['/%7Euser/%61%62', '/~user/ab'],
    ['/a%2fb', '/a%2Fb'],
    ['/a/%2e%2E/b', '/b'],
    ['/p?q=%7e&r=%2f', '/p?q=~&r=%2F'],
    ['/p?x=/./y', '/p?x=/./y'],
    ['/bad%zz%4', '/bad%zz%4'],
    ['/\u00c3\u00a9', '/%C3%A9'],
    ['/a b', '/a%20b'],
  ])('%s → %s', (raw, canonical) => {
    expect(canonicalTarget(raw)).toBe(canonical)
    // Idempotent: the canonical form is its own canonical form.
    expect(canonicalTarget(canonical)).toBe(canonical)
  })

  it('returns the very same string for an already canonical target (the common case allocates nothing)', () => {
    const url = '/news/today?page=2&sort=new'
    expect(isCanonicalTarget(url)).toBe(true)
    expect(canonicalTarget(url)).toBe(url)
    expect(isCanonicalTarget('/a/.hidden')).toBe(false) // a false alarm is fine: the slow path keeps it
    expect(canonicalTarget('/a/.hidden')).toBe('/a/.hidden')
  })

  it('agrees with WHATWG URL on dot segments and non-ASCII (ESI includes are resolved with it)', () => {
    for (const raw of ['/a/./b/../c', '/x/%2e/y', '/q?a=%41']) {
      const u = new URL(`http://h${raw}`)
      expect(canonicalTarget(u.pathname + u.search)).toBe(canonicalTarget(raw))
    }
    // A template's src="/café" (text) and a client's request for it (UTF-8 bytes, which Node
    // hands over one char per byte) name the same resource.
    const include = new URL('/caf\u00e9/menu', 'http://h')
    const fromClient = Buffer.from('/caf\u00e9/menu', 'utf8').toString('latin1')
    expect(canonicalTarget(include.pathname)).toBe(canonicalTarget(fromClient))
  })

  it('canonical host: lower case, default port dropped, leading zeros gone', () => {
    expect(canonicalHost('Shop.Example:80', 'http')).toBe('shop.example')
    expect(canonicalHost('shop.example:443', 'https')).toBe('shop.example')
    expect(canonicalHost('shop.example:443', 'http')).toBe('shop.example:443')
    expect(canonicalHost('shop.example:0080', 'http')).toBe('shop.example')
    expect(canonicalHost('[::1]:8080', 'http')).toBe('[::1]:8080')
    expect(canonicalHost('[::1]', 'http')).toBe('[::1]')
  })

  it('absolute URLs split as written, then canonicalised like a request', () => {
    expect(canonicalAbsolute('HTTP://X.example:80/a/./%62?q=%7e')).toEqual({ scheme: 'http', host: 'x.example', target: '/a/b?q=~' })
    expect(canonicalAbsolute('https://x.example')).toEqual({ scheme: 'https', host: 'x.example', target: '/' })
    expect(canonicalAbsolute('ftp://x/')).toBeUndefined()
  })

  it('purge input is canonicalised the same way as the key of the request that stored it', () => {
    const key = createKeyFunction({ ignoreQuery: [], sortQuery: false })
    const stored = key('http', canonicalHost('X.example:80', 'http'), canonicalTarget('/a/./b'))
    expect(stored).toBe('http://x.example/a/b')
    const byUrl = compilePurge({ urls: ['http://x.example:80/a/%62'] }, key)
    expect(byUrl.selectors).toEqual([{ kind: 'keys', keys: [stored] }])
    const byPath = compilePurge({ urls: ['/a/../a/b'] }, key)
    const s = byPath.selectors[0]!
    expect(s.kind === 'match' && s.match(stored)).toBe(true)
    const byPrefix = compilePurge({ prefix: 'http://X.EXAMPLE:80/a/./' }, key)
    const p = byPrefix.selectors[0]!
    expect(p.kind === 'match' && p.match(stored)).toBe(true)
  })
})
