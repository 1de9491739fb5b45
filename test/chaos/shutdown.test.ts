import { describe, expect, it, onTestFinished } from 'vitest'
import { request } from 'undici'
import type { ServerResponse } from 'node:http'
import { startOrigin } from '../helpers/origin.js'
import { startStrata } from '../helpers/strata.js'
import { load, tally } from './load.js'

/**
 * Shutdown under load (issue #10, chaos): requests in flight when shutdown starts finish, later
 * ones are refused or told 503, nothing hangs; an upstream request nobody waits for any more (its
 * client left) does not hold the shutdown past timeouts.shutdownMs.
 */

describe('chaos: shutdown under load', () => {
  it('in-flight requests finish, the rest are refused or 503, and close resolves', async () => {
    const origin = await startOrigin((req, res) => {
      // A little latency so requests overlap the shutdown; answered by the origin's own timer.
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': req.url!.startsWith('/c/') ? 'max-age=60' : 'no-store' })
        res.end(`ok ${req.url}`)
      }, 20)
    })
    onTestFinished(() => origin.close())
    const s = await startStrata([origin.url], { log: { level: 'error', access: false }, timeouts: { shutdownMs: 5000 } })
    let closed: Promise<void> | undefined
    let closedDone = false
    const out = await load(s.url, {
      requests: 400,
      concurrency: 16,
      pick: (i) => (i % 2 === 0 ? `/c/${i % 20}` : `/u/${i}`),
      between: (i) => {
        if (i === 150) closed = s.close().then(() => void (closedDone = true))
      },
    })
    await closed
    expect(closedDone).toBe(true)
    const t = tally(out)
    // Before the shutdown: all 200. After: 200 (in flight), 503 (a request on a draining
    // keep-alive connection), or a refused / closed connection. Never a hang, never another status.
    for (const k of Object.keys(t)) expect(['200', '503', 'ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']).toContain(k)
    // Everything started well before the shutdown was answered in full.
    expect(out.slice(0, 150 - 16).every((o) => o.status === 200)).toBe(true)
    // In flight = reached the origin (each /u/ path is unique): those finished with a 200. A request
    // racing the close of an idle keep-alive connection is reset before strata reads it (the
    // client may retry it, RFC 9112 §9.3.1), so it never reached the origin.
    const reached = out.filter((o) => o.path.startsWith('/u/') && origin.hits(o.path) > 0)
    expect(reached.length).toBeGreaterThan(0)
    expect(reached.filter((o) => o.status !== 200)).toEqual([])
  })

  it('an upstream request whose client left does not hold the shutdown past shutdownMs', async () => {
    let answered = false
    const origin = await startOrigin((_req, res: ServerResponse) => {
      const t = setTimeout(() => {
        answered = true
        res.writeHead(200, { 'cache-control': 'no-store' })
        res.end('too late')
      }, 20_000)
      res.once('close', () => clearTimeout(t))
    })
    onTestFinished(() => origin.close())
    const s = await startStrata([origin.url], { log: { level: 'error', access: false }, timeouts: { shutdownMs: 300 } })
    const abort = new AbortController()
    const gone = request(`${s.url}/stuck`, { signal: abort.signal }).catch(() => undefined)
    await expect.poll(() => origin.hits('/stuck')).toBe(1)
    abort.abort()
    await gone
    await s.close()
    // Ordering: strata finished closing while the origin was still sitting on the request.
    expect(answered).toBe(false)
  })
})
