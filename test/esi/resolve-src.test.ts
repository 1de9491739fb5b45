import { describe, expect, it } from 'vitest'
import { isForbiddenAddress, resolveIncludeSrc } from '../../src/esi/index.js'

const page = new URL('http://www.site.test/dir/page?x=1')
const allowed = ['api.example.com', '127.0.0.1:3001', '[::1]:8080', '169.254.169.254', 'metadata.google.internal']

const ok = (src: string) => {
  const r = resolveIncludeSrc(src, page, allowed)
  if (!(r instanceof URL)) throw new Error(`refused ${src}: ${r.error}`)
  return r.href
}
const refused = (src: string) => {
  const r = resolveIncludeSrc(src, page, allowed)
  return !(r instanceof URL)
}

describe('resolveIncludeSrc', () => {
  it('relative src resolves against the page URL', () => {
    expect(ok('/frag/a')).toBe('http://www.site.test/frag/a')
    expect(ok('frag?b=2')).toBe('http://www.site.test/dir/frag?b=2')
    expect(ok('../up')).toBe('http://www.site.test/up')
    expect(ok('/a#hash')).toBe('http://www.site.test/a')
  })

  it('absolute src on the page origin is allowed', () => {
    expect(ok('http://www.site.test/x')).toBe('http://www.site.test/x')
  })

  it('absolute src to allowlisted hosts', () => {
    expect(ok('https://api.example.com/v1/x')).toBe('https://api.example.com/v1/x')
    expect(ok('http://api.example.com:8443/x')).toBe('http://api.example.com:8443/x') // bare host: any port
    expect(ok('http://API.example.com./x')).toBe('http://api.example.com./x')
    expect(ok('http://127.0.0.1:3001/x')).toBe('http://127.0.0.1:3001/x')
    expect(ok('http://[::1]:8080/x')).toBe('http://[::1]:8080/x')
  })

  it.each([
    ['other host', 'http://evil.test/x'],
    ['protocol-relative other host', '//evil.test/x'],
    ['allowlisted host on another port', 'http://127.0.0.1:3002/x'],
    ['host:port entry needs the port', 'http://127.0.0.1/x'],
    ['ipv6 on another port', 'http://[::1]:9090/x'],
    ['suffix trick', 'http://api.example.com.evil.test/x'],
    ['userinfo trick', 'http://api.example.com@evil.test/x'],
    ['credentials', 'http://user:pw@api.example.com/x'],
    ['file scheme', 'file:///etc/passwd'],
    ['gopher', 'gopher://api.example.com/x'],
    ['javascript', 'javascript:alert(1)'],
    ['data', 'data:text/html,hi'],
    ['metadata IP even if allowlisted', 'http://169.254.169.254/latest/meta-data/'],
    ['metadata IP in decimal', 'http://2852039166/latest'],
    ['metadata IP in hex', 'http://0xa9fea9fe/'],
    ['metadata IP in octal parts', 'http://0251.0376.0251.0376/'],
    ['link-local v4', 'http://169.254.1.1/'],
    ['link-local v6', 'http://[fe80::1]/'],
    ['link-local v6 upper range', 'http://[febf::1]/'],
    ['mapped metadata v6', 'http://[::ffff:169.254.169.254]/'],
    ['AWS v6 metadata', 'http://[fd00:ec2::254]/'],
    ['GCP metadata name even if allowlisted', 'http://metadata.google.internal/computeMetadata/v1/'],
    ['this-network 0.0.0.0', 'http://0.0.0.0:3001/'],
    ['empty', '   '],
    ['garbage', 'http://[::1'],
  ])('refuses %s', (_name, src) => {
    expect(refused(src)).toBe(true)
  })

  it('a page on a link-local address cannot include its own origin either', () => {
    expect(resolveIncludeSrc('/x', new URL('http://169.254.169.254/'), [])).toHaveProperty('error')
  })

  it('isForbiddenAddress edge cases', () => {
    expect(isForbiddenAddress('169.253.255.255')).toBe(false)
    expect(isForbiddenAddress('169.255.0.0')).toBe(false)
    expect(isForbiddenAddress('[fec0::1]')).toBe(false)
    expect(isForbiddenAddress('[::ffff:10.0.0.1]')).toBe(false)
    expect(isForbiddenAddress('::169.254.0.1')).toBe(true)
    expect(isForbiddenAddress('100.100.100.200')).toBe(true)
    expect(isForbiddenAddress('example.com')).toBe(false)
  })

  it('remembers answers per base URL object and allowlist, never across them', () => {
    const base = new URL('http://a.test/p')
    const first = resolveIncludeSrc('/f', base, allowed)
    expect(resolveIncludeSrc('/f', base, allowed)).toBe(first)
    // Another URL object (even with the same href) or another allowlist resolves on its own.
    const other = resolveIncludeSrc('/f', new URL('http://a.test/p'), allowed)
    expect(other).not.toBe(first)
    expect((other as URL).href).toBe('http://a.test/f')
    expect(resolveIncludeSrc('http://api.example.com/x', base, [])).toHaveProperty('error')
    expect(resolveIncludeSrc('http://api.example.com/x', base, allowed)).toBeInstanceOf(URL)
  })
})
