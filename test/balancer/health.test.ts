import { afterEach, describe, expect, it } from 'vitest'
import { Balancer } from '../../src/balancer/index.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { sleep, waitFor } from '../helpers/ports.js'
import { balancerConfig, req } from './fixtures.js'

const healthy = (_: unknown, res: import('node:http').ServerResponse) => {
  res.end('ok')
}

describe('active health checks (real origins)', () => {
  const cleanup: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c()
  })

  async function setup(hc: Partial<{ intervalMs: number; timeoutMs: number; expectStatus: number; rise: number; fall: number }> = {}) {
    const a = await startOrigin(healthy)
    const b = await startOrigin(healthy)
    const origins: { a: Origin; b: Origin } = { a, b }
    cleanup.push(() => origins.a.close(), () => origins.b.close())
    const balancer = new Balancer({
      upstreams: [
        { id: 'a', url: a.url, weight: 1, backup: false },
        { id: 'b', url: b.url, weight: 1, backup: false },
      ],
      config: balancerConfig({ healthCheck: { path: '/health', intervalMs: 40, timeoutMs: 200, expectStatus: 200, rise: 2, fall: 2, ...hc } }),
    })
    cleanup.push(() => balancer.close())
    const state = (id: string) => balancer.list().find((s) => s.id === id)!
    return { origins, balancer, state }
  }

  it('marks a stopped server down, and up again when it comes back', async () => {
    const { origins, balancer, state } = await setup()
    balancer.start()
    await waitFor(() => origins.a.hits('/health') >= 2)
    expect(state('a').health).toBe('up')

    const port = origins.a.port
    await origins.a.close()
    await waitFor(() => state('a').health === 'down')
    expect(state('a').state).toBe('down')
    for (let i = 0; i < 10; i++) expect(balancer.pick(req())!.upstream.id).toBe('b')

    origins.a = await startOrigin(healthy, { port })
    await waitFor(() => state('a').health === 'up')
    // rise = 2: it took two passing checks on the new server to come back.
    expect(origins.a.hits('/health')).toBeGreaterThanOrEqual(2)
    const ids = new Set(Array.from({ length: 4 }, () => balancer.pick(req())!.upstream.id))
    expect(ids).toEqual(new Set(['a', 'b']))
  })

  it('a wrong status and a timeout both count as failures', async () => {
    const { origins, balancer, state } = await setup({ expectStatus: 204, timeoutMs: 100 })
    origins.a.setHandler((_, res) => {
      res.statusCode = 204
      res.end()
    })
    origins.b.setHandler(async (_, res) => {
      await sleep(400) // longer than timeoutMs
      res.statusCode = 204
      res.end()
    })
    balancer.start()
    await waitFor(() => state('b').health === 'down')
    expect(state('a').health).toBe('up')
    // fall = 2 in a row, not one.
    expect(origins.b.hits('/health')).toBeGreaterThanOrEqual(2)
  })

  it('checkNow() runs one round; close() stops checking', async () => {
    const { origins, balancer } = await setup()
    await balancer.checkNow()
    expect(origins.a.hits('/health')).toBe(1)
    balancer.start()
    await waitFor(() => origins.a.hits('/health') >= 3)
    await balancer.close()
    const after = origins.a.hits('/health')
    await sleep(150)
    expect(origins.a.hits('/health')).toBe(after)
  })

  it('checks upstreams added at runtime and forgets removed ones', async () => {
    const { balancer, state } = await setup()
    const c = await startOrigin((_, res) => {
      res.statusCode = 500
      res.end()
    })
    cleanup.push(() => c.close())
    balancer.add({ id: 'c', url: c.url, weight: 1, backup: false })
    balancer.start()
    await waitFor(() => state('c').health === 'down')
    balancer.remove('c')
    const hits = c.hits('/health')
    await sleep(150)
    expect(c.hits('/health')).toBeLessThanOrEqual(hits + 1) // at most one round that had already started
  })
})
