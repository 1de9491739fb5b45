import { describe, expect, it, onTestFinished } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { pino } from 'pino'
import { createStrata } from '../../src/app.js'
import { loadConfigFile } from '../../src/config/load.js'
import type { Resolver } from '../../src/balancer/discovery.js'
import { startOrigin, startReplicas, type Origin } from '../helpers/origin.js'
import { TEST_TOKEN } from '../helpers/strata.js'
import { waitFor } from '../helpers/ports.js'

/**
 * Routes and pools change with a reload: requests keep flowing while the table swaps, a new pool
 * starts before a route can reach it, a retired pool finishes what it has; a pool's `resolve`
 * entry discovers its members like the default pool's.
 */

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }

async function origin(name: string): Promise<Origin> {
  const o = await startOrigin((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(`${name} ${req.url}`)
  })
  onTestFinished(() => o.close())
  return o
}

const base = (extra: Record<string, unknown>) => ({
  listen: { host: '127.0.0.1', port: 0 },
  admin: { host: '127.0.0.1', port: 0, token: TEST_TOKEN },
  log: { level: 'warn', access: false },
  ...extra,
})

async function startFromFile(config: Record<string, unknown>, resolver?: Resolver) {
  const dir = mkdtempSync(join(tmpdir(), 'strata-routes-'))
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'strata.json')
  writeFileSync(file, JSON.stringify(config))
  const strata = createStrata(loadConfigFile(file), { logger: pino({ level: 'silent' }), configFile: file, ...(resolver === undefined ? {} : { resolver }) })
  const addr = await strata.listen()
  onTestFinished(() => strata.close())
  const reload = async (next: Record<string, unknown>) => {
    writeFileSync(file, JSON.stringify(next))
    const res = await request(`${addr.admin!.url}/config/reload`, { method: 'POST', headers: AUTH })
    return { status: res.statusCode, body: (await res.body.json()) as { changed: string[] } }
  }
  return { strata, url: addr.proxy.url, adminUrl: addr.admin!.url, reload }
}

describe('routes and pools across a reload', () => {
  it('swaps routes and pools under load without a failed request', async () => {
    const [web, api, api2] = await Promise.all([origin('web'), origin('api'), origin('api2')])
    const first = base({ upstreams: [{ id: 'web', url: web.url }] })
    const s = await startFromFile(first)
    const agent = new Agent({ connections: 8 })
    onTestFinished(() => agent.close())

    // A bounded load of GETs on /api/… running across both reloads.
    const answers: string[] = []
    const failures: string[] = []
    let stop = false
    const worker = async () => {
      while (!stop) {
        try {
          const res = await request(`${s.url}/api/x`, { dispatcher: agent })
          const text = await res.body.text()
          if (res.statusCode !== 200) failures.push(`${res.statusCode} ${text}`)
          else answers.push(text.split(' ')[0]!)
        } catch (err) {
          failures.push(String(err))
        }
      }
    }
    const load = Promise.all(Array.from({ length: 4 }, worker))
    await waitFor(() => answers.length > 50)

    const second = base({
      upstreams: [{ id: 'web', url: web.url }],
      pools: { api: { upstreams: [{ id: 'api1', url: api.url }] } },
      routes: [{ match: { pathPrefix: '/api/' }, pool: 'api' }],
    })
    const r1 = await s.reload(second)
    expect(r1.status).toBe(200)
    expect(r1.body.changed).toEqual(expect.arrayContaining(['routes', 'pools.api']))
    const at = answers.length
    await waitFor(() => answers.slice(at).includes('api') && answers.length > at + 50)

    // The api pool moves to another server; then routes go away and the pool is retired.
    const r2 = await s.reload({ ...second, pools: { api: { upstreams: [{ id: 'api2', url: api2.url }] } } })
    expect(r2.status).toBe(200)
    const at2 = answers.length
    await waitFor(() => answers.slice(at2).includes('api2') && answers.length > at2 + 50)
    const r3 = await s.reload(first)
    expect(r3.status).toBe(200)
    const at3 = answers.length
    await waitFor(() => answers.length > at3 + 50)
    stop = true
    await load
    expect(failures).toEqual([])
    // After the last reload every answer is the default pool's.
    expect(new Set(answers.slice(at3 + 10))).toEqual(new Set(['web']))
    const pools = (await (await request(`${s.adminUrl}/pools`, { headers: AUTH })).body.json()) as { pools: { name: string }[] }
    expect(pools.pools.map((p) => p.name)).toEqual(['default'])
  })

  it('discovers the members of a named pool and routes to them', async () => {
    // Replicas on two loopback addresses sharing one port, as behind one service name.
    const replicas = await startReplicas(['127.0.0.2', '127.0.0.3'])
    onTestFinished(() => replicas.close())
    const memberPort = replicas.port
    let answer = [{ address: '127.0.0.2', family: 4 }]
    const resolver: Resolver = async (host) => (host === 'api.internal' ? answer : [])
    const web = await origin('web')
    const s = await startFromFile(base({
      upstreams: [{ id: 'web', url: web.url }],
      pools: { api: { upstreams: [{ id: 'api', url: `http://api.internal:${memberPort}`, resolve: true, resolveEveryMs: 100 }] } },
      routes: [{ match: { pathPrefix: '/api/' }, pool: 'api' }],
    }), resolver)
    expect(await (await request(`${s.url}/api/a`)).body.text()).toBe('127.0.0.2 /api/a')
    answer = [{ address: '127.0.0.2', family: 4 }, { address: '127.0.0.3', family: 4 }]
    const seen = new Set<string>()
    await waitFor(async () => {
      seen.add((await (await request(`${s.url}/api/b`)).body.text()).split(' ')[0]!)
      return seen.has('127.0.0.3')
    })
    const pools = (await (await request(`${s.adminUrl}/pools/api`, { headers: AUTH })).body.json()) as { upstreams: { id: string }[]; discovered: Record<string, string[]> }
    expect(pools.upstreams.map((u) => u.id).sort()).toEqual(['api@127.0.0.2', 'api@127.0.0.3'])
    expect(pools.discovered['api']?.sort()).toEqual(['api@127.0.0.2', 'api@127.0.0.3'])
    // The default pool is untouched.
    expect(await (await request(`${s.url}/x`)).body.text()).toBe('web /x')
  })
})
