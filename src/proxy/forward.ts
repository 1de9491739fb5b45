import type { Readable } from 'node:stream'
import { errors as undiciErrors, type Dispatcher } from 'undici'
import { StrataError } from '../core/errors.js'
import { appendVia, headerList, headerValue, stripHopByHop, UNKEYED_REQUEST_FIELDS } from '../core/headers.js'
import type { UpstreamPools } from './upstream-pools.js'
import type { InterimHandler } from './interim.js'
import { shouldRetry, type Balancer, type DoneFn, type PickRequest, type PickResult, type RequestOutcome, type RetryOn } from '../balancer/index.js'

export interface ForwardRequest {
  method: string
  /** path + query, as it goes upstream */
  url: string
  /** Upstream request headers, already rewritten (see upstreamRequestHeaders). */
  headers: Record<string, string | string[]>
  body: Readable | Buffer | null
  pick: PickRequest
  signal?: AbortSignal
  /** Interim (1xx) responses from the upstream, before the final head (e.g. 103 Early Hints). */
  onInterim?: InterimHandler
}

export interface ForwardResponse {
  statusCode: number
  headers: Record<string, string | string[]>
  body: Readable
  upstreamId: string
  setCookie?: string
}

/** The head of the response `Forwarder.dispatch` delivers (after any retries). */
export interface ForwardHead {
  statusCode: number
  headers: Record<string, string | string[]>
  upstreamId: string
  setCookie?: string
}

/**
 * Where `Forwarder.dispatch` delivers a response: straight from undici's parser callbacks, with no
 * stream in between. Either `start` (then `data`*, then `end` or `error`) or `error` alone
 * happens, unless the sink refuses the response.
 */
export interface ForwardSink {
  /** Each attempt's controller, as soon as it exists: abort it when the client leaves. */
  attach(controller: Dispatcher.DispatchController): void
  /** The response head. Returning false refuses it: the upstream request is aborted and nothing more is called. */
  start(head: ForwardHead): boolean
  data(chunk: Buffer): void
  end(): void
  /** A failure before `start` (answer with an error) or after it (cut the response short). */
  error(err: StrataError): void
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED'])
/**
 * Expect is answered by strata's own server (100-continue); the unkeyed fields origins reflect
 * (X-Host, X-Original-URL, X-Rewrite-URL) never go upstream.
 */
const NOT_FORWARDED: ReadonlySet<string> = new Set(['expect', ...UNKEYED_REQUEST_FIELDS])

/**
 * Builds the upstream request headers from the client's: hop-by-hop removed (RFC 9110 §7.6.1),
 * Via appended (RFC 9110 §7.6.3). Host is kept, so virtual hosts work behind strata as they did
 * without it. From a trusted proxy (`trustProxy`), Forwarded and X-Forwarded-* are kept and
 * strata's hop is appended (X-Forwarded-For, and Forwarded when the peer sent one); from anyone
 * else they are dropped, X-Forwarded-For is the peer's address alone and X-Forwarded-Proto /
 * -Host say what strata saw (RFC 7239 §8.1: a client's own claims are not to be believed).
 */
export function upstreamRequestHeaders(
  raw: Record<string, string | string[] | undefined>,
  client: { ip: string; proto: 'http' | 'https'; trusted?: boolean },
): Record<string, string | string[]> {
  const trusted = client.trusted === true
  const out = stripHopByHop(raw, NOT_FORWARDED, !trusted)
  const xff = trusted ? headerList(raw, 'x-forwarded-for') : undefined
  out['x-forwarded-for'] = xff ? `${xff}, ${client.ip}` : client.ip
  const host = headerValue(raw, 'host')
  if (!trusted || out['x-forwarded-proto'] === undefined) out['x-forwarded-proto'] = client.proto
  if (host !== undefined && (!trusted || out['x-forwarded-host'] === undefined)) out['x-forwarded-host'] = host
  const fwd = trusted ? headerList(raw, 'forwarded') : undefined
  if (fwd) out['forwarded'] = `${fwd}, ${forwardedElement(client.ip, client.proto, host)}`
  out['via'] = appendVia(raw['via'])
  return out
}

/** strata's hop as a Forwarded element (RFC 7239 §4, §6: an IPv6 node is bracketed and quoted). */
function forwardedElement(ip: string, proto: string, host: string | undefined): string {
  const node = ip.includes(':') ? `"[${ip}]"` : ip
  return host === undefined ? `for=${node};proto=${proto}` : `for=${node};host="${host}";proto=${proto}`
}

/** Maps an undici / socket failure to strata's error table. */
export function classifyUpstreamError(err: unknown, upstreamId: string): StrataError {
  if (err instanceof StrataError) return err
  const code = (err as { code?: string } | null)?.code ?? ''
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError || code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new StrataError('STRATA_UPSTREAM_TIMEOUT', `upstream ${upstreamId} did not answer in time`, { cause: err })
  }
  if (err instanceof undiciErrors.ConnectTimeoutError || CONNECT_CODES.has(code)) {
    return new StrataError('STRATA_UPSTREAM_CONNECT', `could not connect to upstream ${upstreamId} (${code || 'error'})`, { cause: err })
  }
  return new StrataError('STRATA_UPSTREAM_RESPONSE', `upstream ${upstreamId} failed (${code || (err as Error)?.message || 'error'})`, { cause: err })
}

/** Every server is down, ejected or draining: 503, with a Retry-After for when one may be back. */
function noUpstream(balancer: Balancer): StrataError {
  return new StrataError('STRATA_NO_UPSTREAM', 'no healthy upstream is available', { retryAfter: balancer.retryAfterSeconds() })
}

export interface ForwarderOptions {
  pools: UpstreamPools
  balancer: Balancer
  /** Learn-mode sticky sessions shared through Redis need an async lookup before picking. */
  asyncPick: boolean
  retries: number
  /** Which failures may be retried on another server (`balancer.retryOn`). */
  retryOn: readonly RetryOn[]
  /** Told the outcome of every upstream attempt (the metrics' upstream time and failures). */
  onAttempt?: (upstreamId: string, outcome: RequestOutcome) => void
}

/**
 * Sends one request to a picked upstream, retrying idempotent requests on another server when
 * the failure allows it (a connection failure, or a configured 502/503/504, strata's own response
 * timeout counting as a 504). A request whose
 * streamed body may have been sent is never retried, since its body is gone.
 */
export class Forwarder {
  readonly #pools: UpstreamPools
  readonly #balancer: Balancer
  readonly #asyncPick: boolean
  #retries: number
  #retryOn: readonly RetryOn[]
  readonly #onAttempt: ((upstreamId: string, outcome: RequestOutcome) => void) | undefined

  constructor(opts: ForwarderOptions) {
    this.#onAttempt = opts.onAttempt
    this.#pools = opts.pools
    this.#balancer = opts.balancer
    this.#asyncPick = opts.asyncPick
    this.#retries = opts.retries
    this.#retryOn = opts.retryOn
  }

  /** A config reload: the next request's retries follow `balancer.retries` / `retryOn`. */
  reconfigure(opts: { retries: number; retryOn: readonly RetryOn[] }): void {
    this.#retries = opts.retries
    this.#retryOn = opts.retryOn
  }

  /** Starts one attempt on `upstream` with the balancer; the returned function ends it (and tells `onAttempt`). */
  begin(upstream: PickResult['upstream']): DoneFn {
    const done = this.#balancer.begin(upstream)
    const observe = this.#onAttempt
    if (observe === undefined) return done
    return (o) => {
      done(o)
      observe(upstream.id, o)
    }
  }

  /** Whether the balancer is asked asynchronously (learn-mode sticky sessions in Redis); `dispatch` needs a synchronous pick. */
  get asyncPick(): boolean {
    return this.#asyncPick
  }

  /** Whether a failed attempt (0-based) may be retried on another server. */
  retryable(req: ForwardRequest, attempt: number, connectError: boolean, statusCode?: number): boolean {
    // A streamed body may be partly consumed by a failed attempt and cannot be sent again.
    const replayable = req.body === null || Buffer.isBuffer(req.body)
    return replayable && shouldRetry({ method: req.method, attempt: attempt + 1, retries: this.#retries, connectError, statusCode, bodySent: req.body !== null, retryOn: this.#retryOn })
  }

  /** The pool request options for one attempt on `upstream`. */
  optionsFor(req: ForwardRequest, upstream: PickResult['upstream']): Dispatcher.DispatchOptions {
    return {
      method: req.method as Dispatcher.HttpMethod,
      // An upstream URL with a path (http://host/app) serves under that prefix.
      path: upstream.basePath === '' ? req.url : upstream.basePath + req.url,
      headers: req.headers,
      body: req.body,
    }
  }

  /**
   * Like `forward`, with the same picks, retries and balancer bookkeeping, but the response goes
   * to `sink` from undici's callbacks: no Readable, no pipe, no promise per request. The proxy's
   * pass-through path uses it; needs a synchronous pick (`asyncPick` false).
   */
  dispatch(req: ForwardRequest, sink: ForwardSink): void {
    new DirectForward(this, this.#balancer, this.#pools, req, sink).next(undefined)
  }

  async forward(req: ForwardRequest): Promise<ForwardResponse> {
    const retryable = (attempt: number, connectError: boolean, statusCode?: number) => this.retryable(req, attempt, connectError, statusCode)
    let tried: Set<string> | undefined
    let lastError: StrataError | undefined
    for (let attempt = 0; ; attempt++) {
      const picked: PickResult | undefined = this.#asyncPick ? await this.#balancer.pickAsync(req.pick, tried) : this.#balancer.pick(req.pick, tried)
      if (picked === undefined) {
        throw lastError ?? noUpstream(this.#balancer)
      }
      const { upstream } = picked
      const done = this.begin(upstream)
      const started = performance.now()
      let res: Dispatcher.ResponseData
      try {
        const onInterim = req.onInterim
        const opts: Dispatcher.RequestOptions = { ...this.optionsFor(req, upstream), signal: req.signal ?? null }
        if (onInterim !== undefined) opts.onInfo = (info) => onInterim(info.statusCode, info.headers)
        res = await this.#pools.get(upstream.id, upstream.url).request(opts)
      } catch (err) {
        const e = classifyUpstreamError(err, upstream.id)
        const connectError = e.code === 'STRATA_UPSTREAM_CONNECT'
        done({ ok: false, connectError, aborted: req.signal?.aborted === true, durationMs: performance.now() - started })
        lastError = e
        // No head arrived in `responseMs`: strata's own 504, retried as an upstream's would be.
        if ((connectError && retryable(attempt, true)) || (e.code === 'STRATA_UPSTREAM_TIMEOUT' && retryable(attempt, false, 504))) {
          ;(tried ??= new Set()).add(upstream.id)
          continue
        }
        throw e
      }
      const status = res.statusCode
      if (status >= 502 && status <= 504 && retryable(attempt, false, status)) {
        done({ ok: false, statusCode: status, durationMs: performance.now() - started })
        res.body.resume() // drain so the connection returns to the pool
        ;(tried ??= new Set()).add(upstream.id)
        lastError = new StrataError(status === 504 ? 'STRATA_UPSTREAM_TIMEOUT' : 'STRATA_UPSTREAM_RESPONSE', `upstream ${upstream.id} answered ${status}`)
        continue
      }
      done({ ok: status < 500, statusCode: status, durationMs: performance.now() - started })
      if (this.#asyncPick || res.headers['set-cookie'] !== undefined) this.#balancer.learnFromResponse(upstream, res.headers['set-cookie'])
      const out: ForwardResponse = {
        statusCode: status,
        headers: res.headers as Record<string, string | string[]>,
        body: res.body,
        upstreamId: upstream.id,
      }
      if (picked.setCookie !== undefined) out.setCookie = picked.setCookie
      return out
    }
  }
}

/**
 * One `Forwarder.dispatch`: the attempts of one request, each an undici dispatch handler. A
 * connection failure before the response, or a retryable 502/503/504 (drained first, so the
 * connection is kept), moves to another server, like `Forwarder.forward`.
 */
class DirectForward {
  #attempt = -1
  #tried: Set<string> | undefined
  #lastError: StrataError | undefined
  readonly #forwarder: Forwarder
  readonly #balancer: Balancer
  readonly #pools: UpstreamPools
  readonly req: ForwardRequest
  readonly sink: ForwardSink

  constructor(forwarder: Forwarder, balancer: Balancer, pools: UpstreamPools, req: ForwardRequest, sink: ForwardSink) {
    this.#forwarder = forwarder
    this.#balancer = balancer
    this.#pools = pools
    this.req = req
    this.sink = sink
  }

  /** Starts the next attempt, excluding the upstream that just failed (if any). */
  next(failed: string | undefined): void {
    if (failed !== undefined) (this.#tried ??= new Set()).add(failed)
    this.#attempt++
    const picked = this.#balancer.pick(this.req.pick, this.#tried)
    if (picked === undefined) {
      this.sink.error(this.#lastError ?? noUpstream(this.#balancer))
      return
    }
    const handler = new AttemptHandler(this, picked, this.#forwarder.begin(picked.upstream))
    try {
      this.#pools.get(picked.upstream.id, picked.upstream.url).dispatch(this.#forwarder.optionsFor(this.req, picked.upstream), handler)
    } catch (err) {
      handler.onResponseError(undefined, err as Error)
    }
  }

  retryable(connectError: boolean, statusCode?: number): boolean {
    return this.#forwarder.retryable(this.req, this.#attempt, connectError, statusCode)
  }

  failed(err: StrataError): void {
    this.#lastError = err
  }

  learn(picked: PickResult, headers: Record<string, string | string[]>): void {
    const setCookie = headers['set-cookie']
    if (setCookie !== undefined) this.#balancer.learnFromResponse(picked.upstream, setCookie)
  }
}

class AttemptHandler implements Dispatcher.DispatchHandler {
  readonly #run: DirectForward
  readonly #picked: PickResult
  readonly #done: DoneFn
  readonly #started = performance.now()
  /** 0 waiting for the head, 1 delivering to the sink, 2 draining a 5xx before a retry, 3 refused by the sink or finished. */
  #state = 0

  constructor(run: DirectForward, picked: PickResult, done: DoneFn) {
    this.#run = run
    this.#picked = picked
    this.#done = done
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#run.sink.attach(controller)
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[]>): void {
    if (this.#state !== 0) return
    if (statusCode < 200) return this.#run.req.onInterim?.(statusCode, headers) // 1xx: informational, the real head follows
    const run = this.#run
    const id = this.#picked.upstream.id
    const durationMs = performance.now() - this.#started
    if (statusCode >= 502 && statusCode <= 504 && run.retryable(false, statusCode)) {
      this.#done({ ok: false, statusCode, durationMs })
      run.failed(new StrataError(statusCode === 504 ? 'STRATA_UPSTREAM_TIMEOUT' : 'STRATA_UPSTREAM_RESPONSE', `upstream ${id} answered ${statusCode}`))
      this.#state = 2
      return
    }
    this.#done({ ok: statusCode < 500, statusCode, durationMs })
    run.learn(this.#picked, headers)
    const head: ForwardHead = { statusCode, headers, upstreamId: id }
    if (this.#picked.setCookie !== undefined) head.setCookie = this.#picked.setCookie
    this.#state = 1
    if (!run.sink.start(head)) {
      this.#state = 3
      controller.abort(new Error('response refused'))
    }
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#state === 1) this.#run.sink.data(chunk)
  }

  onResponseEnd(): void {
    const state = this.#state
    this.#state = 3
    if (state === 1) this.#run.sink.end()
    else if (state === 2) this.#run.next(this.#picked.upstream.id)
  }

  onResponseError(controller: Dispatcher.DispatchController | undefined, err: Error): void {
    const state = this.#state
    this.#state = 3
    const run = this.#run
    const id = this.#picked.upstream.id
    if (state === 3) return
    // Only the sink aborts the controller: the client left (or a refused head, state 3).
    const aborted = controller?.aborted === true
    if (state === 2) return aborted ? undefined : run.next(id) // the 5xx being drained broke off: retry all the same
    const e = classifyUpstreamError(err, id)
    if (state === 1) return run.sink.error(e)
    const connectError = e.code === 'STRATA_UPSTREAM_CONNECT'
    this.#done({ ok: false, connectError, aborted, durationMs: performance.now() - this.#started })
    if (aborted) return run.sink.error(e)
    run.failed(e)
    // State 0: no head yet, so a timeout is strata's own 504, retried as an upstream's would be.
    if ((connectError && run.retryable(true)) || (e.code === 'STRATA_UPSTREAM_TIMEOUT' && run.retryable(false, 504))) run.next(id)
    else run.sink.error(e)
  }
}
