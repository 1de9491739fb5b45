import { describe, expect, it } from 'vitest'
import { isStrataError } from '../../src/core/errors.js'
import { assemble, CacheControlFold, compile, parsePartLifetime, type FragmentFetcher, type FragmentResponse } from '../../src/esi/index.js'
import { baseConfig, esiFragment, run, tableFetcher } from './helpers.js'

const page = new URL('http://site.test/page')
const ok = (body: string, headers: Record<string, string> = {}): FragmentResponse => ({ statusCode: 200, headers, body: Buffer.from(body) })

/** A fetcher whose answers the test releases by hand; records in-flight counts and signals. */
function manualFetcher() {
  const waiting = new Map<string, { resolve: (r: FragmentResponse) => void; signal: AbortSignal }>()
  let inFlight = 0
  let maxInFlight = 0
  const calls: string[] = []
  const fetch: FragmentFetcher = (url, init) => {
    calls.push(url.pathname)
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    return new Promise<FragmentResponse>((resolve, reject) => {
      waiting.set(url.pathname, { resolve: (r) => (inFlight--, resolve(r)), signal: init.signal })
      init.signal.addEventListener('abort', () => (inFlight--, reject(init.signal.reason)), { once: true })
    })
  }
  return {
    fetch,
    calls,
    waiting,
    get maxInFlight() {
      return maxInFlight
    },
    answer(path: string, body = path) {
      const w = waiting.get(path)
      if (!w) throw new Error(`${path} was not requested`)
      w.resolve(ok(body))
    },
  }
}

const tick = () => new Promise((r) => setImmediate(r))

describe('assembly: limits', () => {
  it('cuts include cycles (a fragment including itself, a page including itself)', async () => {
    const { body, result, calls } = await run('[<esi:include src="/loop"/>|<esi:include src="/page"/>]', {
      fragments: { '/loop': esiFragment('L<esi:include src="/loop"/>') },
    })
    expect(body).toBe('[L|]')
    expect(calls).toEqual(['/loop'])
    expect(result.failed.map((f) => f.reason).sort()).toEqual(['cycle', 'cycle'])
  })

  it('cuts an indirect cycle a → b → a', async () => {
    const { body, calls } = await run('<esi:include src="/a"/>', {
      fragments: { '/a': esiFragment('a(<esi:include src="/b"/>)'), '/b': esiFragment('b(<esi:include src="/a"/>)') },
    })
    expect(body).toBe('a(b())')
    expect(calls).toEqual(['/a', '/b'])
  })

  it('stops at esi.maxDepth and tells the fetcher the depth', async () => {
    const depths: number[] = []
    const fetch: FragmentFetcher = async (url, init) => {
      depths.push(init.depth)
      const n = Number(url.pathname.slice(2))
      const body = `d${n}<esi:include src="/d${n + 1}"/>`
      return { ...ok(body), program: compile(body) }
    }
    const { body, result } = await run('<esi:include src="/d1"/>', { fetch, config: { maxDepth: 3 } })
    expect(body).toBe('d1d2d3')
    expect(depths).toEqual([1, 2, 3])
    expect(result.failed).toMatchObject([{ reason: 'depth', src: '/d4', depth: 4 }])
  })

  it('maxDepth 0 allows no includes', async () => {
    const { body, calls } = await run('x<esi:include src="/a"/>', { fragments: { '/a': 'A' }, config: { maxDepth: 0 } })
    expect(body).toBe('x')
    expect(calls).toEqual([])
  })

  it('stops fetching after esi.maxIncludes per page (all depths)', async () => {
    const { body, result, calls } = await run('<esi:include src="/a"/><esi:include src="/b"/><esi:include src="/c"/><esi:include src="/d"/>', {
      fragments: { '/a': 'A', '/b': esiFragment('B<esi:include src="/c"/>'), '/c': 'C', '/d': 'D' },
      config: { maxIncludes: 3 },
    })
    expect(calls).toHaveLength(3)
    expect(body).toBe('ABC')
    expect(result.failed.map((f) => f.reason)).toEqual(['limit', 'limit'])
    expect(result.fetches).toBe(3)
  })

  it('never runs more than esi.maxConcurrentIncludes fetches at once, and keeps order', async () => {
    const m = manualFetcher()
    const template = ['/1', '/2', '/3', '/4', '/5', '/6'].map((p) => `<esi:include src="${p}"/>`).join(',')
    const a = assemble(compile(template), { pageUrl: page, headers: {}, fetch: m.fetch, config: { ...baseConfig, maxConcurrentIncludes: 2 } })
    const out = a.toBuffer()
    await tick()
    expect(m.calls).toEqual(['/1', '/2'])
    m.answer('/2')
    await tick()
    expect(m.calls).toEqual(['/1', '/2', '/3'])
    for (const p of ['/1', '/3']) m.answer(p)
    await tick()
    for (const p of ['/4', '/5', '/6']) {
      await tick()
      m.answer(p)
    }
    expect((await out).toString()).toBe('/1,/2,/3,/4,/5,/6')
    expect(m.maxInFlight).toBe(2)
  })
})

describe('assembly: failures and timeouts', () => {
  it('times out a fragment after esi.fragmentTimeoutMs and aborts its fetch', async () => {
    const m = manualFetcher()
    const started = Date.now()
    const a = assemble(compile('[<esi:include src="/hang"/>]'), { pageUrl: page, headers: {}, fetch: m.fetch, config: { ...baseConfig, fragmentTimeoutMs: 60 } })
    expect((await a.toBuffer()).toString()).toBe('[]')
    expect(Date.now() - started).toBeLessThan(1000)
    expect(m.waiting.get('/hang')!.signal.aborted).toBe(true)
    expect((await a.result).failed).toMatchObject([{ reason: 'timeout', handledBy: 'ignored' }])
  })

  it('maxwait overrides the configured timeout per include, even if the fetcher ignores its signal', async () => {
    const fetch: FragmentFetcher = (url) => (url.pathname === '/hang' ? new Promise(() => {}) : Promise.resolve(ok('F')))
    const started = Date.now()
    const { body, result } = await run('<esi:include src="/hang" maxwait="50" alt="/f"/>', { fetch, config: { fragmentTimeoutMs: 30_000 } })
    expect(body).toBe('F')
    expect(Date.now() - started).toBeLessThan(2000)
    expect(result.failed).toMatchObject([{ reason: 'timeout', handledBy: 'alt' }])
  })

  it('a rejected fetch is a failure', async () => {
    const fetch: FragmentFetcher = async () => {
      throw new Error('ECONNREFUSED')
    }
    const { body, result } = await run('[<esi:include src="/x"/>]', { fetch })
    expect(body).toBe('[]')
    expect(result.failed).toMatchObject([{ reason: 'error', detail: 'ECONNREFUSED' }])
  })

  it('a refused src never reaches the fetcher', async () => {
    const { body, result, calls } = await run('[<esi:include src="http://169.254.169.254/latest/meta-data/"/><esi:include src="http://evil.test/"/>]', {
      config: { allowedHosts: ['169.254.169.254'] },
    })
    expect(body).toBe('[]')
    expect(calls).toEqual([])
    expect(result.failed.map((f) => f.reason)).toEqual(['refused', 'refused'])
  })

  it('onError "fail" before the first byte: head reports the error, iteration throws', async () => {
    const a = assemble(compile('<esi:include src="/x"/>tail'), { pageUrl: page, headers: {}, fetch: tableFetcher({}), config: { ...baseConfig, onError: 'fail' } })
    const head = await a.head
    expect(isStrataError(head.error, 'STRATA_ESI_FRAGMENT_FAILED')).toBe(true)
    expect(head.error?.statusCode).toBe(502)
    await expect(a.toBuffer()).rejects.toMatchObject({ code: 'STRATA_ESI_FRAGMENT_FAILED' })
    expect((await a.result).fatal?.code).toBe('STRATA_ESI_FRAGMENT_FAILED')
  })

  it('onError "fail" after bytes were ready: head is fine, iteration yields the prefix then throws, other fetches are aborted', async () => {
    const m = manualFetcher()
    const a = assemble(compile('head<esi:include src="/slow"/><esi:include src="/bad"/>'), { pageUrl: page, headers: {}, fetch: m.fetch, config: { ...baseConfig, onError: 'fail' } })
    expect(await a.head).toEqual({})
    const chunks: string[] = []
    const iterating = (async () => {
      for await (const c of a) chunks.push(c.toString())
    })()
    await tick()
    m.waiting.get('/bad')!.resolve({ statusCode: 503, headers: {}, body: Buffer.alloc(0) })
    await expect(iterating).rejects.toMatchObject({ code: 'STRATA_ESI_FRAGMENT_FAILED' })
    expect(chunks).toEqual(['head'])
    expect(m.waiting.get('/slow')!.signal.aborted).toBe(true)
  })

  it.each([
    ['alt', '<esi:include src="/x" alt="/a"/>', 'A'],
    ['onerror=continue', '<esi:include src="/x" onerror="continue"/>', ''],
    ['try/except', '<esi:try><esi:attempt><esi:include src="/x"/></esi:attempt><esi:except>E</esi:except></esi:try>', 'E'],
  ])('onError "fail" is not triggered when %s recovers', async (_n, template, expected) => {
    const { body, result } = await run(template, { fragments: { '/a': 'A' }, config: { onError: 'fail' } })
    expect(body).toBe(expected)
    expect(result.fatal).toBeUndefined()
    expect(result.anyFailed).toBe(true)
  })

  it('onError "fail": a broken nested fragment fails its include, so the parent alt recovers', async () => {
    const { body, result } = await run('<esi:include src="/outer" alt="/fallback"/>', {
      fragments: { '/outer': esiFragment('o<esi:include src="/missing"/>'), '/fallback': 'F' },
      config: { onError: 'fail' },
    })
    expect(body).toBe('F')
    expect(result.fatal).toBeUndefined()
    expect(result.failed.map((f) => [f.src, f.reason, f.handledBy])).toEqual([
      ['/missing', 'status', 'nested'],
      ['/outer', 'nested', 'alt'],
    ])
  })

  it('onError "continue": a broken nested fragment renders without the broken part', async () => {
    const { body } = await run('<esi:include src="/outer" alt="/fallback"/>', {
      fragments: { '/outer': esiFragment('o[<esi:include src="/missing"/>]'), '/fallback': 'F' },
    })
    expect(body).toBe('o[]')
  })
})

describe('assembly: what is fetched', () => {
  it('except includes are fetched only when the attempt fails', async () => {
    const t = '<esi:try><esi:attempt><esi:include src="/a"/></esi:attempt><esi:except><esi:include src="/e"/></esi:except></esi:try>'
    expect((await run(t, { fragments: { '/a': 'A', '/e': 'E' } })).calls).toEqual(['/a'])
    expect((await run(t, { fragments: { '/e': 'E' } })).calls).toEqual(['/a', '/e'])
  })

  it('a failing attempt include abandons the attempt at once: slow siblings are aborted, except is used', async () => {
    const m = manualFetcher()
    const t = '<esi:try><esi:attempt><esi:include src="/slow"/><esi:include src="/bad"/></esi:attempt><esi:except>E</esi:except></esi:try>'
    const a = assemble(compile(t), { pageUrl: page, headers: {}, fetch: m.fetch, config: baseConfig })
    const out = a.toBuffer()
    await tick()
    m.waiting.get('/bad')!.resolve({ statusCode: 500, headers: {}, body: Buffer.alloc(0) })
    expect((await out).toString()).toBe('E')
    expect(m.waiting.get('/slow')!.signal.aborted).toBe(true)
  })

  it('includes in branches not taken are never fetched', async () => {
    const t = '<esi:choose><esi:when test="1==2"><esi:include src="/no"/></esi:when><esi:otherwise><esi:include src="/yes"/></esi:otherwise></esi:choose><esi:remove><esi:include src="/removed"/></esi:remove>'
    const { calls } = await run(t, { fragments: { '/yes': 'Y' } })
    expect(calls).toEqual(['/yes'])
  })

  it('forwards only esi.forwardHeaders to the fetcher', async () => {
    let seen: Record<string, string> = {}
    const fetch: FragmentFetcher = async (_url, init) => {
      seen = init.headers
      return ok('x')
    }
    await run('<esi:include src="/a"/>', {
      fetch,
      headers: { cookie: ['a=1', 'b=2'], 'accept-language': 'de', authorization: 'Bearer t', 'x-secret': 's', host: 'site.test' },
    })
    expect(seen).toEqual({ cookie: 'a=1; b=2', 'accept-language': 'de', authorization: 'Bearer t' })
  })

  it('sends Cookie and Authorization only to the page origin and esi.credentialHosts', async () => {
    const seen = new Map<string, Record<string, string>>()
    const fetch: FragmentFetcher = async (url, init) => {
      seen.set(url.href, init.headers)
      return ok('x')
    }
    const headers = { cookie: 'sid=1', 'accept-language': 'de', authorization: 'Bearer t' }
    const t = '<esi:include src="/own"/><esi:include src="http://ads.test/a"/><esi:include src="http://cdn.test:8080/b"/><esi:include src="https://site.test/c"/>'
    const allowedHosts = ['ads.test', 'cdn.test:8080', 'site.test']
    await run(t, { fetch, headers, config: { allowedHosts } })
    expect(seen.get('http://site.test/own')).toEqual(headers)
    // Allowlisted third parties (and the page's host over another scheme) get no credentials by default.
    for (const href of ['http://ads.test/a', 'http://cdn.test:8080/b', 'https://site.test/c']) expect(seen.get(href)).toEqual({ 'accept-language': 'de' })
    seen.clear()
    await run(t, { fetch, headers, config: { allowedHosts, credentialHosts: ['cdn.test:8080'] } })
    expect(seen.get('http://site.test/own')).toEqual(headers)
    expect(seen.get('http://cdn.test:8080/b')).toEqual(headers)
    expect(seen.get('http://ads.test/a')).toEqual({ 'accept-language': 'de' })
  })

  it('abort() stops pending fetches and ends the result', async () => {
    const m = manualFetcher()
    const a = assemble(compile('x<esi:include src="/slow"/>'), { pageUrl: page, headers: {}, fetch: m.fetch, config: baseConfig })
    await tick()
    a.abort()
    const r = await a.result
    expect(r.aborted).toBe(true)
    expect(m.waiting.get('/slow')!.signal.aborted).toBe(true)
  })

  it('ctx.signal (client gone) aborts pending fetches', async () => {
    const m = manualFetcher()
    const client = new AbortController()
    const a = assemble(compile('x<esi:include src="/slow"/>'), { pageUrl: page, headers: {}, fetch: m.fetch, config: baseConfig, signal: client.signal })
    await tick()
    client.abort()
    expect((await a.result).aborted).toBe(true)
    expect(m.waiting.get('/slow')!.signal.aborted).toBe(true)
  })

  it('a consumer that stops reading early aborts what is still pending', async () => {
    const m = manualFetcher()
    const a = assemble(compile('x<esi:include src="/slow"/>'), { pageUrl: page, headers: {}, fetch: m.fetch, config: baseConfig })
    for await (const c of a) {
      expect(c.toString()).toBe('x')
      break
    }
    expect(m.waiting.get('/slow')!.signal.aborted).toBe(true)
  })

  it('one compiled program serves many requests (different variables, same program object)', async () => {
    const program = compile('<esi:vars>$(HTTP_COOKIE{u}|anon)</esi:vars>:<esi:include src="/u/$(HTTP_COOKIE{u}|anon)"/>')
    const frozen = JSON.stringify(program)
    const fetch: FragmentFetcher = async (url) => ok(url.pathname)
    const out = await Promise.all(
      ['ann', 'bob', undefined].map((u) =>
        assemble(program, { pageUrl: page, headers: u ? { cookie: `u=${u}` } : {}, fetch, config: baseConfig }).toBuffer(),
      ),
    )
    expect(out.map(String)).toEqual(['ann:/u/ann', 'bob:/u/bob', 'anon:/u/anon'])
    expect(JSON.stringify(program)).toBe(frozen)
  })

  it('toReadable streams the same bytes', async () => {
    const a = assemble(compile('a<esi:include src="/b"/>c'), { pageUrl: page, headers: {}, fetch: tableFetcher({ '/b': 'B' }), config: baseConfig })
    const chunks: Buffer[] = []
    for await (const c of a.toReadable()) chunks.push(c as Buffer)
    expect(Buffer.concat(chunks).toString()).toBe('aBc')
  })
})

describe('client Cache-Control', () => {
  it('takes the shortest lifetime of template and fragments', async () => {
    const { result } = await run('<esi:include src="/a"/><esi:include src="/b"/>', {
      cacheControl: 'public, max-age=300',
      fragments: { '/a': ok('A', { 'cache-control': 'max-age=60, s-maxage=600' }), '/b': ok('B', { 'cache-control': 'max-age=10' }) },
    })
    expect(result.cacheControl).toBe('max-age=10')
  })

  it('is private when any fragment is private, and counts nested fragments', async () => {
    const { result } = await run('<esi:include src="/a"/>', {
      cacheControl: 'max-age=300',
      fragments: { '/a': esiFragment('<esi:include src="/me"/>', { 'cache-control': 'max-age=60' }), '/me': ok('me', { 'cache-control': 'private, max-age=30' }) },
    })
    expect(result.cacheControl).toBe('private, max-age=30')
  })

  it('no-store anywhere makes the page private, no-store', async () => {
    const { result } = await run('<esi:include src="/a"/>', { cacheControl: 'max-age=300', fragments: { '/a': ok('A', { 'cache-control': 'no-store' }) } })
    expect(result.cacheControl).toBe('private, no-store')
  })

  it('parsePartLifetime and the fold', () => {
    expect(parsePartLifetime(undefined)).toEqual({ maxAge: 0, private: false, noStore: false, noCache: false })
    expect(parsePartLifetime('max-age=abc')).toMatchObject({ maxAge: 0 })
    expect(parsePartLifetime(['max-age=100', 'max-age=50'])).toMatchObject({ maxAge: 50 })
    expect(parsePartLifetime('no-cache, max-age=100')).toMatchObject({ maxAge: 0, noCache: true })
    const f = new CacheControlFold()
    f.add('max-age=100')
    f.add('no-cache')
    expect(f.toString()).toBe('no-cache, max-age=0')
  })
})

describe('writeTo', () => {
  it('awaits a sink that applies backpressure and keeps order', async () => {
    const a = assemble(compile('a<esi:include src="/b"/>c<esi:include src="/d"/>e'), { pageUrl: page, headers: {}, fetch: tableFetcher({ '/b': 'B', '/d': 'D' }), config: baseConfig })
    const got: string[] = []
    await a.writeTo(async (c) => {
      await new Promise((r) => setTimeout(r, 5))
      got.push(c.toString())
    })
    expect(got).toEqual(['a', 'B', 'c', 'D', 'e'])
  })
})
