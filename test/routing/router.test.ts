import { describe, expect, it } from 'vitest'
import { DEFAULT_ROUTE, Router, hostName, pathRewriter, shadowedRoutes } from '../../src/routing/router.js'
import { resolveConfig } from '../../src/config/load.js'
import type { RouteConfig } from '../../src/config/schema.js'

/** The example of issue #13. */
const ISSUE_EXAMPLE = {
  upstreams: [
    { id: 'b1', url: 'http://b1:3001' },
    { id: 'b2', url: 'http://b2:3001' },
  ],
  pools: {
    api: { upstreams: [{ id: 'api1', url: 'http://api:8080' }], balancer: { algorithm: 'least-connections' } },
    static: { upstreams: [{ id: 's1', url: 'http://static:8080' }] },
    writer: { upstreams: [{ id: 'b1w', url: 'http://b1:3001' }] },
  },
  routes: [
    { match: { host: 'api.example.com' }, pool: 'api' },
    { match: { pathPrefix: '/static/' }, pool: 'static', cache: { defaultTtl: 3600 } },
    { match: { methods: ['POST', 'PUT', 'PATCH', 'DELETE'] }, pool: 'writer' },
    { match: { pathPrefix: '/api/', header: { name: 'x-beta', value: '1' } }, pool: 'api', stripPrefix: '/api' },
  ],
}

const r = (match: RouteConfig['match'], rest: Omit<RouteConfig, 'match'> = {}): RouteConfig => ({ match, ...rest })

describe('Router', () => {
  it('with no routes returns the shared default route without looking at the request', () => {
    const router = Router.compile([])
    expect(router.empty).toBe(true)
    expect(router.match('GET', 'x', '/', {})).toBe(DEFAULT_ROUTE)
    expect(DEFAULT_ROUTE).toMatchObject({ index: -1, pool: 'default', cache: undefined, esi: undefined })
    expect(DEFAULT_ROUTE.upstreamPath('/a?b')).toBe('/a?b')
    expect(Object.isFrozen(DEFAULT_ROUTE)).toBe(true)
  })

  it('routes the example of issue #13', () => {
    const config = resolveConfig(ISSUE_EXAMPLE)
    const router = Router.compile(config.routes)
    expect(router.empty).toBe(false)
    const m = (method: string, host: string, path: string, headers: Record<string, string | string[]> = {}) => router.match(method, host, path, headers)
    expect(m('GET', 'api.example.com', '/anything').pool).toBe('api')
    expect(m('POST', 'API.Example.com:8443', '/static/x').index).toBe(0)
    expect(m('GET', 'www.example.com', '/static/app.js')).toMatchObject({ index: 1, pool: 'static', cache: { defaultTtl: 3600 } })
    expect(m('POST', 'www.example.com', '/static/upload').index).toBe(1) // first match wins
    expect(m('DELETE', 'www.example.com', '/news/1').pool).toBe('writer')
    const beta = m('GET', 'www.example.com', '/api/items?page=2', { 'x-beta': '1' })
    expect(beta).toMatchObject({ index: 3, pool: 'api' })
    expect(beta.upstreamPath('/api/items?page=2')).toBe('/items?page=2')
    expect(m('GET', 'www.example.com', '/api/items', { 'x-beta': '2' })).toBe(DEFAULT_ROUTE)
    expect(m('GET', 'www.example.com', '/api/items')).toBe(DEFAULT_ROUTE)
    expect(m('GET', 'www.example.com', '/')).toBe(DEFAULT_ROUTE)
  })

  it('compares hosts lower-cased, without the port, and a wildcard at any depth but never the bare domain', () => {
    const router = Router.compile([r({ host: '*.Example.com' }, { pool: 'sub' }), r({ host: 'example.com' }, { pool: 'bare' }), r({ host: '[::1]' }, { pool: 'v6' })])
    const pool = (host: string) => router.match('GET', host, '/', {}).pool
    expect(pool('a.example.com')).toBe('sub')
    expect(pool('A.B.C.EXAMPLE.COM:2001')).toBe('sub')
    expect(pool('example.com')).toBe('bare')
    expect(pool('Example.Com:80')).toBe('bare')
    expect(pool('example.com.')).toBe('bare')
    expect(pool('.example.com')).toBe('default')
    expect(pool('notexample.com')).toBe('default')
    expect(pool('example.com.evil.test')).toBe('default')
    expect(pool('[::1]:8080')).toBe('v6')
    expect(pool('')).toBe('default')
  })

  it('hostName cuts the port and lower-cases', () => {
    expect(hostName('WWW.Example.COM:8080')).toBe('www.example.com')
    expect(hostName('www.example.com')).toBe('www.example.com')
    expect(hostName('[2001:DB8::1]:443')).toBe('[2001:db8::1]')
    expect(hostName('127.0.0.1:2001')).toBe('127.0.0.1')
    expect(hostName('')).toBe('')
  })

  it('matches methods exactly (methods are case-sensitive, RFC 9110 §9.1)', () => {
    const router = Router.compile([r({ methods: ['POST', 'PUT'] }, { pool: 'w' })])
    expect(router.match('POST', 'h', '/', {}).pool).toBe('w')
    expect(router.match('PUT', 'h', '/', {}).pool).toBe('w')
    expect(router.match('GET', 'h', '/', {}).pool).toBe('default')
    expect(router.match('post', 'h', '/', {}).pool).toBe('default')
  })

  it('matches a header by presence or exact value, any element of a repeated header', () => {
    const router = Router.compile([r({ header: { name: 'X-Beta', value: '1' } }, { pool: 'exact' }), r({ header: { name: 'x-canary' } }, { pool: 'present' })])
    const pool = (headers: Record<string, string | string[] | undefined>) => router.match('GET', 'h', '/', headers).pool
    expect(pool({ 'x-beta': '1' })).toBe('exact')
    expect(pool({ 'x-beta': '10' })).toBe('default')
    expect(pool({ 'x-beta': ['0', '1'] })).toBe('exact')
    expect(pool({ 'x-beta': ['0', '2'] })).toBe('default')
    expect(pool({ 'x-canary': '' })).toBe('present')
    expect(pool({ 'x-canary': [] })).toBe('present')
    expect(pool({ 'x-canary': undefined })).toBe('default')
  })

  it('needs every condition of a route to hold', () => {
    const router = Router.compile([r({ host: 'a.test', pathPrefix: '/x', methods: ['GET'], header: { name: 'h' } }, { pool: 'all' })])
    const ok = { h: 'v' }
    expect(router.match('GET', 'a.test', '/x/1', ok).pool).toBe('all')
    expect(router.match('POST', 'a.test', '/x/1', ok).pool).toBe('default')
    expect(router.match('GET', 'b.test', '/x/1', ok).pool).toBe('default')
    expect(router.match('GET', 'a.test', '/y', ok).pool).toBe('default')
    expect(router.match('GET', 'a.test', '/x/1', {}).pool).toBe('default')
  })

  it('gives each route its index, pool (default when none), cache policy and esi flag', () => {
    const router = Router.compile([r({ pathPrefix: '/a' }), r({ pathPrefix: '/b' }, { pool: 'p', cache: { enabled: false }, esi: { enabled: false } })])
    expect(router.match('GET', 'h', '/a', {})).toMatchObject({ index: 0, pool: 'default', cache: undefined, esi: undefined })
    expect(router.match('GET', 'h', '/b', {})).toMatchObject({ index: 1, pool: 'p', cache: { enabled: false }, esi: false })
    expect(router.routes.map((x) => x.index)).toEqual([0, 1])
  })
})

describe('upstreamPath', () => {
  it.each([
    // [stripPrefix, addPrefix, target, expected]
    ['/api', undefined, '/api', '/'],
    ['/api', undefined, '/api/x', '/x'],
    ['/api', undefined, '/api/x/y?q=1', '/x/y?q=1'],
    ['/api', undefined, '/api?q', '/?q'],
    ['/api', undefined, '/api/', '/'],
    ['/api', undefined, '/apix', '/apix'],
    ['/api', undefined, '/other/api', '/other/api'],
    ['/api/', undefined, '/api/x', '/x'],
    ['/api/', undefined, '/api', '/'],
    ['/a/b', undefined, '/a/b/c', '/c'],
    ['/a/b', undefined, '/a/bc', '/a/bc'],
    [undefined, '/v2', '/x', '/v2/x'],
    [undefined, '/v2', '/', '/v2/'],
    [undefined, '/v2', '/x?q=1', '/v2/x?q=1'],
    [undefined, '/v2/', '/x', '/v2/x'],
    ['/api', '/v2', '/api/x', '/v2/x'],
    ['/api', '/v2', '/api', '/v2/'],
    ['/api', '/v2', '/apix', '/v2/apix'],
    [undefined, undefined, '/x?y', '/x?y'],
    ['/', undefined, '/x', '/x'],
    [undefined, '/v2', '*', '*'],
  ])('strip %s, add %s: %s → %s', (strip, add, target, expected) => {
    expect(pathRewriter(strip, add)(target)).toBe(expected)
  })

  it('is the identity function itself when there is nothing to rewrite', () => {
    expect(pathRewriter(undefined, undefined)).toBe(pathRewriter('/', '/'))
  })
})

describe('shadowedRoutes', () => {
  const shadowed = (...routes: RouteConfig[]) => shadowedRoutes(routes)

  it('finds none in the example of issue #13', () => {
    expect(shadowedRoutes(ISSUE_EXAMPLE.routes as RouteConfig[])).toEqual([])
  })

  it.each<[string, RouteConfig['match'], RouteConfig['match'], boolean]>([
    ['an empty match shadows everything', {}, { pathPrefix: '/x', methods: ['GET'] }, true],
    ['a shorter pathPrefix', { pathPrefix: '/api' }, { pathPrefix: '/api/v1' }, true],
    ['an equal pathPrefix', { pathPrefix: '/api' }, { pathPrefix: '/api' }, true],
    ['a longer pathPrefix does not', { pathPrefix: '/api/v1' }, { pathPrefix: '/api' }, false],
    ['a pathPrefix against none does not', { pathPrefix: '/api' }, {}, false],
    ['a pathPrefix with more conditions after', { pathPrefix: '/s' }, { pathPrefix: '/s/', host: 'a.test', methods: ['GET'], header: { name: 'x' } }, true],
    ['a condition the later route lacks', { pathPrefix: '/s', methods: ['GET'] }, { pathPrefix: '/s/' }, false],
    ['the same host', { host: 'A.test' }, { host: 'a.TEST' }, true],
    ['another host', { host: 'a.test' }, { host: 'b.test' }, false],
    ['a wildcard over a subdomain', { host: '*.example.com' }, { host: 'a.b.example.com' }, true],
    ['a wildcard never over the bare domain', { host: '*.example.com' }, { host: 'example.com' }, false],
    ['a wildcard over a narrower wildcard', { host: '*.example.com' }, { host: '*.b.example.com' }, true],
    ['an equal wildcard', { host: '*.example.com' }, { host: '*.example.com' }, true],
    ['a narrower wildcard does not cover a wider one', { host: '*.b.example.com' }, { host: '*.example.com' }, false],
    ['an exact host does not cover a wildcard', { host: 'a.example.com' }, { host: '*.example.com' }, false],
    ['a wildcard does not cover a look-alike', { host: '*.example.com' }, { host: 'badexample.com' }, false],
    ['methods: a subset', { methods: ['GET', 'HEAD', 'POST'] }, { methods: ['GET', 'HEAD'] }, true],
    ['methods: not a subset', { methods: ['GET'] }, { methods: ['GET', 'POST'] }, false],
    ['methods against none', { methods: ['GET'] }, {}, false],
    ['header presence over a value', { header: { name: 'X-Beta' } }, { header: { name: 'x-beta', value: '1' } }, true],
    ['header presence over presence', { header: { name: 'x-beta' } }, { header: { name: 'x-beta' } }, true],
    ['header value over the same value', { header: { name: 'x-beta', value: '1' } }, { header: { name: 'x-beta', value: '1' } }, true],
    ['header value over another value', { header: { name: 'x-beta', value: '1' } }, { header: { name: 'x-beta', value: '2' } }, false],
    ['header value over presence', { header: { name: 'x-beta', value: '1' } }, { header: { name: 'x-beta' } }, false],
    ['another header', { header: { name: 'x-a' } }, { header: { name: 'x-b' } }, false],
  ])('%s', (_name, earlier, later, expected) => {
    expect(shadowed(r(earlier), r(later))).toEqual(expected ? [{ index: 1, by: 0 }] : [])
  })

  it('lists each shadowed route once, with the first route that shadows it', () => {
    expect(shadowed(r({ pathPrefix: '/a' }), r({ pathPrefix: '/b' }), r({ pathPrefix: '/a/x' }), r({ pathPrefix: '/' }), r({ pathPrefix: '/b/c' }))).toEqual([
      { index: 2, by: 0 },
      { index: 4, by: 1 },
    ])
  })
})
