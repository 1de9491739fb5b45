import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { ChildProcess } from 'node:child_process'
import { waitFor } from '../helpers/ports.js'
import { createTopology, unavailableReason, type Topology } from './topology.js'

// The reference deployment on separate network stacks: hosts A (strata), B1 and B2 (the demo
// webservers), R (redis-server) and a client C, each in its own network namespace, on a bridge
// named myNet, reaching each other by name. What runs is the compiled CLI, as on real hosts.
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname
const DRIVER = new URL('./client-driver.mjs', import.meta.url).pathname
const TOKEN = 'multihost-admin-token'

const reason = unavailableReason() ?? (existsSync(CLI) ? undefined : 'dist/cli.js is missing (npm test builds it first)')
if (reason !== undefined) console.log(`test/multihost skipped: ${reason}`)

interface Answer {
  status: number
  headers: Record<string, string>
  setCookie: string[]
  body: string
}

/** The client host: requests go out from C's namespace through the driver process. */
function clientOf(child: ChildProcess) {
  let next = 0
  const waiting = new Map<string | number, (msg: Answer & { error?: string }) => void>()
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const msg = JSON.parse(line) as Answer & { id: string | number; error?: string }
    waiting.get(msg.id)?.(msg)
    waiting.delete(msg.id)
  })
  const ready = new Promise<void>((resolve) => waiting.set('ready', () => resolve()))
  return {
    ready,
    /** Resolves with the answer, or with `error` set when the request itself failed. */
    request(url: string, init: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}) {
      const id = next++
      return new Promise<Answer & { error?: string }>((resolve) => {
        waiting.set(id, resolve)
        child.stdin!.write(`${JSON.stringify({ id, url, ...init })}\n`)
      })
    },
  }
}

/** Resolves when a child prints a line containing `marker`; rejects if it exits first. */
function lineWith(child: ChildProcess, marker: string, what: string): Promise<void> {
  let seen = ''
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      seen += d.toString()
      if (seen.includes(marker)) resolve()
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', (d: Buffer) => (seen += d.toString()))
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready:\n${seen.slice(-2000)}`)))
  })
}

/** The rows of the admin API's GET /upstreams. */
const health = (a: Answer) => (JSON.parse(a.body) as { upstreams: { id: string; health: string; state: string }[] }).upstreams
const sticky = (a: Answer) => a.setCookie.map((c) => c.split(';')[0]!).find((c) => c.startsWith('strata_srv='))

describe.skipIf(reason !== undefined)('the A/B topology in network namespaces', () => {
  let net: Topology
  let client: ReturnType<typeof clientOf>
  let dir: string
  const site = 'http://a:2001'
  const admin = 'http://a:4001'

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strata-multihost-'))
    net = createTopology({ a: 10, b1: 11, b2: 12, r: 13, c: 100 })
    try {
      const redis = net.spawn('r', 'redis-server', ['--bind', '0.0.0.0', '--port', '6379', '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', dir])
      await lineWith(redis, 'Ready to accept connections', 'redis-server')
      const env = { STRATA_DEMO_REDIS: 'redis://r:6379', STRATA_LOG_LEVEL: 'info' }
      const webservers = ['b1', 'b2'].map((id) => net.spawn(id, process.execPath, [CLI, 'demo-webserver', '--id', id, '--port', '3001', '--host', '0.0.0.0'], env))
      await Promise.all(webservers.map((w, i) => lineWith(w, 'demo webserver ready', `webserver b${i + 1}`)))
      const config = join(dir, 'a.json')
      writeFileSync(
        config,
        JSON.stringify({
          listen: { host: '0.0.0.0', port: 2001 },
          admin: { host: '0.0.0.0', port: 4001, token: TOKEN },
          upstreams: [
            { id: 'b1', url: 'http://b1:3001' },
            { id: 'b2', url: 'http://b2:3001' },
          ],
          timeouts: { connectMs: 1000, responseMs: 2000 },
          balancer: {
            algorithm: 'round-robin',
            sticky: { mode: 'insert', cookie: 'strata_srv', secret: 'multihost-sticky-secret-0123456789' },
            healthCheck: { path: '/health', intervalMs: 300, timeoutMs: 250, rise: 2, fall: 2 },
            retries: 1,
            retryOn: ['connect', '504'],
          },
          cache: { redis: 'redis://r:6379' },
          log: { level: 'warn' },
        }),
      )
      const strata = net.spawn('a', process.execPath, [CLI, 'serve', '--config', config], { STRATA_LOG_LEVEL: 'info' })
      await lineWith(strata, '"listening"', 'strata')
      client = clientOf(net.spawn('c', process.execPath, [DRIVER]))
      await client.ready
      // Both webservers pass strata's health checks before the test starts.
      await waitFor(async () => {
        const r = await client.request(`${admin}/upstreams`, { headers: { authorization: `Bearer ${TOKEN}` } })
        return health(r).every((u) => u.health === 'up')
      }, 20_000, 100)
    } catch (err) {
      await net.destroy()
      throw err
    }
  }, 60_000)

  afterAll(async () => {
    await net?.destroy()
    rmSync(dir, { recursive: true, force: true })
  })

  it('names resolve on myNet and only A serves the site', async () => {
    expect(net.exec('c', 'getent', ['hosts', 'b1']).trim()).toMatch(/^10\.77\.0\.11\s+b1$/)
    const health = await client.request(`${admin}/health`)
    expect(health.status).toBe(200)
    expect(JSON.parse(health.body)).toEqual({ ok: true })
  })

  it('balances traffic over B1 and B2 and keeps a sticky cookie', async () => {
    const served: string[] = []
    for (let i = 0; i < 20; i++) {
      const r = await client.request(`${site}/api/whoami`)
      expect(r.status).toBe(200)
      served.push(r.headers['x-served-by']!)
    }
    expect(served.filter((s) => s === 'b1').length).toBeGreaterThanOrEqual(5)
    expect(served.filter((s) => s === 'b2').length).toBeGreaterThanOrEqual(5)

    const first = await client.request(`${site}/api/whoami`)
    const cookie = sticky(first)
    expect(cookie).toBeDefined()
    const pinned = await Promise.all(Array.from({ length: 10 }, () => client.request(`${site}/api/whoami`, { headers: { cookie: cookie! } })))
    expect(new Set(pinned.map((r) => r.headers['x-served-by']))).toEqual(new Set([first.headers['x-served-by']]))
  })

  it('purges a cached page through the admin API on 4001', async () => {
    await client.request(`${site}/static/style.css`)
    expect((await client.request(`${site}/static/style.css`)).headers['x-cache']).toBe('HIT')
    const purge = await client.request(`${admin}/purge`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ urls: ['/static/style.css'] }),
    })
    expect(purge.status).toBe(200)
    expect(JSON.parse(purge.body).purged).toBeGreaterThanOrEqual(1)
    expect((await client.request(`${site}/static/style.css`)).headers['x-cache']).toBe('MISS')
  })

  it('fails over when B1 loses its link: no GET fails, B1 users move to B2', async () => {
    let pinnedToB1: string | undefined
    for (let i = 0; i < 20 && pinnedToB1 === undefined; i++) {
      const r = await client.request(`${site}/api/whoami`)
      if (r.headers['x-served-by'] === 'b1') pinnedToB1 = sticky(r)
    }
    expect(pinnedToB1).toBeDefined()

    // A bounded burst from four clients; B1's cable is pulled once it is under way, and the burst
    // goes on until strata has seen B1 down and another 100 requests were answered.
    const results: { status: number; error?: string | undefined; servedBy?: string | undefined; afterDown: boolean }[] = []
    let down = false
    let b1Out = false
    const worker = async (w: number) => {
      let extra = 0
      while (extra < 25) {
        const r = await client.request(`${site}/api/whoami`, { headers: w % 2 === 0 ? { cookie: pinnedToB1! } : {} })
        results.push({ status: r.status, error: r.error, servedBy: r.headers?.['x-served-by'], afterDown: down })
        if (b1Out) extra++
        if (results.length > 5000) throw new Error('the burst did not end')
      }
    }
    const burst = Promise.all([0, 1, 2, 3].map(worker))
    await waitFor(() => results.length >= 20, 10_000, 5)
    net.link('b1', 'down')
    down = true
    await waitFor(async () => {
      const r = await client.request(`${admin}/upstreams`, { headers: { authorization: `Bearer ${TOKEN}` } })
      return health(r).find((u) => u.id === 'b1')?.health === 'down'
    }, 20_000, 50)
    b1Out = true
    await burst

    const failed = results.filter((r) => r.status !== 200)
    expect(failed, JSON.stringify(failed.slice(0, 5))).toEqual([])
    expect(results.filter((r) => r.afterDown).length).toBeGreaterThanOrEqual(100)
    const moved = await client.request(`${site}/api/whoami`, { headers: { cookie: pinnedToB1! } })
    expect(moved.headers['x-served-by']).toBe('b2')
    const repinned = sticky(moved)
    expect(repinned).toBeDefined()
    expect(repinned).not.toBe(pinnedToB1)

    // The cable back in: B1 passes its health checks, its passive ejection (the timed-out
    // requests) ends, and it takes new users again.
    net.link('b1', 'up')
    await waitFor(async () => {
      const r = await client.request(`${admin}/upstreams`, { headers: { authorization: `Bearer ${TOKEN}` } })
      return health(r).find((u) => u.id === 'b1')?.state === 'up'
    }, 30_000, 50)
    const after = await Promise.all(Array.from({ length: 10 }, () => client.request(`${site}/api/whoami`)))
    expect(after.every((r) => r.status === 200)).toBe(true)
    expect(after.some((r) => r.headers['x-served-by'] === 'b1')).toBe(true)
  }, 60_000)
})
