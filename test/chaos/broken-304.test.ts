import { describe, expect, it, onTestFinished } from 'vitest'
import { request } from 'undici'
import { startOrigin } from '../helpers/origin.js'
import { spawnStrata } from '../helpers/strata-process.js'

/**
 * An origin that answers a revalidation with a 304 declaring a Content-Length it never sends (the
 * public cache-tests suite's origin does): undici fails that body after strata drained it. The
 * failure is nobody's to answer; it must not end the process as an 'error' with no listener.
 */
describe('a 304 with a Content-Length and no body', () => {
  it('revalidates, answers the client, and strata lives', async () => {
    let served = 0
    const origin = await startOrigin((req, res) => {
      served++
      if (req.headers['if-none-match'] === '"v1"') {
        res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=0', 'content-length': '10' })
        res.end()
        return
      }
      res.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=0', 'content-type': 'text/plain', 'content-length': '10' })
      res.end('0123456789')
    })
    onTestFinished(() => origin.close())
    const s = await spawnStrata([origin.url])
    onTestFinished(async () => {
      await s.stop()
    })
    const get = async () => {
      const res = await request(`${s.url}/page`)
      return { status: res.statusCode, body: await res.body.text(), cache: res.headers['x-cache'] }
    }
    expect(await get()).toMatchObject({ status: 200, body: '0123456789' })
    // Stored with max-age=0: each request revalidates, and each 304 is the broken one.
    for (let i = 0; i < 5; i++) expect(await get()).toMatchObject({ status: 200, body: '0123456789' })
    expect(served).toBe(6)
    // One more round trip after the last drained 304 failed: the process is still there.
    expect((await get()).status).toBe(200)
    expect(s.alive()).toBe(true)
    expect(s.stderr()).not.toContain("Unhandled 'error'")
  })
})
