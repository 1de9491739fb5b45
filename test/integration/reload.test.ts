import { describe, expect, it, onTestFinished } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { ServerResponse } from 'node:http'
import { Client, request } from 'undici'
import { pino } from 'pino'
import { createStrata } from '../../src/app.js'
import { loadConfigFile } from '../../src/config/load.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { TEST_TOKEN } from '../helpers/strata.js'
import { freePort, waitFor } from '../helpers/ports.js'

/**
 * Config reload (POST /config/reload and SIGHUP): runtime keys apply without dropping a
 * connection or an in-flight request, restart-only keys are listed and left alone, and an invalid
 * file is refused with every problem named while the old config stays in force.
 */

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'strata-reload-'))
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function origin(name: string, cacheControl?: string): Promise<Origin> {
  const o = await startOrigin((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', ...(cacheControl === undefined ? {} : { 'cache-control': cacheControl }) })
    res.end(`${name} ${req.url}`)
  })
  onTestFinished(() => o.close())
  return o
}

const baseConfig = (upstreams: { id: string; url: string; weight?: number }[], extra: Record<string, unknown> = {}) => ({
  listen: { host: '127.0.0.1', port: 0 },
  admin: { host: '127.0.0.1', port: 0, token: TEST_TOKEN },
  upstreams,
  log: { level: 'info', access: false },
  ...extra,
})

async function startFromFile(file: string) {
  const logs: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    },
  })
  const config = loadConfigFile(file)
  const strata = createStrata(config, { logger: pino({ level: config.log.level }, sink), configFile: file })
  const addr = await strata.listen()
  onTestFinished(() => strata.close())
  const reload = async () => {
    const res = await request(`${addr.admin!.url}/config/reload`, { method: 'POST', headers: AUTH })
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> }
  }
  return { strata, url: addr.proxy.url, adminUrl: addr.admin!.url, logs, reload }
}

const body = async (url: string) => {
  const res = await request(url)
  return res.body.text()
}

describe('config reload', () => {
  it('swaps upstreams, cache rules and log level; lists restart-only keys; keeps connections and in-flight requests', async () => {
    const a = await origin('a')
    const b = await origin('b')
    // Origin a holds /slow until released: an in-flight request across the reload.
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    let arrived!: () => void
    const slowArrived = new Promise<void>((r) => (arrived = r))
    a.setHandler(async (req, res: ServerResponse) => {
      if (req.url === '/slow') {
        arrived()
        await held
      }
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(`a ${req.url}`)
    })
    const dir = tempDir()
    const file = join(dir, 'strata.json')
    writeFileSync(file, JSON.stringify(baseConfig([{ id: 'a', url: a.url }])))
    const s = await startFromFile(file)

    // One client connection for everything: the reload must not close it.
    const client = new Client(s.url)
    onTestFinished(() => client.close())
    let connects = 0
    client.on('connect', () => connects++)
    const get = async (path: string) => {
      const res = await client.request({ method: 'GET', path })
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
    }
    expect((await get('/x')).text).toBe('a /x')
    const slowClient = new Client(s.url)
    onTestFinished(() => slowClient.close())
    const slow = slowClient.request({ method: 'GET', path: '/slow' }).then(async (r) => ({ status: r.statusCode, text: await r.body.text() }))
    await slowArrived

    writeFileSync(
      file,
      JSON.stringify(
        baseConfig([{ id: 'b', url: b.url, weight: 3 }], {
          listen: { host: '127.0.0.1', port: 1 },
          cache: { rules: [{ prefix: '/ttl/', defaultTtl: 60 }] },
          log: { level: 'warn', access: false },
          timeouts: { connectMs: 1234 },
        }),
      ),
    )
    const r = await s.reload()
    expect(r.status).toBe(200)
    expect(r.body['changed']).toEqual(expect.arrayContaining(['upstreams', 'cache.rules', 'log.level']))
    expect(r.body['restartRequired']).toEqual(expect.arrayContaining(['listen.port', 'timeouts.connectMs']))
    expect(r.body['changed']).not.toContain('listen.port')
    // The token was not in question, and nothing else was reported.
    expect([...(r.body['changed'] as string[]), ...(r.body['restartRequired'] as string[])].sort()).toEqual(['cache.rules', 'listen.port', 'log.level', 'timeouts.connectMs', 'upstreams'])

    // The in-flight request on the removed upstream finishes normally.
    release()
    expect(await slow).toEqual({ status: 200, text: 'a /slow' })
    // New requests go to b, over the same connection.
    expect((await get('/y')).text).toBe('b /y')
    expect(connects).toBe(1)
    // Restart-only keys kept their old values; runtime ones took the new.
    expect(s.strata.config.listen.port).toBe(0)
    expect(s.strata.config.timeouts.connectMs).toBe(3000)
    expect(s.strata.config.upstreams).toEqual([{ id: 'b', url: b.url, weight: 3, backup: false }])
    const status = (await (await request(`${s.adminUrl}/status`, { headers: AUTH })).body.json()) as { config: { upstreams: unknown[]; listen: { port: number } } }
    expect(status.config.upstreams).toEqual(s.strata.config.upstreams)
    expect(status.config.listen.port).toBe(0)
    const listed = (await (await request(`${s.adminUrl}/upstreams`, { headers: AUTH })).body.json()) as { upstreams: { id: string; weight: number }[] }
    expect(listed.upstreams.map((u) => [u.id, u.weight])).toEqual([['b', 3]])
    // The new rule caches a response with no freshness of its own.
    expect((await get('/ttl/1')).headers['x-cache']).toBe('MISS')
    expect((await get('/ttl/1')).headers['x-cache']).toBe('HIT')
    // The new level reached the module loggers: info lines from the balancer stop.
    const infoBefore = s.logs.filter((l) => l['module'] === 'balancer' && l['level'] === 30).length
    await request(`${s.adminUrl}/upstreams/b/drain`, { method: 'POST', headers: AUTH }).then((x) => x.body.dump())
    expect(s.logs.filter((l) => l['module'] === 'balancer' && l['level'] === 30).length).toBe(infoBefore)
    expect(s.logs.some((l) => l['msg'] === 'config reloaded')).toBe(true)
  })

  it('applies balancer retries at runtime', async () => {
    const a = await origin('a')
    // A port nothing listens on: every attempt there is a connect error.
    const dead = `http://127.0.0.1:${await freePort()}`
    const dir = tempDir()
    const file = join(dir, 'strata.json')
    const cfg = (retries: number) =>
      baseConfig([{ id: 'dead', url: dead }, { id: 'a', url: a.url }], { balancer: { retries, passive: { failures: 1000, cooldownMs: 1, maxCooldownMs: 1 } }, log: { level: 'error', access: false } })
    writeFileSync(file, JSON.stringify(cfg(0)))
    const s = await startFromFile(file)
    const statuses = async () => {
      const out: number[] = []
      for (let i = 0; i < 4; i++) {
        const res = await request(`${s.url}/r${i}`)
        await res.body.dump()
        out.push(res.statusCode)
      }
      return out
    }
    // Round robin over a dead and a live upstream, no retries: half the requests fail.
    expect((await statuses()).filter((c) => c === 502)).toHaveLength(2)
    writeFileSync(file, JSON.stringify(cfg(1)))
    expect((await s.reload()).body).toEqual({ changed: ['balancer.retries'], restartRequired: [] })
    expect(await statuses()).toEqual([200, 200, 200, 200])
  })

  it('swaps the balancing algorithm under load: no request fails, and the new distribution shows', async () => {
    const a = await origin('a')
    const b = await origin('b')
    const dir = tempDir()
    const file = join(dir, 'strata.json')
    const cfg = (algorithm: string) =>
      baseConfig([{ id: 'a', url: a.url, weight: 3 }, { id: 'b', url: b.url, weight: 1 }], { balancer: { algorithm }, log: { level: 'error', access: false } })
    writeFileSync(file, JSON.stringify(cfg('round-robin')))
    const s = await startFromFile(file)

    // Four clients send requests back to back until 100 were sent after the reload answered.
    type Done = { sentAfterReload: boolean; doneBeforeReload: boolean; status: number; text: string }
    const done: Done[] = []
    let phase: 'before' | 'reloading' | 'after' = 'before'
    let sentAfter = 0
    let n = 0
    const worker = async () => {
      while (sentAfter < 100) {
        const sentAfterReload = phase === 'after'
        if (sentAfterReload) sentAfter++
        const res = await request(`${s.url}/load/${n++}`)
        const text = await res.body.text()
        done.push({ sentAfterReload, doneBeforeReload: phase === 'before', status: res.statusCode, text })
      }
    }
    const load = Promise.all([worker(), worker(), worker(), worker()])
    await waitUntil(() => done.length >= 40)
    phase = 'reloading'
    writeFileSync(file, JSON.stringify(cfg('weighted')))
    expect((await s.reload()).body).toEqual({ changed: ['balancer.algorithm'], restartRequired: [] })
    phase = 'after'
    await load

    expect(done.filter((d) => d.status !== 200 || !/^[ab] \/load\//.test(d.text))).toEqual([])
    const share = (list: Done[]) => list.filter((d) => d.text.startsWith('a ')).length / list.length
    // Round-robin ignores the weights; weighted (smooth, 3:1) gives a three requests in four.
    const before = done.filter((d) => d.doneBeforeReload)
    expect(share(before)).toBeGreaterThan(0.4)
    expect(share(before)).toBeLessThan(0.6)
    const after = done.filter((d) => d.sentAfterReload)
    expect(after).toHaveLength(100)
    expect(share(after)).toBeGreaterThanOrEqual(0.72)
    expect(share(after)).toBeLessThanOrEqual(0.78)
    expect(s.strata.config.balancer.algorithm).toBe('weighted')
  })

  it('changes a weight in place: the upstream keeps its latency average, health and in-flight request, and does not slow-start', async () => {
    const a = await origin('a')
    const b = await origin('b')
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    let arrived!: () => void
    const slowArrived = new Promise<void>((r) => (arrived = r))
    a.setHandler(async (req, res: ServerResponse) => {
      if (req.url === '/slow') {
        arrived()
        await held
      }
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(`a ${req.url}`)
    })
    const dir = tempDir()
    const file = join(dir, 'strata.json')
    const cfg = (weightA: number) =>
      baseConfig([{ id: 'a', url: a.url, weight: weightA }, { id: 'b', url: b.url }], { balancer: { algorithm: 'weighted', slowStartMs: 600_000 } })
    writeFileSync(file, JSON.stringify(cfg(1)))
    const s = await startFromFile(file)
    const upstreamsNow = async () =>
      ((await (await request(`${s.adminUrl}/upstreams`, { headers: AUTH })).body.json()) as { upstreams: { id: string; weight: number; state: string; active: number; latencyEwmaMs: number | null; health: string }[] }).upstreams
    for (let i = 0; i < 4; i++) await body(`${s.url}/warm/${i}`)
    // The next pick is a's turn again (weights 1:1 alternate): hold it open across the reload.
    const slow = request(`${s.url}/slow`).then(async (r) => ({ status: r.statusCode, text: await r.body.text() }))
    await slowArrived
    const before = (await upstreamsNow()).find((u) => u.id === 'a')!
    expect(before).toMatchObject({ weight: 1, state: 'up', active: 1 })
    expect(before.latencyEwmaMs).not.toBeNull()

    writeFileSync(file, JSON.stringify(cfg(3)))
    expect((await s.reload()).body).toEqual({ changed: ['upstreams'], restartRequired: [] })
    const after = (await upstreamsNow()).find((u) => u.id === 'a')!
    expect(after).toEqual({ ...before, weight: 3, effectiveWeight: 3 })
    expect(s.logs.some((l) => l['msg'] === 'upstream updated in place' && l['upstream'] === 'a')).toBe(true)
    expect(s.logs.some((l) => l['msg'] === 'upstream removed')).toBe(false)

    release()
    expect(await slow).toEqual({ status: 200, text: 'a /slow' })
    const texts = await Promise.all(Array.from({ length: 8 }, (_, i) => body(`${s.url}/w/${i}`)))
    expect(texts.filter((t) => t.startsWith('a ')).length).toBe(6)
  })

  it('restarts health checks with new settings: the new path is checked, the old one no longer', async () => {
    const a = await origin('a')
    a.setHandler((req, res: ServerResponse) => {
      res.writeHead(req.url === '/health' ? 503 : 200)
      res.end(`a ${req.url}`)
    })
    const dir = tempDir()
    const file = join(dir, 'strata.json')
    const cfg = (path: string) => baseConfig([{ id: 'a', url: a.url }], { balancer: { healthCheck: { path, intervalMs: 50, rise: 1, fall: 1 } } })
    writeFileSync(file, JSON.stringify(cfg('/health')))
    const s = await startFromFile(file)
    const health = async () => ((await (await request(`${s.adminUrl}/upstreams`, { headers: AUTH })).body.json()) as { upstreams: { health: string }[] }).upstreams[0]!.health
    await waitUntil(async () => (await health()) === 'down')

    writeFileSync(file, JSON.stringify(cfg('/ready')))
    expect((await s.reload()).body).toEqual({ changed: ['balancer.healthCheck'], restartRequired: [] })
    await waitUntil(async () => (await health()) === 'up')
    await waitUntil(() => a.hits('/ready') >= 2)
    const oldPath = a.hits('/health')
    await waitUntil(() => a.hits('/ready') >= 5)
    expect(a.hits('/health')).toBe(oldPath)
    expect(s.logs.some((l) => l['msg'] === 'upstream is up (health check)')).toBe(true)
  })

  it('renames the sticky cookie: the old cookie stops matching, the new one sticks', async () => {
    const a = await origin('a')
    const b = await origin('b')
    const dir = tempDir()
    const file = join(dir, 'strata.json')
    const cfg = (cookie: string) => baseConfig([{ id: 'a', url: a.url }, { id: 'b', url: b.url }], { balancer: { sticky: { mode: 'insert', cookie, secret: 'a-secret-of-sixteen-chars' } } })
    writeFileSync(file, JSON.stringify(cfg('srv')))
    const s = await startFromFile(file)
    const get = async (cookie?: string) => {
      const res = await request(`${s.url}/s`, { headers: cookie === undefined ? {} : { cookie } })
      const setCookie = res.headers['set-cookie'] as string | undefined
      return { text: await res.body.text(), cookie: setCookie?.slice(0, setCookie.indexOf(';')) }
    }
    const first = await get()
    expect(first.cookie).toMatch(/^srv=/)
    for (let i = 0; i < 4; i++) expect((await get(first.cookie)).text).toBe(first.text)

    writeFileSync(file, JSON.stringify(cfg('srv2')))
    expect((await s.reload()).body).toEqual({ changed: ['balancer.sticky'], restartRequired: [] })
    // The old cookie is just another cookie now: balanced afresh, and a new one issued each time.
    const old = await Promise.all([get(first.cookie), get(first.cookie)])
    expect(old.map((r) => r.cookie?.split('=')[0])).toEqual(['srv2', 'srv2'])
    expect(new Set(old.map((r) => r.text)).size).toBe(2)
    const renamed = old[0]!
    for (let i = 0; i < 4; i++) {
      const r = await get(renamed.cookie)
      expect(r.text).toBe(renamed.text)
      expect(r.cookie).toBeUndefined()
    }
    // The application never sees strata's cookie under its new name.
    const seenByOrigin = [...a.requests, ...b.requests].at(-1)!.headers.cookie
    expect(seenByOrigin).toBeUndefined()
  })

  it('refuses an invalid file with every problem named, in the answer and the log, and keeps the old config', async () => {
    const a = await origin('a')
    const dir = tempDir()
    const file = join(dir, 'strata.json')
    writeFileSync(file, JSON.stringify(baseConfig([{ id: 'a', url: a.url }])))
    const s = await startFromFile(file)

    writeFileSync(file, JSON.stringify(baseConfig([{ id: 'a', url: a.url }, { id: 'b', url: 'gopher://x' }], { cache: { defaultTtl: -1 }, nope: true })))
    const r = await s.reload()
    expect(r.status).toBe(400)
    expect(r.body['error']).toBe('STRATA_CONFIG_INVALID')
    const problems = r.body['problems'] as string[]
    expect(problems).toContain('upstreams[1].url: must be an http(s) URL')
    expect(problems.some((p) => p.startsWith('cache.defaultTtl'))).toBe(true)
    expect(problems.some((p) => p.startsWith('nope'))).toBe(true)
    const logged = s.logs.find((l) => l['msg'] === 'config reload rejected; the old config stays in force')
    expect(logged?.['problems']).toEqual(problems)
    expect(await body(`${s.url}/still`)).toBe('a /still')
    expect(s.strata.config.upstreams.map((u) => u.id)).toEqual(['a'])

    writeFileSync(file, '{ not json')
    const broken = await s.reload()
    expect(broken.status).toBe(400)
    expect((broken.body['problems'] as string[])[0]).toContain('not valid JSON')

    // The same file again: nothing changed.
    writeFileSync(file, JSON.stringify(baseConfig([{ id: 'a', url: a.url }])))
    expect(await s.reload()).toEqual({ status: 200, body: { changed: [], restartRequired: [] } })
  })

  it('keeps a generated admin token when the file names none', async () => {
    const a = await origin('a')
    const dir = tempDir()
    const file = join(dir, 'strata.json')
    const cfg = baseConfig([{ id: 'a', url: a.url }]) as Record<string, unknown>
    cfg['admin'] = { host: '127.0.0.1', port: 0 }
    writeFileSync(file, JSON.stringify(cfg))
    const s = await startFromFile(file)
    const token = s.strata.config.admin.token
    const res = await request(`${s.adminUrl}/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
    expect(res.statusCode).toBe(200)
    expect(await res.body.json()).toEqual({ changed: [], restartRequired: [] })
  })

  it('answers 409 when strata was not started from a file', async () => {
    const a = await origin('a')
    const strata = createStrata(loadConfigFile(writeTemp(baseConfig([{ id: 'a', url: a.url }]))), { logger: pino({ level: 'silent' }) })
    const addr = await strata.listen()
    onTestFinished(() => strata.close())
    const res = await request(`${addr.admin!.url}/config/reload`, { method: 'POST', headers: AUTH })
    expect(res.statusCode).toBe(409)
    expect(await res.body.json()).toMatchObject({ error: 'STRATA_ADMIN_CONFLICT' })
  })

  it('SIGHUP makes `strata serve` re-read its file', async () => {
    const a = await origin('a')
    const b = await origin('b')
    const dir = tempDir()
    const file = join(dir, 'strata.json')
    writeFileSync(file, JSON.stringify(baseConfig([{ id: 'a', url: a.url }], { log: { level: 'info', access: false } })))
    const CLI = new URL('../../dist/cli.js', import.meta.url).pathname
    const child = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL')
    })
    const lines: Record<string, unknown>[] = []
    const waiters: Array<() => void> = []
    let buf = ''
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString()
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>)
        } catch {
          continue
        }
        for (const w of waiters.splice(0)) w()
      }
    })
    const waitFor = async (msg: string) => {
      for (;;) {
        const found = lines.find((l) => l['msg'] === msg)
        if (found) return found
        if (child.exitCode !== null) throw new Error(`strata exited (${child.exitCode}) before "${msg}"`)
        await new Promise<void>((r) => waiters.push(r))
      }
    }
    const listening = (await waitFor('strata listening'))['listening'] as { proxy: { url: string } }
    expect(await body(`${listening.proxy.url}/p`)).toBe('a /p')

    writeFileSync(file, JSON.stringify(baseConfig([{ id: 'b', url: b.url }], { log: { level: 'info', access: false } })))
    child.kill('SIGHUP')
    const reloaded = await waitFor('config reloaded')
    expect(reloaded['changed']).toEqual(['upstreams'])
    expect(await body(`${listening.proxy.url}/p`)).toBe('b /p')
    child.kill('SIGTERM')
    await new Promise((r) => child.once('exit', r))
    expect(child.exitCode).toBe(0)
  })
})

/** Waits for a condition that events outside the test make true (polling, no fixed sleep). */
async function waitUntil(check: () => boolean | Promise<boolean>): Promise<void> {
  await waitFor(async () => ((await check()) ? true : undefined), 10_000)
}

function writeTemp(content: unknown): string {
  const dir = tempDir()
  const file = join(dir, 'c.json')
  writeFileSync(file, JSON.stringify(content))
  return file
}
