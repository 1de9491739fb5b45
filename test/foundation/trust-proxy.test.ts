import { describe, expect, it } from 'vitest'
import { compileTrustProxy, trustEntryProblem } from '../../src/core/trust-proxy.js'
import { resolveConfig, ConfigError } from '../../src/config/load.js'
import { clientRequestHeaders, stripHopByHop } from '../../src/core/headers.js'

describe('trustProxy', () => {
  it('matches exact addresses and CIDR ranges, IPv4-mapped IPv6 peers as IPv4', () => {
    const t = compileTrustProxy(['127.0.0.1', '10.0.0.0/8', '2001:db8::/32'])
    expect(t.trusts('127.0.0.1')).toBe(true)
    expect(t.trusts('::ffff:127.0.0.1')).toBe(true)
    expect(t.trusts('10.200.3.4')).toBe(true)
    expect(t.trusts('::ffff:10.200.3.4')).toBe(true)
    expect(t.trusts('11.0.0.1')).toBe(false)
    expect(t.trusts('2001:db8:1::5')).toBe(true)
    expect(t.trusts('2001:db9::5')).toBe(false)
    expect(t.trusts('not-an-ip')).toBe(false)
    expect(t.trusts(undefined)).toBe(false)
    // The cached last decision does not stick to the wrong peer.
    expect(t.trusts('10.0.0.1')).toBe(true)
    expect(t.trusts('192.168.0.1')).toBe(false)
    expect(t.trusts('10.0.0.1')).toBe(true)
  })

  it('trusts nobody by default', () => {
    expect(compileTrustProxy([]).trusts('127.0.0.1')).toBe(false)
    expect(resolveConfig({ upstreams: [{ id: 'b1', url: 'http://127.0.0.1:1' }] }).trustProxy).toEqual([])
  })

  it('rejects entries that are not addresses or ranges, naming them', () => {
    expect(trustEntryProblem('10.0.0.0/8')).toBeUndefined()
    expect(trustEntryProblem('::1')).toBeUndefined()
    expect(trustEntryProblem('10.0.0.0/33')).toBeDefined()
    expect(trustEntryProblem('example.com')).toBeDefined()
    try {
      resolveConfig({ upstreams: [{ id: 'b1', url: 'http://127.0.0.1:1' }], trustProxy: ['127.0.0.1', 'proxy.local', '10.0.0.0/99'] })
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError)
      expect((err as Error).message).toContain('trustProxy[1]')
      expect((err as Error).message).toContain('trustProxy[2]')
      expect((err as Error).message).not.toContain('trustProxy[0]')
    }
  })
})

describe('client request headers', () => {
  it('Connection never removes Host', () => {
    const out = stripHopByHop({ host: 'victim.example', connection: 'close, host', 'x-a': '1' })
    expect(out).toEqual({ host: 'victim.example', 'x-a': '1' })
  })

  it('drops what Connection names before the cache sees it, keeping Host and body framing', () => {
    const h = { host: 'a', connection: 'Accept-Language, host, content-length', 'accept-language': 'fr', 'content-length': '3' }
    expect(clientRequestHeaders(h, false)).toEqual({ host: 'a', connection: 'Accept-Language, host, content-length', 'content-length': '3' })
  })

  it('drops unkeyed fields always, forwarding fields unless trusted, and returns the same object when clean', () => {
    const clean = { host: 'a', 'x-forwarded-for': '1.2.3.4', connection: 'keep-alive' }
    expect(clientRequestHeaders(clean, true)).toBe(clean)
    const dirty = { host: 'a', 'x-host': 'evil', 'x-original-url': '/admin', 'x-rewrite-url': '/admin', forwarded: 'host=evil', 'x-forwarded-host': 'evil', 'x-forwarded-for': '1.2.3.4' }
    expect(clientRequestHeaders(dirty, false)).toEqual({ host: 'a' })
    expect(clientRequestHeaders(dirty, true)).toEqual({ host: 'a', forwarded: 'host=evil', 'x-forwarded-host': 'evil', 'x-forwarded-for': '1.2.3.4' })
  })
})
