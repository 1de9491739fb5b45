import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/ports.js'
import { createLogger } from '../../src/observability/logger.js'
import { createDataCache, type DataCache } from '../../src/data-cache/index.js'

const unhandled: unknown[] = []
const onUnhandled = (err: unknown) => unhandled.push(err)
let server: RedisServer
const open: DataCache[] = []

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled)
  server = await startRedis()
})
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled)
  await Promise.all(open.map((c) => c.disconnect()))
  await server.stop()
})
afterEach(() => {
  expect(unhandled).toEqual([])
})

/** A pino logger writing JSON lines into an array, to count what was logged. */
function capture(): { logger: ReturnType<typeof createLogger>; lines: Array<{ msg: string; level: number }> } {
  const lines: Array<{ msg: string; level: number }> = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l))
      cb()
    },
  })
  return { logger: createLogger('info', sink), lines }
}

describe('redis-server killed mid-run', () => {
  it('keeps answering from L1 and loaders, logs each state change once, then uses L2 again', async () => {
    const { logger, lines } = capture()
    const ns = `f${randomUUID().slice(0, 8)}`
    const opts = { namespace: ns, redis: server.url, logger, l2: { timeout: 200, breakerDuration: 300 } }
    const a = createDataCache(opts)
    const b = createDataCache({ ...opts, logger: capture().logger }) // its own log, so lines count a's only
    open.push(a, b)
    await Promise.all([a.ready(), b.ready()])

    await a.set('warm', 'in-l1')
    expect(await b.get('warm')).toBe('in-l1') // b holds it in L1 now
    let n = 0
    const loader = () => `loaded-${++n}`

    const before = lines.length
    await server.kill()
    await waitFor(() => a.stats().redis === 'down')

    // Every call answers, none throws: L1 hits, loaders, writes, deletes, tags, clear.
    const started = Date.now()
    for (let i = 0; i < 50; i++) {
      expect(await a.getOrSet('warm', loader)).toBe('in-l1')
      expect(await a.getOrSet(`cold${i}`, loader)).toMatch(/^loaded-/)
      await a.set(`s${i}`, i, { tags: ['t'] })
      expect(await a.get(`s${i}`)).toBe(i)
      await a.delete(`s${i}`)
      expect(await a.has(`s${i}`)).toBe(false)
    }
    await a.deleteByTag('t')
    await a.set('warm', 'changed-during-outage') // b cannot be told now
    await a.clear()
    // Calls did not each wait for a Redis timeout (200 ms × 300 calls would be a minute).
    expect(Date.now() - started).toBeLessThan(3000)
    expect(a.stats().l2Hits).toBe(0)

    // The outage is logged once, not per call.
    const downs = lines.slice(before).filter((l) => l.msg.startsWith('redis is unavailable'))
    expect(downs).toHaveLength(1)

    await server.restart()
    await waitFor(() => a.stats().redis === 'ready' && b.stats().redis === 'ready', 10_000)
    expect(lines.slice(before).filter((l) => l.msg.startsWith('redis is ready'))).toHaveLength(1)

    // b dropped the copy it could no longer trust (queued invalidations / resync on reconnect).
    await waitFor(async () => (await b.get('warm')) !== 'in-l1', 5000)

    // L2 is in use again: a write on a is an L2 hit on b.
    const l2Before = b.stats().l2Hits
    await a.set('after', 'back')
    expect(await b.get('after')).toBe('back')
    expect(b.stats().l2Hits).toBe(l2Before + 1)
  })

  it('a caller-owned ioredis instance works and is left open on disconnect', async () => {
    const client = new Redis(server.url)
    const c = createDataCache({ namespace: `f${randomUUID().slice(0, 8)}`, redis: client })
    await c.ready()
    await c.set('k', 1)
    const d = createDataCache({ namespace: c.name, redis: server.url })
    open.push(d)
    await d.ready()
    expect(await d.get('k')).toBe(1)
    expect(d.stats().l2Hits).toBe(1)
    await c.disconnect()
    expect(client.status).toBe('ready')
    client.disconnect()
  })

  it('a Redis that never answers opens the breaker: calls stop paying the timeout', async () => {
    // A listening socket that accepts and never replies: "slow", not "down".
    const { createServer } = await import('node:net')
    const sockets: import('node:net').Socket[] = []
    const mute = createServer((s) => sockets.push(s))
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r))
    const port = (mute.address() as { port: number }).port
    const { logger, lines } = capture()
    // ioredis needs a "ready" to send commands; skip its ready check so the mute server counts.
    const client = new Redis({ port, host: '127.0.0.1', enableReadyCheck: false, disableClientInfo: true, lazyConnect: false, maxRetriesPerRequest: 0 })
    client.on('error', () => {})
    const c = createDataCache({ namespace: 'mute', redis: client, bus: false, logger, l2: { timeout: 50, breakerThreshold: 3, breakerDuration: '1m' } })
    await waitFor(() => client.status === 'ready')
    let n = 0
    const t0 = Date.now()
    for (let i = 0; i < 3; i++) expect(await c.getOrSet(`k${i}`, () => ++n)).toBe(i + 1)
    const slowPart = Date.now() - t0
    expect(slowPart).toBeGreaterThanOrEqual(3 * 45) // each paid the timeout (read; writes run after)
    expect(c.stats().breaker).toBe('open')
    const t1 = Date.now()
    for (let i = 3; i < 100; i++) expect(await c.getOrSet(`k${i}`, () => ++n)).toBe(i + 1)
    expect(Date.now() - t1).toBeLessThan(50 * 3)
    expect(lines.filter((l) => l.msg.startsWith('redis circuit breaker opened'))).toHaveLength(1)
    await c.disconnect()
    client.disconnect()
    for (const s of sockets) s.destroy()
    await new Promise((r) => mute.close(r))
  })
})
