import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { request } from 'undici'
import { startOrigin } from '../helpers/origin.js'
import { startStrata } from '../helpers/strata.js'
import { sleep } from '../helpers/ports.js'

describe('graceful shutdown', () => {
  it('finishes in-flight requests, then refuses new connections', async () => {
    const origin = await startOrigin(async (_q, r) => {
      await sleep(300)
      r.end('finished')
    })
    const s = await startStrata([origin.url])
    try {
      const inflight = request(`${s.url}/slow`).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }))
      await sleep(50)
      const closed = s.close()
      expect(await inflight).toEqual({ status: 200, body: 'finished' })
      await closed
      await expect(request(`${s.url}/after`)).rejects.toThrow()
    } finally {
      await origin.close()
    }
  })

  it('does not wait past timeouts.shutdownMs for a stuck request', async () => {
    const origin = await startOrigin(async (_q, r) => {
      await sleep(5000)
      r.end('too late')
    })
    const s = await startStrata([origin.url], { timeouts: { shutdownMs: 200 } })
    try {
      const inflight = request(`${s.url}/stuck`).then(
        (r) => r.body.text(),
        (e: Error) => e,
      )
      await sleep(50)
      const started = Date.now()
      await s.close()
      expect(Date.now() - started).toBeLessThan(2000)
      await inflight
    } finally {
      await origin.close()
    }
  })

  it('does not wait for a connection that never sent a request (a browser pre-connect)', async () => {
    const origin = await startOrigin((_q, r) => r.end('ok'))
    const s = await startStrata([origin.url], { timeouts: { shutdownMs: 5000 } })
    try {
      const { port } = new URL(s.url)
      const idle = connect(Number(port), '127.0.0.1')
      await new Promise((resolve) => idle.once('connect', resolve))
      const closedByServer = new Promise((resolve) => idle.once('close', resolve))
      const started = Date.now()
      await s.close()
      expect(Date.now() - started).toBeLessThan(1000)
      await closedByServer
    } finally {
      await origin.close()
    }
  })
})
