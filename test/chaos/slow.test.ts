import { describe, expect, it, onTestFinished } from 'vitest'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { request } from 'undici'
import type { ServerResponse } from 'node:http'
import { startOrigin } from '../helpers/origin.js'
import { startStrata } from '../helpers/strata.js'
import { load, tally } from './load.js'

/**
 * A 10 s upstream and a 10 s fragment (issue #10, chaos): while they hang, other requests are
 * answered, in full, before either slow one ends (ordering, not wall-clock), and strata's event
 * loop (in this process) stays responsive.
 */

const SLOW_MS = 10_000
const ESI = { 'content-type': 'text/html', 'surrogate-control': 'content="ESI/1.0"', 'cache-control': 'max-age=60' }

describe('chaos: slow upstream and slow fragment', () => {
  it('other requests are answered while a 10 s response and a 10 s fragment hang', async () => {
    const later = (res: ServerResponse, fn: () => void) => {
      const t = setTimeout(fn, SLOW_MS)
      res.once('close', () => clearTimeout(t))
    }
    const origin = await startOrigin((req, res) => {
      const path = req.url!
      if (path === '/slow' || path === '/slow-fragment') {
        return later(res, () => {
          res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' })
          res.end('finally')
        })
      }
      if (path === '/slow-page') {
        res.writeHead(200, ESI)
        return res.end('<p>head</p><esi:include src="/slow-fragment"/><p>tail</p>')
      }
      if (path.startsWith('/page/')) {
        res.writeHead(200, ESI)
        return res.end(`<p>${path}</p><esi:include src="/fragment/${path.length % 3}"/>`)
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': path.startsWith('/fragment/') || path.startsWith('/cached/') ? 'max-age=60' : 'no-store' })
      res.end(`fast ${path}`)
    })
    onTestFinished(() => origin.close())
    const s = await startStrata([origin.url], { log: { level: 'error', access: false }, esi: { fragmentTimeoutMs: SLOW_MS * 3 }, timeouts: { shutdownMs: 500 } })
    onTestFinished(() => s.close())

    const abort = new AbortController()
    onTestFinished(() => abort.abort())
    let slowEnded = 0
    const slow = ['/slow', '/slow-page'].map((p) =>
      request(s.url + p, { signal: abort.signal })
        .then((r) => r.body.text())
        .catch(() => '')
        .finally(() => slowEnded++),
    )
    // Both slow requests reached the origin (the page's fragment too) before the load starts.
    await expect.poll(() => origin.hits('/slow') + origin.hits('/slow-fragment'), { timeout: 10_000 }).toBe(2)

    const eld = monitorEventLoopDelay({ resolution: 10 })
    eld.enable()
    const out = await load(s.url, {
      requests: 600,
      concurrency: 8,
      pick: (i) => ['/cached/' + (i % 10), '/uncached/' + i, '/page/' + (i % 7)][i % 3]!,
    })
    eld.disable()
    expect(tally(out)).toEqual({ 200: out.length })
    expect(out.filter((o) => o.path.startsWith('/page/')).every((o) => o.body.includes('fast /fragment/'))).toBe(true)
    // Ordering: all of it was answered while both slow responses were still pending.
    expect(slowEnded).toBe(0)
    // Generous: an event loop blocked by a slow upstream would show seconds, not this.
    const p99 = eld.percentile(99) / 1e6
    const max = eld.max / 1e6
    console.info(`event-loop delay during the load: p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`)
    expect(max).toBeLessThan(1000)
    abort.abort()
    await Promise.all(slow)
  })
})
