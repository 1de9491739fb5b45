import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { Agent, request } from 'undici'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Balancer } from '../../src/balancer/index.js'
import { defaultResolver, memberUrl, staticUpstreams, UpstreamDiscovery, type Resolver } from '../../src/balancer/discovery.js'
import { createStrata, type Strata } from '../../src/app.js'
import type { UpstreamConfig } from '../../src/config/schema.js'
import { loadConfigFile, resolveConfig } from '../../src/config/load.js'
import { waitFor } from '../helpers/ports.js'
import { balancerConfig, req } from './fixtures.js'

/** A resolver whose answer the test sets; counts its calls per host. */
function fakeResolver(initial: string[] = []) {
  let answer: string[] | Error = initial
  const calls: string[] = []
  const resolver: Resolver = async (host) => {
    calls.push(host)
    if (answer instanceof Error) throw answer
    return answer.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))
  }
  return {
    resolver,
    calls,
    set(next: string[] | Error) {
      answer = next
    },
  }
}

/** A pino logger whose lines the test reads. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    },
  })
  return { logger: pino({ level: 'debug' }, sink), lines }
}

const web = (over: Partial<UpstreamConfig> = {}): UpstreamConfig => ({ id: 'web', url: 'http://web.test:3001', weight: 1, backup: false, resolve: true, ...over })
const ids = (b: Balancer) => b.list().map((u) => u.id).sort()

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!()
})

function setup(entries: UpstreamConfig[], answer: string[] = [], extra: Partial<ConstructorParameters<typeof Balancer>[0]> = {}) {
  const fake = fakeResolver(answer)
  const { logger, lines } = capturedLogger()
  const balancer = new Balancer({ upstreams: staticUpstreams(entries), config: balancerConfig(), ...extra })
  const discovery = new UpstreamDiscovery({ balancer, entries, resolver: fake.resolver, logger })
  cleanup.push(() => discovery.close(), () => balancer.close())
  return { fake, balancer, discovery, lines }
}

describe('member ids and urls', () => {
  it('the Balancer takes member ids, config-style ids as before, and refuses anything else', () => {
    const b = new Balancer({ upstreams: [], config: balancerConfig() })
    b.add({ id: 'web@10.0.3.7', url: 'http://10.0.3.7:3001', weight: 1, backup: false })
    b.add({ id: 'web@::1', url: 'http://[::1]:3001', weight: 1, backup: false })
    b.add({ id: 'plain.id-1', url: 'http://127.0.0.1:3001', weight: 1, backup: false })
    expect(ids(b)).toEqual(['plain.id-1', 'web@10.0.3.7', 'web@::1'])
    for (const id of ['web@host.example', 'web@', '@10.0.0.1', 'a b', 'web@10.0.0.1/x']) {
      expect(() => b.add({ id, url: 'http://127.0.0.1:3001', weight: 1, backup: false }), id).toThrow(/upstream id must match/)
    }
  })

  it('the member url is the entry url with the address as its host (IPv6 bracketed), port and path kept', () => {
    expect(memberUrl('http://web:3001', '10.0.3.7')).toBe('http://10.0.3.7:3001')
    expect(memberUrl('http://web:3001/', '10.0.3.7')).toBe('http://10.0.3.7:3001/')
    expect(memberUrl('https://web/app', '::1')).toBe('https://[::1]/app')
    expect(memberUrl('http://web:8080/base/?x=1', 'fe80::2')).toBe('http://[fe80::2]:8080/base/?x=1')
  })

  it('staticUpstreams keeps what is not resolved', () => {
    const entries = [web(), { id: 'b1', url: 'http://b1:3001', weight: 1, backup: false }, web({ id: 'w2', resolve: false })]
    expect(staticUpstreams(entries).map((e) => e.id)).toEqual(['b1', 'w2'])
  })
})

describe('UpstreamDiscovery with a fake resolver', () => {
  it('start() adds one member per address, with the entry url, weight and backup flag; static entries stay', async () => {
    const { balancer, discovery, fake } = setup([web({ weight: 3 }), { id: 'b1', url: 'http://127.0.0.1:9', weight: 1, backup: false }], ['10.0.3.7', '10.0.3.8', '10.0.3.7'])
    await discovery.start()
    expect(fake.calls).toEqual(['web.test'])
    expect(ids(balancer)).toEqual(['b1', 'web@10.0.3.7', 'web@10.0.3.8'])
    const m = balancer.get('web@10.0.3.8')!
    expect([m.url, m.weight, m.backup]).toEqual(['http://10.0.3.8:3001', 3, false])
    expect(discovery.members('web')).toEqual(['web@10.0.3.7', 'web@10.0.3.8'])
    expect(discovery.snapshot()).toMatchObject([{ id: 'web', host: 'web.test', resolveEveryMs: 5000, members: ['web@10.0.3.7', 'web@10.0.3.8'], failing: false, lastError: null }])
  })

  it('adds and removes members as the answer changes; the same answer in another order changes nothing', async () => {
    const { balancer, discovery, fake, lines } = setup([web()], ['10.0.0.1', '10.0.0.2'])
    await discovery.start()
    const logged = lines.length
    const add = vi.spyOn(balancer, 'add')
    const remove = vi.spyOn(balancer, 'remove')

    fake.set(['10.0.0.2', '10.0.0.1'])
    await discovery.resolveNow()
    expect(add).not.toHaveBeenCalled()
    expect(remove).not.toHaveBeenCalled()

    fake.set(['10.0.0.3', '10.0.0.2', '10.0.0.1'])
    await discovery.resolveNow()
    expect(ids(balancer)).toEqual(['web@10.0.0.1', 'web@10.0.0.2', 'web@10.0.0.3'])

    fake.set(['10.0.0.3', '10.0.0.1'])
    await discovery.resolveNow()
    expect(ids(balancer)).toEqual(['web@10.0.0.1', 'web@10.0.0.3'])
    expect(add.mock.calls.map((c) => c[0].id)).toEqual(['web@10.0.0.3'])
    expect(remove.mock.calls.map((c) => c[0])).toEqual(['web@10.0.0.2'])
    expect(lines.slice(logged).filter((l) => l['msg'] === 'upstream members changed').map((l) => [l['added'], l['removed']])).toEqual([
      [['10.0.0.3'], []],
      [[], ['10.0.0.2']],
    ])
  })

  it('a failed or empty answer keeps the last members and warns once; a good answer again logs the recovery', async () => {
    const { balancer, discovery, fake, lines } = setup([web()], ['10.0.0.1', '10.0.0.2'])
    await discovery.start()
    fake.set(new Error('getaddrinfo ENOTFOUND web.test'))
    await discovery.resolveNow()
    fake.set([])
    await discovery.resolveNow()
    fake.set(new Error('getaddrinfo EAI_AGAIN web.test'))
    await discovery.resolveNow()
    expect(ids(balancer)).toEqual(['web@10.0.0.1', 'web@10.0.0.2'])
    expect(discovery.snapshot()[0]).toMatchObject({ failing: true, lastError: 'getaddrinfo EAI_AGAIN web.test' })
    const warns = lines.filter((l) => l['level'] === 40)
    expect(warns).toHaveLength(1)
    expect(warns[0]).toMatchObject({ msg: 'upstream does not resolve: keeping the last answer', upstream: 'web', error: 'getaddrinfo ENOTFOUND web.test' })

    fake.set(['10.0.0.2', '10.0.0.9'])
    await discovery.resolveNow()
    expect(ids(balancer)).toEqual(['web@10.0.0.2', 'web@10.0.0.9'])
    expect(lines.filter((l) => l['msg'] === 'upstream resolves again')).toMatchObject([{ level: 30, upstream: 'web', members: ['web@10.0.0.2', 'web@10.0.0.9'] }])
    expect(discovery.snapshot()[0]).toMatchObject({ failing: false, lastError: null })
  })

  it('a name that does not resolve at start leaves the entry without members, start() still resolves, and a later answer adds them', async () => {
    const { balancer, discovery, fake, lines } = setup([web(), { id: 'b1', url: 'http://127.0.0.1:9', weight: 1, backup: false }])
    fake.set(new Error('getaddrinfo ENOTFOUND web.test'))
    await discovery.start()
    expect(ids(balancer)).toEqual(['b1'])
    expect(lines.filter((l) => l['level'] === 40).map((l) => l['msg'])).toEqual(['upstream does not resolve: it has no members until it does'])
    fake.set(['10.0.0.1'])
    await discovery.resolveNow()
    expect(ids(balancer)).toEqual(['b1', 'web@10.0.0.1'])
  })

  it('keeps only IP addresses from the answer (no zone ids, nothing that is not an address)', async () => {
    const { balancer, discovery } = setup([web()], ['10.0.0.1', 'fe80::1%eth0', 'not-an-ip', '::1'])
    await discovery.start()
    expect(ids(balancer)).toEqual(['web@10.0.0.1', 'web@::1'])
    expect(balancer.get('web@::1')!.url).toBe('http://[::1]:3001')
  })

  it('never runs two resolutions of one entry at once', async () => {
    let release!: (v: Array<{ address: string; family: number }>) => void
    let calls = 0
    const resolver: Resolver = () => {
      calls++
      return new Promise((resolve) => (release = resolve))
    }
    const balancer = new Balancer({ upstreams: [], config: balancerConfig() })
    const discovery = new UpstreamDiscovery({ balancer, entries: [web()], resolver })
    cleanup.push(() => discovery.close(), () => balancer.close())
    const started = discovery.start()
    const again = discovery.resolveNow()
    await Promise.resolve()
    expect(calls).toBe(1)
    release([{ address: '10.0.0.1', family: 4 }])
    await Promise.all([started, again])
    expect(ids(balancer)).toEqual(['web@10.0.0.1'])
  })

  it('a lookup that hangs times out as a failure, and is not started again while it still runs', async () => {
    let release!: (v: Array<{ address: string; family: number }>) => void
    let calls = 0
    const resolver: Resolver = () => {
      calls++
      return new Promise((resolve) => (release = resolve))
    }
    const balancer = new Balancer({ upstreams: [], config: balancerConfig() })
    const discovery = new UpstreamDiscovery({ balancer, entries: [web()], resolver, timeoutMs: 20 })
    cleanup.push(() => discovery.close(), () => balancer.close())
    await discovery.start()
    expect(discovery.snapshot()[0]).toMatchObject({ failing: true, lastError: 'no answer within 20 ms', members: [] })
    await discovery.resolveNow()
    expect(calls).toBe(1)
    release([{ address: '10.0.0.1', family: 4 }])
    // The next round joins the lookup that was still running, and takes its late answer.
    await discovery.resolveNow()
    expect(ids(balancer)).toEqual(['web@10.0.0.1'])
    expect(calls).toBe(1)
  })

  it('re-resolves every resolveEveryMs on its own', async () => {
    const { balancer, discovery, fake } = setup([web({ resolveEveryMs: 100 })], ['10.0.0.1'])
    await discovery.start()
    fake.set(['10.0.0.1', '10.0.0.2'])
    await waitFor(() => ids(balancer).length === 2, 5000)
    fake.set(['10.0.0.2'])
    await waitFor(() => ids(balancer).length === 1, 5000)
    expect(ids(balancer)).toEqual(['web@10.0.0.2'])
  })

  it('leaves upstreams that an operator added alone', async () => {
    const { balancer, discovery, fake } = setup([web()], ['10.0.0.1'])
    await discovery.start()
    balancer.add({ id: 'extra', url: 'http://127.0.0.1:9', weight: 1, backup: false })
    fake.set(['10.0.0.2'])
    await discovery.resolveNow()
    expect(ids(balancer)).toEqual(['extra', 'web@10.0.0.2'])
  })

  it('removing a member moves its sticky users at once', async () => {
    const { balancer, discovery, fake } = setup([web()], ['10.0.0.1', '10.0.0.2'], {
      config: balancerConfig({ sticky: { mode: 'insert', cookie: 'srv', secret: 'a-long-enough-test-secret' } }),
    })
    await discovery.start()
    // A user pinned to 10.0.0.2.
    let cookie = ''
    for (let i = 0; i < 4 && cookie === ''; i++) {
      const r = balancer.pick(req())!
      if (r.upstream.id === 'web@10.0.0.2') cookie = r.setCookie!.split(';')[0]!
    }
    expect(balancer.pick(req({ headers: { cookie } }))!.upstream.id).toBe('web@10.0.0.2')
    fake.set(['10.0.0.1'])
    await discovery.resolveNow()
    const moved = balancer.pick(req({ headers: { cookie } }))!
    expect(moved.upstream.id).toBe('web@10.0.0.1')
    expect(moved.setCookie).toMatch(/^srv=/)
  })

  describe('update (a config reload)', () => {
    it('drops the members of an entry that is gone, resolves a new one now, replaces the members of one whose url changed', async () => {
      const fake = fakeResolver(['10.0.0.1'])
      const balancer = new Balancer({ upstreams: [], config: balancerConfig() })
      const discovery = new UpstreamDiscovery({ balancer, entries: [web(), web({ id: 'api', url: 'http://api.test:8080' })], resolver: fake.resolver })
      cleanup.push(() => discovery.close(), () => balancer.close())
      await discovery.start()
      expect(ids(balancer)).toEqual(['api@10.0.0.1', 'web@10.0.0.1'])

      await discovery.update([web({ url: 'http://web2.test:3002' }), web({ id: 'img', url: 'http://img.test' })])
      expect(ids(balancer)).toEqual(['img@10.0.0.1', 'web@10.0.0.1'])
      expect(balancer.get('web@10.0.0.1')!.url).toBe('http://10.0.0.1:3002')
      expect(fake.calls.slice(2).sort()).toEqual(['img.test', 'web2.test'])

      await discovery.update([{ id: 'img', url: 'http://img.test', weight: 1, backup: false }])
      expect(ids(balancer)).toEqual([])
      expect(discovery.snapshot()).toEqual([])
    })

    it('a changed weight goes through setUpstreams in place (state kept), or by replacing the members when the caller did not', async () => {
      const { balancer, discovery } = setup([web()], ['10.0.0.1'])
      await discovery.start()
      const before = balancer.get('web@10.0.0.1')
      const next = [web({ weight: 5 })]
      // The app's reload path: static entries plus the members under the new entries, then update.
      balancer.setUpstreams([...staticUpstreams(next), ...discovery.memberConfigs(next)])
      await discovery.update(next)
      expect(balancer.get('web@10.0.0.1')).toBe(before)
      expect(before!.weight).toBe(5)

      await discovery.update([web({ weight: 2, backup: true })])
      const after = balancer.get('web@10.0.0.1')!
      expect(after).not.toBe(before)
      expect([after.weight, after.backup]).toEqual([2, true])
    })
  })
})

describe('the default resolver', () => {
  it('resolves localhost to a loopback address, and a literal IP to itself', async () => {
    const answer = await defaultResolver('localhost')
    expect(answer.length).toBeGreaterThan(0)
    expect(answer.every((a) => a.address === '::1' || a.address.startsWith('127.'))).toBe(true)
    expect(await defaultResolver('127.0.0.5')).toEqual([{ address: '127.0.0.5', family: 4 }])
  })

  it('drives members through a real name', async () => {
    const balancer = new Balancer({ upstreams: [], config: balancerConfig() })
    const discovery = new UpstreamDiscovery({ balancer, entries: [web({ url: 'http://localhost:3001' })] })
    cleanup.push(() => discovery.close(), () => balancer.close())
    await discovery.start()
    expect(ids(balancer).length).toBeGreaterThan(0)
    expect(ids(balancer).every((id) => id === 'web@::1' || id.startsWith('web@127.'))).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------------
// Through a real strata, in front of origins on several loopback addresses (127.0.0.0/8 is all
// loopback on Linux): one port, one origin per address, as a scaled service behind one name.

interface LoopbackOrigins {
  readonly port: number
  /** Requests received per address. */
  readonly hits: Map<string, number>
  /** Requests an origin is still answering, per address. */
  readonly inFlight: Map<string, number>
  /** Holds answers to `/slow` until called. */
  releaseSlow(): void
  close(): Promise<void>
}

async function startLoopbackOrigins(addresses: string[]): Promise<LoopbackOrigins> {
  const hits = new Map<string, number>()
  const inFlight = new Map<string, number>()
  let slowGate!: () => void
  const slow = new Promise<void>((resolve) => (slowGate = resolve))
  const make = (address: string): Server =>
    createServer((rq, rs) => {
      hits.set(address, (hits.get(address) ?? 0) + 1)
      inFlight.set(address, (inFlight.get(address) ?? 0) + 1)
      const answer = () => {
        inFlight.set(address, inFlight.get(address)! - 1)
        rs.writeHead(200, { 'x-served-by': address, 'cache-control': 'no-store', 'content-type': 'text/plain' })
        rs.end(`from ${address}`)
      }
      if (rq.url === '/slow') void slow.then(answer)
      else answer()
    })
  const listen = (s: Server, port: number, host: string) =>
    new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.listen(port, host, () => resolve())
    })
  for (let attempt = 0; ; attempt++) {
    const servers = addresses.map(make)
    try {
      await listen(servers[0]!, 0, addresses[0]!)
      const port = (servers[0]!.address() as AddressInfo).port
      for (let i = 1; i < servers.length; i++) await listen(servers[i]!, port, addresses[i]!)
      return {
        port,
        hits,
        inFlight,
        releaseSlow: () => slowGate(),
        close: () =>
          Promise.all(
            servers.map(
              (s) =>
                new Promise<void>((resolve) => {
                  s.closeAllConnections()
                  s.close(() => resolve())
                }),
            ),
          ).then(() => undefined),
      }
    } catch (err) {
      // The port was free on the first address but taken on another: try another port.
      for (const s of servers) if (s.listening) s.close()
      if (attempt > 5) throw err
    }
  }
}

async function strataWithDiscovery(port: number, resolver: Resolver, everyMs: number): Promise<{ strata: Strata; url: string; logs: Record<string, unknown>[] }> {
  const config = resolveConfig({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { enabled: false },
    upstreams: [{ id: 'web', url: `http://web.test:${port}`, resolve: true, resolveEveryMs: everyMs }],
    balancer: { retries: 1, retryOn: ['connect'] },
    log: { level: 'info' },
  })
  const { logger, lines } = capturedLogger()
  const strata = createStrata(config, { logger, resolver })
  const addr = await strata.listen()
  return { strata, url: addr.proxy.url, logs: lines }
}

describe('discovered members behind a real strata', () => {
  it('members take traffic, a new address joins, and a member removed under load costs no GET', async () => {
    const origins = await startLoopbackOrigins(['127.0.0.2', '127.0.0.3', '127.0.0.4'])
    cleanup.push(() => origins.close())
    const fake = fakeResolver(['127.0.0.2', '127.0.0.3'])
    const { strata, url, logs } = await strataWithDiscovery(origins.port, fake.resolver, 100)
    cleanup.push(() => strata.close())
    const agent = new Agent({ connections: 8 })
    cleanup.push(() => agent.close())
    const get = async (path = '/') => {
      const r = await request(`${url}${path}`, { dispatcher: agent })
      const body = await r.body.text()
      return { status: r.statusCode, servedBy: r.headers['x-served-by'] as string | undefined, body }
    }

    // Both members answer (round-robin).
    const first = new Set<string>()
    for (let i = 0; i < 4; i++) first.add((await get()).servedBy!)
    expect([...first].sort()).toEqual(['127.0.0.2', '127.0.0.3'])

    // A third address in the answer becomes a member within resolveEveryMs and gets traffic.
    fake.set(['127.0.0.3', '127.0.0.4', '127.0.0.2'])
    await waitFor(async () => (await get()).servedBy === '127.0.0.4', 5000)

    // A slow request in flight on 127.0.0.3 when it leaves the answer.
    const slow = get('/slow')
    await waitFor(() => origins.inFlight.get('127.0.0.3') === 1 || origins.inFlight.get('127.0.0.2') === 1 || origins.inFlight.get('127.0.0.4') === 1)
    const slowOn = [...origins.inFlight].find(([, n]) => n === 1)![0]

    // At least 200 GETs, 4 at a time; the slow request's member leaves the answer after the first
    // 50, and the load goes on until 20 GETs were sent after its removal (bounded: 5000 at most).
    const results: Array<{ status: number; servedBy: string | undefined; afterRemoval: boolean }> = []
    let removed = false
    let sent = 0
    const enough = () => sent >= 5000 || (sent >= 200 && results.filter((r) => r.afterRemoval).length >= 20)
    const worker = async () => {
      while (!enough()) {
        sent++
        if (sent === 50) fake.set(['127.0.0.2', '127.0.0.3', '127.0.0.4'].filter((a) => a !== slowOn))
        const afterRemoval = removed
        try {
          const r = await get()
          results.push({ status: r.status, servedBy: r.servedBy, afterRemoval })
        } catch {
          results.push({ status: 0, servedBy: undefined, afterRemoval })
        }
        if (!removed && logs.some((l) => l['msg'] === 'upstream removed' && l['upstream'] === `web@${slowOn}`)) removed = true
      }
    }
    await Promise.all([worker(), worker(), worker(), worker()])
    expect(results.length).toBeGreaterThanOrEqual(200)
    expect(results.filter((r) => r.status !== 200)).toEqual([])
    expect(removed).toBe(true)
    // Once removed, it took no new request.
    expect(results.filter((r) => r.afterRemoval && r.servedBy === slowOn)).toEqual([])
    expect(results.filter((r) => r.afterRemoval).length).toBeGreaterThan(0)

    // Its in-flight request still finishes, on its own connection.
    origins.releaseSlow()
    expect(await slow).toEqual({ status: 200, servedBy: slowOn, body: `from ${slowOn}` })
  })
})

describe('health checks and discovered members', () => {
  it('members of the first answer are up at once; one found later takes no request until its first check passes', async () => {
    const origins = await startLoopbackOrigins(['127.0.0.3'])
    cleanup.push(() => origins.close())
    const fake = fakeResolver(['127.0.0.2'])
    const balancer = new Balancer({
      upstreams: [],
      // rise 3: a server that was down needs three good checks; a new member needs one.
      config: balancerConfig({ healthCheck: { path: '/health', intervalMs: 60_000, timeoutMs: 1000, expectStatus: 200, rise: 3, fall: 2 } }),
    })
    const discovery = new UpstreamDiscovery({ balancer, entries: [web({ url: `http://web.test:${origins.port}` })], resolver: fake.resolver })
    cleanup.push(() => discovery.close(), () => balancer.close())
    await discovery.start()
    expect(balancer.list().map((u) => [u.id, u.state])).toEqual([['web@127.0.0.2', 'up']])

    fake.set(['127.0.0.2', '127.0.0.3'])
    await discovery.resolveNow()
    expect(balancer.list().map((u) => [u.id, u.state])).toEqual([
      ['web@127.0.0.2', 'up'],
      ['web@127.0.0.3', 'down'],
    ])
    for (let i = 0; i < 4; i++) expect(balancer.pick(req())!.upstream.id).toBe('web@127.0.0.2')

    // One good check brings it up (127.0.0.2 has no server, but one failure is below fall 2).
    await balancer.checkNow()
    expect(balancer.list().map((u) => [u.id, u.state])).toEqual([
      ['web@127.0.0.2', 'up'],
      ['web@127.0.0.3', 'up'],
    ])
    expect(new Set([0, 1, 2, 3].map(() => balancer.pick(req())!.upstream.id))).toEqual(new Set(['web@127.0.0.2', 'web@127.0.0.3']))
  })
})

describe('a config reload', () => {
  it('keeps the discovered members (updated in place), and drops them when the entry goes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-discovery-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'strata.json')
    const write = (upstreams: unknown[]) =>
      writeFileSync(file, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0, token: 'test-token-0123456789' }, upstreams, log: { level: 'info' } }))
    const entry = { id: 'web', url: 'http://web.test:3001', resolve: true }
    write([entry, { id: 'b1', url: 'http://127.0.0.1:9' }])
    const fake = fakeResolver(['127.0.0.2', '127.0.0.3'])
    const { logger } = capturedLogger()
    const strata = createStrata(loadConfigFile(file), { logger, resolver: fake.resolver, configFile: file })
    cleanup.push(() => strata.close())
    await strata.listen()
    const list = async () => {
      const res = await strata.admin!.inject({ url: '/upstreams', headers: { authorization: 'Bearer test-token-0123456789' } })
      return (res.json() as { upstreams: Array<{ id: string; weight: number }> }).upstreams.map((u) => `${u.id}:${u.weight}`).sort()
    }
    expect(await list()).toEqual(['b1:1', 'web@127.0.0.2:1', 'web@127.0.0.3:1'])

    write([{ ...entry, weight: 4 }, { id: 'b1', url: 'http://127.0.0.1:9', weight: 2 }])
    const r = await strata.reload()
    expect(r.changed).toContain('upstreams')
    expect(await list()).toEqual(['b1:2', 'web@127.0.0.2:4', 'web@127.0.0.3:4'])
    const calls = fake.calls.length

    write([{ id: 'b1', url: 'http://127.0.0.1:9' }])
    await strata.reload()
    expect(await list()).toEqual(['b1:1'])
    expect(fake.calls.length).toBe(calls)
  })
})
