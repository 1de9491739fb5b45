import type { IncomingMessage, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Balancer, type RetryOn } from '../../src/balancer/index.js'
import type { BalancerConfig } from '../../src/config/schema.js'
import type { StrataError } from '../../src/core/errors.js'
import { createLogger } from '../../src/observability/logger.js'
import { Forwarder, type ForwardHead, type ForwardPool, type ForwardRequest, type ForwardSink } from '../../src/proxy/forward.js'
import { UpstreamPools } from '../../src/proxy/upstream-pools.js'
import { balancerConfig, req as pickReq } from '../balancer/fixtures.js'
import { readBody, startOrigin, type Handler, type Origin } from '../helpers/origin.js'
import { freePort, waitFor } from '../helpers/ports.js'

/**
 * The retry engine behind both of the forwarder's entry points, driven through the same
 * scenarios on real origins: `forward` (a promise and a Readable body, the cache's path) and
 * `dispatch` (callbacks into a sink, the pass-through path). Each scenario also checks the
 * balancer's bookkeeping: nothing left active, failures counted where a server failed and nowhere
 * else.
 */

type Mode = 'forward' | 'dispatch'

interface Outcome {
  status?: number
  upstreamId?: string
  body?: Buffer
  error?: StrataError | Error
}

interface Drive {
  readonly result: Promise<Outcome>
  /** Cancels the request as a client that leaves does on this entry point. */
  abort(): void
}

/** A ForwardSink that collects the response, as the pass path's sink would write it. */
class CollectSink implements ForwardSink {
  controller: Dispatcher.DispatchController | undefined
  readonly #chunks: Buffer[] = []
  #head: ForwardHead | undefined
  readonly #done: (o: Outcome) => void
  readonly #onChunk: (() => void) | undefined
  constructor(done: (o: Outcome) => void, onChunk?: () => void) {
    this.#done = done
    this.#onChunk = onChunk
  }
  attach(controller: Dispatcher.DispatchController): void {
    this.controller = controller
  }
  start(head: ForwardHead): boolean {
    this.#head = head
    return true
  }
  data(chunk: Buffer): void {
    this.#chunks.push(chunk)
    this.#onChunk?.()
  }
  end(): void {
    this.#done({ status: this.#head!.statusCode, upstreamId: this.#head!.upstreamId, body: Buffer.concat(this.#chunks) })
  }
  error(err: StrataError): void {
    this.#done({ error: err, ...(this.#head === undefined ? {} : { status: this.#head.statusCode }) })
  }
}

function drive(forwarder: Forwarder, mode: Mode, req: ForwardRequest, onChunk?: () => void): Drive {
  if (mode === 'dispatch') {
    let sink!: CollectSink
    const result = new Promise<Outcome>((resolve) => {
      sink = new CollectSink(resolve, onChunk)
      forwarder.dispatch(req, sink)
    })
    return { result, abort: () => sink.controller?.abort(new Error('client closed the connection')) }
  }
  const ac = new AbortController()
  const result = forwarder.forward({ ...req, signal: ac.signal }).then(
    async (res): Promise<Outcome> => {
      const chunks: Buffer[] = []
      try {
        for await (const c of res.body) {
          chunks.push(c as Buffer)
          onChunk?.()
        }
      } catch (err) {
        return { status: res.statusCode, error: err as Error }
      }
      return { status: res.statusCode, upstreamId: res.upstreamId, body: Buffer.concat(chunks) }
    },
    (err: StrataError): Outcome => ({ error: err }),
  )
  return { result, abort: () => ac.abort() }
}

const send = (forwarder: Forwarder, mode: Mode, req: ForwardRequest) => drive(forwarder, mode, req).result

/** Per upstream: what the balancer holds after the requests. */
function book(balancer: Balancer): Record<string, { active: number; failures: number; ejections: number }> {
  return Object.fromEntries(balancer.list().map((u) => [u.id, { active: u.active, failures: u.failures, ejections: u.ejections }]))
}

/** A path that consistent hashing sends to `id` first, so a scenario's first attempt is known. */
function pathTo(balancer: Balancer, id: string): string {
  for (let i = 0; i < 1000; i++) {
    const path = `/p${i}`
    if (balancer.pick(pickReq({ path }))?.upstream.id === id) return path
  }
  throw new Error(`no path hashes to ${id}`)
}

const ok: Handler = (req, res) => {
  req.resume()
  req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${req.method} ok`))
}

describe.each<Mode>(['forward', 'dispatch'])('the forwarder engine, %s', (mode) => {
  const cleanup: Array<() => Promise<unknown> | void> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  /** Origins (a handler) or dead ports (null) as upstreams a, b, c… of one pool. */
  async function setup(servers: Array<Handler | null>, over: Partial<BalancerConfig> = {}, asyncPick = false) {
    const origins: Array<Origin | undefined> = []
    const upstreams = []
    for (const [i, h] of servers.entries()) {
      const id = String.fromCharCode(97 + i)
      const origin = h === null ? undefined : await startOrigin(h)
      if (origin) cleanup.push(() => origin.close())
      origins.push(origin)
      upstreams.push({ id, url: origin?.url ?? `http://127.0.0.1:${await freePort()}`, weight: 1, backup: false })
    }
    const config = balancerConfig({ algorithm: 'consistent-hash', hashOn: 'path', ...over })
    const balancer = new Balancer({ upstreams, config, logger: createLogger('silent') })
    cleanup.push(() => balancer.close())
    const pools = new UpstreamPools({ connectMs: 2000, responseMs: 5000, keepAliveMs: 4000, shutdownMs: 0, workerCallMs: 1000 })
    cleanup.push(() => pools.close(0))
    const attempts: string[] = []
    const forwarder = new Forwarder({
      pools,
      onAttempt: (pool, id, o) => attempts.push(`${pool}:${id}:${o.aborted === true ? 'aborted' : o.connectError === true ? 'connect' : String(o.statusCode ?? 'error')}`),
    })
    const pool: ForwardPool = { name: 'web', balancer, retries: config.retries, retryOn: config.retryOn, asyncPick }
    const request = (path: string, extra: Partial<ForwardRequest> = {}): ForwardRequest => ({
      pool,
      method: 'GET',
      url: path,
      headers: { host: 'example.test' },
      body: null,
      pick: pickReq({ path }),
      ...extra,
    })
    return { origins, balancer, forwarder, attempts, request }
  }

  it('a connect failure is retried on the other server', async () => {
    const { origins, balancer, forwarder, attempts, request } = await setup([null, ok])
    const out = await send(forwarder, mode, request(pathTo(balancer, 'a')))
    expect(out.error).toBeUndefined()
    expect(out).toMatchObject({ status: 200, upstreamId: 'b' })
    expect(out.body?.toString()).toBe('GET ok')
    expect(attempts).toEqual(['web:a:connect', 'web:b:200'])
    expect(origins[1]!.hits()).toBe(1)
    expect(book(balancer)).toEqual({ a: { active: 0, failures: 1, ejections: 0 }, b: { active: 0, failures: 0, ejections: 0 } })
  })

  it.each([502, 503, 504])('a retryable %i is drained (its connection kept) and retried on the other server', async (status) => {
    const big = Buffer.alloc(256 * 1024, 'e')
    let connections = 0
    const { origins, balancer, forwarder, attempts, request } = await setup(
      [(_req, res) => res.writeHead(status, { 'content-length': String(big.length) }).end(big), ok],
      { retryOn: ['connect', '502', '503', '504'] },
    )
    origins[0]!.server.on('connection', () => connections++)
    const path = pathTo(balancer, 'a')
    for (let i = 0; i < 2; i++) {
      const out = await send(forwarder, mode, request(path))
      expect(out).toMatchObject({ status: 200, upstreamId: 'b' })
    }
    expect(attempts).toEqual([`web:a:${status}`, 'web:b:200', `web:a:${status}`, 'web:b:200'])
    // Read to its end, the 5xx left its connection in the pool: the second request reused it.
    expect(connections).toBe(1)
    expect(book(balancer)).toEqual({ a: { active: 0, failures: 2, ejections: 0 }, b: { active: 0, failures: 0, ejections: 0 } })
  })

  it('never retries a POST after a 502: the server saw it', async () => {
    const { origins, balancer, forwarder, attempts, request } = await setup(
      [
        async (req, res) => {
          await readBody(req)
          res.writeHead(502).end('bad gateway')
        },
        ok,
      ],
      { retryOn: ['connect', '502'] },
    )
    const out = await send(forwarder, mode, request(pathTo(balancer, 'a'), { method: 'POST', body: Buffer.from('order=1') }))
    expect(out).toMatchObject({ status: 502, upstreamId: 'a' })
    expect(out.body?.toString()).toBe('bad gateway')
    expect(attempts).toEqual(['web:a:502'])
    expect(origins[1]!.hits()).toBe(0)
    expect(book(balancer)).toEqual({ a: { active: 0, failures: 1, ejections: 0 }, b: { active: 0, failures: 0, ejections: 0 } })
  })

  it('a Buffer body is sent again on a retry; a streamed body never is', async () => {
    const seen: string[] = []
    const { origins, balancer, forwarder, attempts, request } = await setup([
      null,
      async (req, res) => {
        seen.push((await readBody(req)).toString())
        res.writeHead(200).end('stored')
      },
    ])
    const path = pathTo(balancer, 'a')
    const replayed = await send(forwarder, mode, request(path, { method: 'PUT', body: Buffer.from('v=1') }))
    expect(replayed).toMatchObject({ status: 200, upstreamId: 'b' })
    expect(seen).toEqual(['v=1'])
    const streamed = await send(forwarder, mode, request(path, { method: 'PUT', body: Readable.from([Buffer.from('v=2')]) }))
    expect(streamed.error).toMatchObject({ code: 'STRATA_UPSTREAM_CONNECT' })
    expect(attempts).toEqual(['web:a:connect', 'web:b:200', 'web:a:connect'])
    expect(origins[1]!.hits()).toBe(1)
    expect(book(balancer)).toEqual({ a: { active: 0, failures: 2, ejections: 0 }, b: { active: 0, failures: 0, ejections: 0 } })
  })

  it('a client that leaves before the head: the attempt counts as aborted, the upstream request is cancelled, nothing is ejected', async () => {
    const held: ServerResponse[] = []
    let arrived!: () => void
    const arrival = new Promise<void>((r) => (arrived = r))
    let upstreamClosed!: () => void
    const closed = new Promise<void>((r) => (upstreamClosed = r))
    const hold: Handler = (req: IncomingMessage, res) => {
      held.push(res)
      res.on('close', upstreamClosed)
      req.resume()
      arrived()
    }
    // One failure would eject `a`: an abort must not count as one.
    const { balancer, forwarder, attempts, request } = await setup([hold, ok], { passive: { failures: 1, cooldownMs: 30_000, maxCooldownMs: 30_000, statuses: [] } })
    cleanup.push(() => held.forEach((r) => r.destroy()))
    const d = drive(forwarder, mode, request(pathTo(balancer, 'a')))
    await arrival
    d.abort()
    const out = await d.result
    expect(out.error).toBeDefined()
    expect(out.status).toBeUndefined()
    await closed
    expect(attempts).toEqual(['web:a:aborted'])
    expect(book(balancer)).toEqual({ a: { active: 0, failures: 0, ejections: 0 }, b: { active: 0, failures: 0, ejections: 0 } })
  })

  it('a client that leaves mid-body: the response is cut, the upstream request cancelled, nothing is ejected', async () => {
    let upstreamClosed!: () => void
    const closed = new Promise<void>((r) => (upstreamClosed = r))
    const held: ServerResponse[] = []
    const partial: Handler = (req, res) => {
      req.resume()
      held.push(res)
      res.on('close', upstreamClosed)
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('first part, then nothing more')
    }
    const { balancer, forwarder, attempts, request } = await setup([partial, ok], { passive: { failures: 1, cooldownMs: 30_000, maxCooldownMs: 30_000, statuses: [] } })
    cleanup.push(() => held.forEach((r) => r.destroy()))
    let first = true
    const d = drive(forwarder, mode, request(pathTo(balancer, 'a')), () => {
      if (first) d.abort()
      first = false
    })
    const out = await d.result
    expect(out.status).toBe(200)
    expect(out.error).toBeDefined()
    await closed
    // The attempt was counted when its head arrived, as a success: the client leaving changes nothing.
    expect(attempts).toEqual(['web:a:200'])
    expect(book(balancer)).toEqual({ a: { active: 0, failures: 0, ejections: 0 }, b: { active: 0, failures: 0, ejections: 0 } })
  })

  it('an asynchronous pool (learn-mode sessions in Redis) picks through pickAsync, for the retry too', async () => {
    const { origins, balancer, forwarder, attempts, request } = await setup([null, ok], {}, true)
    const path = pathTo(balancer, 'a')
    const pickAsync = vi.spyOn(balancer, 'pickAsync')
    const pick = vi.spyOn(balancer, 'pick')
    const out = await send(forwarder, mode, request(path))
    expect(out).toMatchObject({ status: 200, upstreamId: 'b' })
    expect(pickAsync).toHaveBeenCalledTimes(2)
    // pickAsync picks with `pick` itself once it knows the session; nothing picked around it.
    expect(pick).toHaveBeenCalledTimes(2)
    expect(pickAsync.mock.calls[1]![1]).toEqual(new Set(['a']))
    expect(attempts).toEqual(['web:a:connect', 'web:b:200'])
    expect(origins[1]!.hits()).toBe(1)
    expect(book(balancer)).toEqual({ a: { active: 0, failures: 1, ejections: 0 }, b: { active: 0, failures: 0, ejections: 0 } })
  })

  it('exhausted retries answer with the last error: the last connect failure, or the last 5xx once every server is tried', async () => {
    const dead = await setup([null, null, null], { retries: 1 })
    const path = pathTo(dead.balancer, 'a')
    const out = await send(dead.forwarder, mode, dead.request(path))
    expect(out.error).toMatchObject({ code: 'STRATA_UPSTREAM_CONNECT', statusCode: 502 })
    const second = dead.attempts[1]!.split(':')[1]!
    expect(out.error?.message).toContain(`upstream ${second}`)
    expect(dead.attempts).toEqual(['web:a:connect', `web:${second}:connect`])
    for (const u of Object.values(book(dead.balancer))) expect(u.active).toBe(0)

    const unavailable: Handler = (_req, res) => res.writeHead(503).end('busy')
    const busy = await setup([unavailable, unavailable], { retries: 3, retryOn: ['connect', '503'] as RetryOn[] })
    const out2 = await send(busy.forwarder, mode, busy.request(pathTo(busy.balancer, 'a')))
    expect(out2.error).toMatchObject({ code: 'STRATA_UPSTREAM_RESPONSE', message: 'upstream b answered 503' })
    expect(busy.attempts).toEqual(['web:a:503', 'web:b:503'])
    expect(book(busy.balancer)).toEqual({ a: { active: 0, failures: 1, ejections: 0 }, b: { active: 0, failures: 1, ejections: 0 } })
  })

  it('no upstream left: 503 with a Retry-After for when one may be back, and no attempt', async () => {
    // Both servers drained (an ejected or failing one is still tried when nothing else is left).
    // With health checks, a server is back after one rise: 60 × 50 ms, so Retry-After says 3 s.
    const healthCheck = { path: '/health', intervalMs: 50, timeoutMs: 500, expectStatus: 200, rise: 60, fall: 1 }
    const { balancer, forwarder, attempts, request } = await setup([ok, ok], { healthCheck })
    balancer.drain('a')
    balancer.drain('b')
    const out = await send(forwarder, mode, request('/'))
    expect(out.error).toMatchObject({ code: 'STRATA_NO_UPSTREAM', statusCode: 503, retryAfter: 3 })
    expect(attempts).toEqual([])
    expect(book(balancer)).toEqual({ a: { active: 0, failures: 0, ejections: 0 }, b: { active: 0, failures: 0, ejections: 0 } })
  })

  it('relays interim responses before the final one', async () => {
    const interim: number[] = []
    const { forwarder, request } = await setup([
      (_req, res) => {
        res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' })
        res.writeHead(200).end('final')
      },
    ])
    const out = await send(forwarder, mode, request('/', { onInterim: (status) => interim.push(status) }))
    expect(out).toMatchObject({ status: 200 })
    expect(interim).toEqual([103])
  })
})

describe('forward: the body as a Readable', () => {
  const cleanup: Array<() => Promise<unknown> | void> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  it('holds the upstream back while the reader is behind, then delivers every byte; destroying the body cancels the upstream', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'z')
    const total = 512 // 32 MB
    let written = 0
    let upstreamClosed!: () => void
    const closed = new Promise<void>((r) => (upstreamClosed = r))
    const origin = await startOrigin((req, res) => {
      res.writeHead(200)
      if (req.url === '/cancel') res.on('close', upstreamClosed)
      let i = 0
      const pump = () => {
        while (i < total) {
          i++
          written += chunk.length
          if (!res.write(chunk)) return res.once('drain', pump)
        }
        res.end()
      }
      pump()
    })
    cleanup.push(() => origin.close())
    const balancer = new Balancer({ upstreams: [{ id: 'a', url: origin.url, weight: 1, backup: false }], config: balancerConfig(), logger: createLogger('silent') })
    cleanup.push(() => balancer.close())
    const pools = new UpstreamPools({ connectMs: 2000, responseMs: 5000, keepAliveMs: 4000, shutdownMs: 0, workerCallMs: 1000 })
    cleanup.push(() => pools.close(0))
    const forwarder = new Forwarder({ pools })
    const pool: ForwardPool = { name: 'default', balancer, retries: 1, retryOn: ['connect'], asyncPick: false }
    const get = (url: string) => forwarder.forward({ pool, method: 'GET', url, headers: {}, body: null, pick: pickReq() })

    const res = await get('/big')
    // Nobody reads: the body fills to its high-water mark and the upstream is paused there.
    await waitFor(() => res.body.readableLength >= res.body.readableHighWaterMark)
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
    expect(res.body.readableLength).toBeLessThan(1024 * 1024)
    expect(written).toBeLessThan(total * chunk.length)
    let n = 0
    for await (const c of res.body) n += (c as Buffer).length
    expect(n).toBe(total * chunk.length)

    written = 0
    const cancelled = await get('/cancel')
    await waitFor(() => cancelled.body.readableLength > 0)
    cancelled.body.destroy()
    await closed
    expect(written).toBeLessThan(total * chunk.length)
    expect(book(balancer)).toEqual({ a: { active: 0, failures: 0, ejections: 0 } })
  })
})
