import { describe, expect, it } from 'vitest'
import { configProblems, validConfig } from '../helpers/config.js'
import { resolveConfig, resolveUpstream } from '../../src/config/load.js'
import { poolConfigs } from '../../src/config/pools.js'

const valid = validConfig
const problems = configProblems
const pool = (id: string, extra: Record<string, unknown> = {}) => ({ upstreams: [{ id, url: `http://${id}:8080` }], ...extra })

describe('config: pools', () => {
  it('defaults to no pools and no routes; an old config keeps its upstream entries as they were', () => {
    const cfg = resolveConfig(valid)
    expect(cfg.pools).toEqual({})
    expect(cfg.routes).toEqual([])
    expect(cfg.upstreams[0]).toEqual({ id: 'b1', url: 'http://127.0.0.1:3001', weight: 1, backup: false })
    expect(poolConfigs(cfg)).toEqual([{ name: 'default', upstreams: cfg.upstreams, balancer: cfg.balancer }])
  })

  it('resolves each pool balancer into the top-level one with the pool keys replacing it', () => {
    const cfg = resolveConfig({
      ...valid,
      balancer: { algorithm: 'p2c', retries: 3, passive: { failures: 7 }, healthCheck: { path: '/ready' } },
      pools: {
        api: pool('api1', { balancer: { algorithm: 'least-connections', passive: { cooldownMs: 10 } } }),
        plain: pool('s1'),
        nocheck: pool('n1', { balancer: { healthCheck: null, retries: 0 } }),
        check: pool('c1', { balancer: { healthCheck: {} } }),
      },
    })
    expect(cfg.pools['api']!.balancer).toEqual({
      ...cfg.balancer,
      algorithm: 'least-connections',
      // Given whole: its own defaults, not the top-level failures: 7.
      passive: { failures: 3, cooldownMs: 10, maxCooldownMs: 60000, statuses: [] },
    })
    expect(cfg.pools['plain']!.balancer).toEqual(cfg.balancer)
    expect(cfg.pools['nocheck']!.balancer).toMatchObject({ healthCheck: null, retries: 0, algorithm: 'p2c' })
    expect(cfg.pools['check']!.balancer.healthCheck).toEqual({ path: '/health', intervalMs: 2000, timeoutMs: 1000, expectStatus: 200, rise: 2, fall: 3 })
    expect(cfg.pools['api']!.upstreams[0]).toEqual({ id: 'api1', url: 'http://api1:8080', weight: 1, backup: false })
    expect(Object.isFrozen(cfg.pools['api']!.balancer)).toBe(true)
    expect(poolConfigs(cfg).map((p) => p.name)).toEqual(['default', 'api', 'plain', 'nocheck', 'check'])
    expect(poolConfigs(cfg)[1]).toEqual({ name: 'api', ...cfg.pools['api'] })
  })

  it('renames an inherited insert cookie per pool; a pool of its own gets strata_srv_<pool>', () => {
    const cfg = resolveConfig({
      ...valid,
      balancer: { sticky: { mode: 'insert', secret: 's'.repeat(16) } },
      pools: {
        api: pool('a1'),
        own: pool('o1', { balancer: { sticky: { mode: 'insert' } } }),
        named: pool('n1', { balancer: { sticky: { mode: 'insert', cookie: 'n' } } }),
        off: pool('f1', { balancer: { sticky: null } }),
      },
    })
    expect(cfg.balancer.sticky).toEqual({ mode: 'insert', cookie: 'strata_srv', secret: 's'.repeat(16) })
    expect(cfg.pools['api']!.balancer.sticky).toEqual({ mode: 'insert', cookie: 'strata_srv_api', secret: 's'.repeat(16) })
    expect(cfg.pools['own']!.balancer.sticky).toEqual({ mode: 'insert', cookie: 'strata_srv_own' })
    expect(cfg.pools['named']!.balancer.sticky).toMatchObject({ cookie: 'n' })
    expect(cfg.pools['off']!.balancer.sticky).toBeNull()
  })

  it('keeps an inherited learn cookie (it is the application session cookie) and checks learn mode per pool', () => {
    const cfg = resolveConfig({ ...valid, balancer: { sticky: { mode: 'learn', cookie: 'sid' } }, pools: { api: pool('a1') } })
    expect(cfg.pools['api']!.balancer.sticky).toEqual({ mode: 'learn', cookie: 'sid', ttlMs: 3600000 })
    expect(problems({ ...valid, pools: { api: pool('a1', { balancer: { sticky: { mode: 'learn' } } }) } })).toEqual([
      "pools.api.balancer.sticky.cookie: is required in mode \"learn\" (the application's session cookie)",
    ])
    expect(problems({ ...valid, pools: { api: pool('a1', { balancer: { sticky: { mode: 'learn', cookie: 'sid', maxIdleMs: 5 } } }) } })).toEqual([
      'pools.api.balancer.sticky.maxIdleMs: only for mode "insert"',
    ])
    expect(problems({ ...valid, pools: { api: pool('a1', { balancer: { sticky: { mode: 'insert', ttlMs: 5 } } }) } })[0]).toMatch(/^pools\.api\.balancer\.sticky\.ttlMs: only for mode "learn"/)
  })

  it('refuses two pools that would share one insert cookie', () => {
    expect(problems({ ...valid, balancer: { sticky: { mode: 'insert' } }, pools: { api: pool('a1', { balancer: { sticky: { mode: 'insert', cookie: 'strata_srv' } } }) } })).toEqual([
      'pools.api.balancer.sticky.cookie: "strata_srv" is also the sticky cookie of pool "default" (each pool needs its own)',
    ])
  })

  it.each<[string, unknown, string]>([
    ['an empty pool', { pools: { api: { upstreams: [] } } }, 'pools.api.upstreams: is empty: a pool needs at least one upstream'],
    ['a pool without upstreams', { pools: { api: {} } }, 'pools.api.upstreams: is required'],
    ['the reserved name', { pools: { default: pool('d1') } }, 'pools.default: the name "default" is reserved (the default pool is the top-level upstreams and balancer)'],
    ['a bad name', { pools: { 'a b': pool('d1') } }, 'pools["a b"]: a pool name is 1 to 64 letters, digits, \'.\', \'_\' or \'-\''],
    ['an id used by the default pool', { pools: { api: pool('b1') } }, 'pools.api.upstreams[0].id: duplicate id "b1" (also upstreams[0]; upstream ids are unique across every pool)'],
    ['an id used by another pool', { pools: { a: pool('x1'), b: pool('x1') } }, 'pools.b.upstreams[0].id: duplicate id "x1" (also pools.a.upstreams[0]; upstream ids are unique across every pool)'],
    ['a duplicate within a pool', { pools: { a: { upstreams: [{ id: 'x', url: 'http://a' }, { id: 'x', url: 'http://b' }] } } }, 'pools.a.upstreams[1].id: duplicate id "x"'],
    ['an all-backup pool', { pools: { a: { upstreams: [{ id: 'x', url: 'http://a', backup: true }] } } }, 'pools.a.upstreams: at least one upstream must not be a backup'],
    ['a bad pool upstream url', { pools: { a: { upstreams: [{ id: 'x', url: 'ftp://a' }] } } }, 'pools.a.upstreams[0].url: must be an http(s) URL'],
    ['an unknown pool key', { pools: { a: { ...pool('x'), weight: 3 } } }, 'pools.a.weight: unknown key'],
    ['an unknown pool balancer key', { pools: { a: pool('x', { balancer: { algo: 'p2c' } }) } }, 'pools.a.balancer.algo: unknown key'],
    ['a bad pool algorithm', { pools: { a: pool('x', { balancer: { algorithm: 'fastest' } }) } }, 'pools.a.balancer.algorithm: must be one of "round-robin", "weighted", "least-connections", "random", "p2c", "consistent-hash"'],
    ['resolveEveryMs without resolve', { upstreams: [{ id: 'w', url: 'http://web:3001', resolveEveryMs: 2000 }] }, 'upstreams[0].resolveEveryMs: only with "resolve": true'],
    ['resolveEveryMs in a pool without resolve', { pools: { a: { upstreams: [{ id: 'w', url: 'http://web:3001', resolve: false, resolveEveryMs: 2000 }] } } }, 'pools.a.upstreams[0].resolveEveryMs: only with "resolve": true'],
    ['resolveEveryMs too small', { upstreams: [{ id: 'w', url: 'http://web:3001', resolve: true, resolveEveryMs: 10 }] }, 'upstreams[0].resolveEveryMs: must be >= 100'],
  ])('names the bad field: %s', (_name, input, expected) => {
    expect(problems({ ...valid, ...(input as object) })).toContain(expected)
  })

  it('resolves its own output to the same config (a worker or a reload may see the effective form again)', () => {
    const input = {
      admin: { token: 't' },
      ...valid,
      balancer: { sticky: { mode: 'insert' } },
      pools: { api: pool('a1'), own: pool('o1', { balancer: { sticky: { mode: 'insert' }, passive: {} } }) },
      routes: [{ match: { pathPrefix: '/api/' }, pool: 'api' }],
    }
    const once = resolveConfig(input)
    expect(resolveConfig(JSON.parse(JSON.stringify(once)))).toEqual(once)
  })

  it('takes resolve and resolveEveryMs without adding a default', () => {
    const cfg = resolveConfig({ upstreams: [{ id: 'web', url: 'http://web:3001', resolve: true }, { id: 'w2', url: 'http://web2:3001', resolve: true, resolveEveryMs: 2000 }] })
    expect(cfg.upstreams[0]).toEqual({ id: 'web', url: 'http://web:3001', weight: 1, backup: false, resolve: true })
    expect(cfg.upstreams[1]!.resolveEveryMs).toBe(2000)
  })

  it('resolveUpstream (POST /upstreams) adds servers: a name to resolve is refused, saying where it belongs', () => {
    expect(resolveUpstream({ id: 'web', url: 'http://web:3001', resolve: true, resolveEveryMs: 500 })).toEqual({
      problems: ['resolve: names to resolve are configured in the config file and applied by a reload; POST adds one server'],
    })
    expect(resolveUpstream({ id: 'web', url: 'http://web:3001', resolve: false })).toEqual({ upstream: { id: 'web', url: 'http://web:3001', weight: 1, backup: false, resolve: false } })
    expect(resolveUpstream({ id: 'web', url: 'http://web:3001', resolveEveryMs: 500 })).toEqual({ problems: ['resolveEveryMs: only with "resolve": true'] })
    expect(resolveUpstream({ id: 'web', url: 'http://web:3001', resolve: 'yes' })).toEqual({ problems: ['resolve: must be boolean'] })
  })
})

describe('config: routes', () => {
  const pools = { api: pool('api1'), static: pool('s1') }
  const withRoutes = (routes: unknown[], extra: Record<string, unknown> = {}) => ({ ...valid, pools, routes, ...extra })

  it('keeps routes as given, in order', () => {
    const routes = [
      { match: { host: '*.example.com', methods: ['GET', 'HEAD'] }, pool: 'api', cache: { defaultTtl: 60, enabled: true }, esi: { enabled: false } },
      { match: { pathPrefix: '/static/', header: { name: 'x-beta' } }, pool: 'static', stripPrefix: '/static', addPrefix: '/v2' },
      { match: {}, pool: 'default' },
    ]
    expect(resolveConfig(withRoutes(routes)).routes).toEqual(routes)
  })

  it.each<[string, unknown[], Record<string, unknown>, string]>([
    ['an unknown pool', [{ match: {}, pool: 'apo' }], {}, 'routes[0].pool: unknown pool "apo" (known: default, api, static)'],
    ['a route without match', [{ pool: 'api' }], {}, 'routes[0].match: is required'],
    ['an unknown match key', [{ match: { path: '/x' } }], {}, 'routes[0].match.path: unknown key'],
    ['a host with a port', [{ match: { host: 'a.test:80' } }], {}, 'routes[0].match.host: must be a hostname ("www.example.com") or "*.example.com" for any subdomain, without a port'],
    ['a host pattern in the middle', [{ match: { host: 'a.*.test' } }], {}, 'routes[0].match.host: must be a hostname ("www.example.com") or "*.example.com" for any subdomain, without a port'],
    ['a bare wildcard', [{ match: { host: '*' } }], {}, 'routes[0].match.host: must be a hostname ("www.example.com") or "*.example.com" for any subdomain, without a port'],
    ['a pathPrefix without /', [{ match: { pathPrefix: 'api' } }], {}, "routes[0].match.pathPrefix: must start with '/'"],
    ['a lower-case method', [{ match: { methods: ['get'] } }], {}, 'routes[0].match.methods[0]: must be an upper-case method name ("GET")'],
    ['no methods', [{ match: { methods: [] } }], {}, 'routes[0].match.methods: must NOT have fewer than 1 items'],
    ['a header without name', [{ match: { header: { value: '1' } } }], {}, 'routes[0].match.header.name: is required'],
    ['a header name with a space', [{ match: { header: { name: 'x beta' } } }], {}, 'routes[0].match.header.name: must be a header field name'],
    ['a stripPrefix without /', [{ match: {}, stripPrefix: 'api' }], {}, "routes[0].stripPrefix: must start with '/' and hold no '?' or '#'"],
    ['an addPrefix with a query', [{ match: {}, addPrefix: '/v2?x' }], {}, "routes[0].addPrefix: must start with '/' and hold no '?' or '#'"],
    ['a stripPrefix of /', [{ match: {}, stripPrefix: '/' }], {}, 'routes[0].stripPrefix: "/" strips nothing'],
    [
      'a stripPrefix the pathPrefix never begins with',
      [{ match: { pathPrefix: '/api/' }, stripPrefix: '/v1' }],
      {},
      'routes[0].stripPrefix: strips nothing: every path this route matches starts with match.pathPrefix "/api/", which does not begin with the segment(s) "/v1"',
    ],
    [
      'a stripPrefix cut mid-segment by the pathPrefix',
      [{ match: { pathPrefix: '/apix' }, stripPrefix: '/api' }],
      {},
      'routes[0].stripPrefix: strips nothing: every path this route matches starts with match.pathPrefix "/apix", which does not begin with the segment(s) "/api"',
    ],
    ['an unknown cache key', [{ match: {}, cache: { ttl: 5 } }], {}, 'routes[0].cache.ttl: unknown key'],
    ['a negative cache ttl', [{ match: {}, cache: { defaultTtl: -1 } }], {}, 'routes[0].cache.defaultTtl: must be >= 0'],
    ['route esi where ESI is off', [{ match: {}, esi: { enabled: true } }], { esi: { enabled: false } }, 'routes[0].esi.enabled: needs esi.enabled (ESI is off for the whole proxy)'],
    [
      'a route shadowed by a shorter pathPrefix',
      [{ match: { pathPrefix: '/api' }, pool: 'api' }, { match: { pathPrefix: '/api/v2', methods: ['GET'] }, pool: 'static' }],
      {},
      'routes[1]: never matches: routes[0] matches every request it would (routes[0] needs only pathPrefix "/api")',
    ],
    [
      'a route shadowed by a catch-all',
      [{ match: {} }, { match: { host: 'a.test' }, pool: 'api' }],
      {},
      'routes[1]: never matches: routes[0] matches every request it would (routes[0] has no condition)',
    ],
    [
      'a route shadowed by a wildcard host and a method set',
      [{ match: { host: '*.example.com', methods: ['GET', 'HEAD'] } }, { match: { host: 'a.example.com', methods: ['GET'], header: { name: 'x' } } }],
      {},
      'routes[1]: never matches: routes[0] matches every request it would (routes[0] needs only host "*.example.com" and methods GET, HEAD)',
    ],
  ])('names the bad field: %s', (_name, routes, extra, expected) => {
    expect(problems(withRoutes(routes, extra))).toContain(expected)
  })

  it('accepts the usual route shapes', () => {
    for (const match of [{ host: 'example.com' }, { host: '*.example.com' }, { host: '127.0.0.1' }, { host: '[::1]' }, { host: 'web_1' }, { pathPrefix: '/' }, { methods: ['GET', 'M-SEARCH'] }]) {
      expect(() => resolveConfig(withRoutes([{ match }])), JSON.stringify(match)).not.toThrow()
    }
    for (const [pathPrefix, stripPrefix] of [['/api/', '/api'], ['/api', '/api'], ['/api/', '/api/'], ['/a', '/api'], ['/api/v1/', '/api']]) {
      expect(() => resolveConfig(withRoutes([{ match: { pathPrefix }, stripPrefix }])), `${pathPrefix} ${stripPrefix}`).not.toThrow()
    }
  })

  it('reports every route problem at once, with the pool problems', () => {
    const list = problems({ ...valid, pools: { api: { upstreams: [] } }, routes: [{ match: {}, pool: 'nope' }, { match: {}, pool: 'api', stripPrefix: 'x' }] })
    expect(list).toContain('pools.api.upstreams: is empty: a pool needs at least one upstream')
    expect(list).toContain('routes[0].pool: unknown pool "nope" (known: default, api)')
    expect(list).toContain("routes[1].stripPrefix: must start with '/' and hold no '?' or '#'")
  })
})
