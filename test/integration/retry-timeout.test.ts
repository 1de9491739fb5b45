import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { startBehind } from '../helpers/strata.js'

// A server that accepts a request and then goes silent (a pulled cable, a hung process) makes
// strata's own response timeout fire. With "504" in balancer.retryOn that timeout is retried like
// an upstream's 504: on another server, for idempotent methods only (RFC 9110 §9.2.2) and when the
// request body can be sent again, on both forwarding paths (the cache's and the pass-through's).
describe('balancer.retryOn "504" and strata\'s own response timeout', () => {
  const silent: ServerResponse[] = []
  const hang = (_q: IncomingMessage, res: ServerResponse) => {
    silent.push(res) // never answered; closed in afterEach
  }
  const answer = (req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    req.on('end', () => res.writeHead(200, { 'cache-control': 'no-store', 'x-from': 'b2' }).end(`${req.method} ok`))
  }
  let close: (() => Promise<void>) | undefined
  afterEach(async () => {
    for (const r of silent.splice(0)) r.destroy()
    await close?.()
  })

  const setup = async (retryOn: string[]) => {
    const b = await startBehind([hang, answer], { timeouts: { responseMs: 300 }, balancer: { algorithm: 'round-robin', retries: 1, retryOn }, log: { level: 'silent' } })
    close = b.close
    return b
  }

  it('retries a GET on the other server, on the cache path and on the pass-through path', async () => {
    const { s, origins } = await setup(['connect', '504'])
    // The first GET of /page goes the cache's way and marks the URL hit-for-pass (no-store); the
    // next ones take the pass-through path.
    const first = await request(`${s.url}/page`)
    expect(first.statusCode).toBe(200)
    expect(await first.body.text()).toBe('GET ok')
    const silentAfterFirst = origins[0]!.hits()
    const statuses: string[] = []
    for (let i = 0; i < 5; i++) {
      const get = await request(`${s.url}/page`)
      statuses.push(`${get.statusCode} ${String(get.headers['cache-status'])}`)
      expect(await get.body.text()).toBe('GET ok')
    }
    expect(statuses.every((st) => st === '200 strata; fwd=bypass; detail=hit-for-pass'), statuses.join(', ')).toBe(true)
    // Round-robin sent first attempts to the silent server on both paths: those were retried.
    expect(silentAfterFirst).toBe(1)
    expect(origins[0]!.hits()).toBeGreaterThan(silentAfterFirst)
    expect(origins[1]!.hits()).toBe(6)
  })

  it('never retries a POST, and without "504" in retryOn answers the timeout as before', async () => {
    const { s, origins } = await setup(['connect'])
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) {
      const get = await request(`${s.url}/page-${i}`)
      statuses.push(get.statusCode)
      await get.body.dump()
    }
    expect(statuses.filter((c) => c === 504).length).toBe(origins[0]!.hits())
    await close?.()
    const b = await setup(['connect', '504'])
    let posted = 0
    for (let i = 0; i < 4; i++) {
      const post = await request(`${b.s.url}/post-${i}`, { method: 'POST', body: 'x' })
      if (post.statusCode === 504) posted++
      await post.body.dump()
    }
    expect(posted).toBe(b.origins[0]!.hits())
    expect(posted).toBeGreaterThan(0)
  })
})
