import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { startOrigin, type Origin } from '../helpers/origin.js'

// The CLI is tested as users run it: the compiled bin (npm test builds first).
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), 'strata-cli-'))
const file = (name: string, content: unknown) => {
  const p = join(dir, name)
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content))
  return p
}
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 15_000 })

describe('strata CLI', () => {
  let origin: Origin
  beforeAll(async () => {
    origin = await startOrigin((_q, r) => r.end('from origin'))
  })
  afterAll(async () => {
    await origin.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('check-config exits 0 on a valid config', () => {
    const r = run('check-config', '--config', file('ok.json', { upstreams: [{ id: 'b1', url: 'http://127.0.0.1:3001' }] }))
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('ok')
  })

  it('check-config prints every problem, naming fields, and exits 1', () => {
    const r = run('check-config', '--config', file('bad.json', { upstreams: [{ id: 'b1', url: 'http://a' }, { id: 'b2', url: 'gopher://x' }], listen: { port: 'x' }, extra: 1 }))
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('upstreams[1].url: must be an http(s) URL')
    expect(r.stderr).toContain('listen.port')
    expect(r.stderr).toContain('extra: unknown key')
  })

  it('check-config exits 1 on unreadable or non-JSON files', () => {
    expect(run('check-config', '--config', join(dir, 'missing.json')).status).toBe(1)
    const r = run('check-config', '--config', file('broken.json', '{ nope'))
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('not valid JSON')
  })

  it('check-config --print shows the effective config with defaults applied and secrets masked', () => {
    const r = run(
      'check-config',
      '--print',
      '--config',
      file('print.json', {
        admin: { token: 'super-secret-admin-token' },
        upstreams: [{ id: 'b1', url: 'http://127.0.0.1:3001' }],
        balancer: { sticky: { mode: 'insert', secret: 'a-very-secret-sticky-key' } },
        cache: { redis: 'redis://app:redis-password@127.0.0.1:6379/0' },
      }),
    )
    expect(r.status).toBe(0)
    expect(r.stdout).not.toContain('super-secret-admin-token')
    expect(r.stdout).not.toContain('a-very-secret-sticky-key')
    expect(r.stdout).not.toContain('redis-password')
    const printed = JSON.parse(r.stdout) as Record<string, any>
    expect(printed['admin']).toMatchObject({ token: '***', port: 4001, host: '127.0.0.1', publicMetrics: false })
    expect(printed['balancer'].sticky).toMatchObject({ mode: 'insert', secret: '***', cookie: 'strata_srv' })
    expect(printed['cache'].redis).toBe('redis://app:***@127.0.0.1:6379/0')
    // Defaults the file never mentioned.
    expect(printed['upstreams'][0]).toEqual({ id: 'b1', url: 'http://127.0.0.1:3001', weight: 1, backup: false })
    expect(printed['timeouts'].connectMs).toBe(3000)
    expect(printed['cache'].hitForPass).toBe(10)
    expect(printed['serverTiming']).toBe(false)
    expect(printed['log']).toEqual({ level: 'info', access: true })
  })

  it('check-config --print masks the token generated when none is configured', () => {
    const r = run('check-config', '--print', '--config', file('print-min.json', { upstreams: [{ id: 'b1', url: 'http://127.0.0.1:3001' }] }))
    expect(r.status).toBe(0)
    expect((JSON.parse(r.stdout) as { admin: { token: string } }).admin.token).toBe('***')
  })

  it('check-config names every pool and route problem and exits 1', () => {
    const r = run(
      'check-config',
      '--config',
      file('routes-bad.json', {
        upstreams: [{ id: 'b1', url: 'http://127.0.0.1:3001' }],
        pools: { api: { upstreams: [] }, default: { upstreams: [{ id: 'd1', url: 'http://d:1' }] } },
        routes: [
          { match: { pathPrefix: '/api' }, pool: 'nope' },
          { match: { pathPrefix: '/api/v2' }, pool: 'api' },
        ],
      }),
    )
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('pools.api.upstreams: is empty: a pool needs at least one upstream')
    expect(r.stderr).toContain('pools.default: the name "default" is reserved')
    expect(r.stderr).toContain('routes[0].pool: unknown pool "nope" (known: default, api)')
    expect(r.stderr).toContain('routes[1]: never matches: routes[0] matches every request it would (routes[0] needs only pathPrefix "/api")')
  })

  it('check-config --print shows the pools in their effective form and the routes', () => {
    const routes = [{ match: { host: 'api.example.com' }, pool: 'api', stripPrefix: '/api' }]
    const r = run(
      'check-config',
      '--print',
      '--config',
      file('routes-ok.json', {
        upstreams: [{ id: 'b1', url: 'http://127.0.0.1:3001' }],
        balancer: { retries: 2, sticky: { mode: 'insert', secret: 'a-very-secret-sticky-key' } },
        pools: { api: { upstreams: [{ id: 'api1', url: 'http://127.0.0.1:8080', resolve: true }], balancer: { algorithm: 'least-connections' } } },
        routes,
      }),
    )
    expect(r.status).toBe(0)
    expect(r.stdout).not.toContain('a-very-secret-sticky-key')
    const printed = JSON.parse(r.stdout) as Record<string, any>
    expect(printed['pools'].api.upstreams).toEqual([{ id: 'api1', url: 'http://127.0.0.1:8080', weight: 1, backup: false, resolve: true }])
    expect(printed['pools'].api.balancer).toMatchObject({ algorithm: 'least-connections', retries: 2, sticky: { mode: 'insert', cookie: 'strata_srv_api', secret: '***' } })
    expect(printed['routes']).toEqual(routes)
  })

  it('exits 2 on usage errors', () => {
    expect(run().status).toBe(2)
    expect(run('frobnicate').status).toBe(2)
    expect(run('serve').status).toBe(2)
    expect(run('--version').status).toBe(0)
  })

  it('serve logs a JSON "listening" line with real ports, proxies, and exits 0 on SIGTERM', async () => {
    const cfg = file('serve.json', {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { port: 0, token: 'cli-test-token' },
      upstreams: [{ id: 'b1', url: origin.url }],
    })
    const child = spawn(process.execPath, [CLI, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    const listening = await new Promise<{ proxy: { url: string }; admin: { url: string } }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 10_000)
      child.stdout.on('data', () => {
        for (const line of out.split('\n')) {
          if (line.includes('"listening"')) {
            clearTimeout(t)
            resolve((JSON.parse(line) as { listening: { proxy: { url: string }; admin: { url: string } } }).listening)
          }
        }
      })
    })
    expect(listening.proxy.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    const res = await request(listening.proxy.url)
    expect(await res.body.text()).toBe('from origin')
    const adminRes = await request(`${listening.admin.url}/health`)
    expect(adminRes.statusCode).toBe(200)
    await adminRes.body.text()
    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', (c) => resolve(c))
      child.kill('SIGTERM')
    })
    expect(code).toBe(0)
    expect(out).not.toContain('cli-test-token')
  })

  it('serve without admin.token logs the generated token once, and it opens the admin API', async () => {
    const cfg = file('no-token.json', { listen: { host: '127.0.0.1', port: 0 }, admin: { port: 0 }, upstreams: [{ id: 'b1', url: origin.url }] })
    const child = spawn(process.execPath, [CLI, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    const found = await new Promise<{ token: string; admin: string }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no token / listening line: ${out}`)), 10_000)
      child.stdout.on('data', () => {
        const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
        const tokenLine = lines.find((l) => typeof l['adminToken'] === 'string')
        const listening = lines.find((l) => l['listening'] !== undefined)
        if (tokenLine && listening) {
          clearTimeout(t)
          resolve({ token: tokenLine['adminToken'] as string, admin: (listening['listening'] as { admin: { url: string } }).admin.url })
        }
      })
    })
    expect(out.split('\n').filter((l) => l.includes(found.token))).toHaveLength(1)
    const stats = await request(`${found.admin}/stats`, { headers: { authorization: `Bearer ${found.token}` } })
    expect(stats.statusCode).toBe(200)
    await stats.body.text()
    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', (c) => resolve(c))
      child.kill('SIGTERM')
    })
    expect(code).toBe(0)
  })

  it('demo runs two webservers behind strata, round-robin, and exits 0 on SIGINT', async () => {
    const child = spawn(process.execPath, [CLI, 'demo', '--port', '0', '--admin-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    const ready = await new Promise<{ open: string; admin: string }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`demo did not start: ${out}`)), 10_000)
      child.stdout.on('data', () => {
        const line = out.split('\n').find((l) => l.includes('demo cluster ready'))
        if (line) {
          clearTimeout(t)
          resolve(JSON.parse(line) as { open: string; admin: string })
        }
      })
    })
    const servedBy = new Set<string>()
    for (let i = 0; i < 4; i++) {
      const res = await request(`${ready.open}/api/whoami`)
      servedBy.add(String(res.headers['x-served-by']))
      await res.body.text()
    }
    expect([...servedBy].sort()).toEqual(['b1', 'b2'])
    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', (c) => resolve(c))
      child.kill('SIGINT')
    })
    expect(code).toBe(0)
  })

  it('serve exits non-zero when the port is taken', async () => {
    const cfg = file('taken.json', { listen: { host: '127.0.0.1', port: origin.port }, admin: { enabled: false }, upstreams: [{ id: 'b1', url: origin.url }] })
    const r = run('serve', '--config', cfg)
    expect(r.status).toBe(3)
  })
})
