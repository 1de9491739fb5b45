import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { Agent, request } from 'undici'
import { Balancer } from '../../src/balancer/index.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { sleep } from '../helpers/ports.js'
import { balancerConfig, req } from './fixtures.js'

describe('least-connections with one slow server (real origins)', () => {
  const origins: Origin[] = []
  const agent = new Agent()
  afterEach(async () => {
    await Promise.all(origins.splice(0).map((o) => o.close()))
  })
  afterAll(() => agent.close())

  it('sends most traffic to the fast servers', async () => {
    const delay = (ms: number) => async (_: unknown, res: import('node:http').ServerResponse) => {
      await sleep(ms)
      res.end('ok')
    }
    origins.push(await startOrigin(delay(150)), await startOrigin(delay(5)), await startOrigin(delay(5)))
    const [slow, fast1, fast2] = origins as [Origin, Origin, Origin]
    const b = new Balancer({
      upstreams: [
        { id: 'slow', url: slow.url, weight: 1, backup: false },
        { id: 'fast1', url: fast1.url, weight: 1, backup: false },
        { id: 'fast2', url: fast2.url, weight: 1, backup: false },
      ],
      config: balancerConfig({ algorithm: 'least-connections' }),
    })
    // 6 concurrent clients, 20 requests each: the proxy's loop of pick → begin → request → done.
    const client = async () => {
      for (let i = 0; i < 20; i++) {
        const { upstream } = b.pick(req())!
        const done = b.begin(upstream)
        const started = performance.now()
        const res = await request(upstream.origin + '/', { dispatcher: agent })
        await res.body.text()
        done({ ok: true, statusCode: res.statusCode, durationMs: performance.now() - started })
      }
    }
    await Promise.all(Array.from({ length: 6 }, client))
    expect(slow.hits() + fast1.hits() + fast2.hits()).toBe(120)
    // Round-robin would give the slow server 40; least-connections keeps it to about its share of time.
    expect(slow.hits()).toBeLessThan(20)
    expect(fast1.hits()).toBeGreaterThan(40)
    expect(fast2.hits()).toBeGreaterThan(40)
    const row = b.list().find((s) => s.id === 'slow')!
    expect(row.active).toBe(0)
    expect(row.latencyEwmaMs).toBeGreaterThan(100)
    await b.close()
  })
})
