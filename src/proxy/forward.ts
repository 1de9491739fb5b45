import type { Readable } from 'node:stream'
import { errors as undiciErrors, type Dispatcher } from 'undici'
import { StrataError } from '../core/errors.js'
import { appendVia, headerList, headerValue, stripHopByHop, UNKEYED_REQUEST_FIELDS } from '../core/headers.js'
import type { UpstreamPools } from './upstream-pools.js'
import type { InterimHandler } from './interim.js'
import { shouldRetry, type Balancer, type DoneFn, type PickRequest, type PickResult, type RequestOutcome, type RetryOn } from '../balancer/index.js'
import { StreamSink } from './forward-stream.js'

/**
 * What the forwarder needs of one upstream pool. Each request names its own (a route picks it), so
 * one forwarder serves every pool; a config reload replaces the object rather than changing it.
 */
export interface ForwardPool {
  /** The pool's name (`default` for the top-level upstreams), as metrics label it. */
  readonly name: string
  readonly balancer: Balancer
  /** `balancer.retries`: extra attempts after the first. */
  readonly retries: number
  /** `balancer.retryOn`: which failures may be retried on another server. */
  readonly retryOn: readonly RetryOn[]
  /** Learn-mode sticky sessions in Redis: the pick is asynchronous. */
  readonly asyncPick: boolean
}

export interface ForwardRequest {
  /** The pool whose balancer picks the upstream and whose retry policy applies. */
  pool: ForwardPool
  method: string
  /** path + query, as it goes upstream */
  url: string
  /** Upstream request headers, already rewritten (see upstreamRequestHeaders). */
  headers: Record<string, string | string[]>
  body: Readable | Buffer | null
  pick: PickRequest
  /** `forward` only: cancels the request. A `dispatch` sink cancels through the controller it is given (`attach`). */
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

/** Told the outcome of every upstream attempt (the metrics' upstream time and failures). */
export type AttemptObserver = (pool: string, upstreamId: string, outcome: RequestOutcome) => void

export interface ForwarderOptions {
  pools: UpstreamPools
  onAttempt?: AttemptObserver
}

/**
 * Sends one request to an upstream its pool's balancer picks, retrying idempotent requests on
 * another server when the failure allows it (a connection failure, or a configured 502/503/504,
 * strata's own response timeout counting as a 504). A request whose streamed body may have been
 * sent is never retried, since its body is gone.
 *
 * Both entry points run the same engine (`Attempts`); they differ only in where the response
 * goes: `dispatch` hands undici's callbacks to a sink, `forward` turns them into a Readable.
 */
export class Forwarder {
  readonly #pools: UpstreamPools
  readonly #onAttempt: AttemptObserver | undefined

  constructor(opts: ForwarderOptions) {
    this.#pools = opts.pools
    this.#onAttempt = opts.onAttempt
  }

  /**
   * The response goes to `sink` straight from undici's parser callbacks: no Readable, no pipe, no
   * promise per request (none at all unless the pool picks asynchronously). The proxy's
   * pass-through path uses it.
   */
  dispatch(req: ForwardRequest, sink: ForwardSink): void {
    new Attempts(this.#pools, this.#onAttempt, req, sink).next()
  }

  /**
   * The response as a promise, settled when its head arrives (after any retries), with the body
   * as a Readable that pauses the upstream while its reader is behind. Aborting `req.signal`
   * cancels the request (the attempt counts as aborted, not as a server failure).
   */
  forward(req: ForwardRequest): Promise<ForwardResponse> {
    return new Promise((resolve, reject) => this.dispatch(req, new StreamSink(req.signal, resolve, reject)))
  }
}

/** Where the attempt in flight is (`Attempts.#state`). */
const WAITING = 0 // for the head
const DELIVERING = 1 // the response goes to the sink
const DRAINING = 2 // a retryable 5xx is read to its end, so its connection is kept, then the next attempt starts
const FINISHED = 3 // ended, failed, or refused by the sink

/**
 * The retry engine: the attempts of one request, pick → begin → dispatch → classify → retry or
 * deliver, with the balancer's bookkeeping for each. It is its own undici dispatch handler, one
 * object per request whatever the number of attempts; an attempt starts only once the previous
 * one has ended, and callbacks carrying another attempt's controller are ignored.
 */
class Attempts implements Dispatcher.DispatchHandler {
  readonly #pools: UpstreamPools
  readonly #onAttempt: AttemptObserver | undefined
  readonly #req: ForwardRequest
  readonly #sink: ForwardSink
  /** Attempts started so far; the one in flight is number `#attempt` (1-based). */
  #attempt = 0
  /** Upstreams that failed this request (allocated on the first retry). */
  #tried: Set<string> | undefined
  #lastError: StrataError | undefined
  // The attempt in flight.
  #picked: PickResult | undefined
  #done: DoneFn | undefined
  #controller: Dispatcher.DispatchController | undefined
  #started = 0
  #state = FINISHED

  constructor(pools: UpstreamPools, onAttempt: AttemptObserver | undefined, req: ForwardRequest, sink: ForwardSink) {
    this.#pools = pools
    this.#onAttempt = onAttempt
    this.#req = req
    this.#sink = sink
  }

  /** Picks a server not tried yet and starts an attempt there; only an asynchronous pool awaits. */
  next(): void {
    const req = this.#req
    const balancer = req.pool.balancer
    if (!req.pool.asyncPick) return this.#send(balancer.pick(req.pick, this.#tried))
    balancer
      .pickAsync(req.pick, this.#tried)
      // A failed session lookup balances the request as a new session would be.
      .then(
        (picked) => this.#send(picked),
        () => this.#send(balancer.pick(req.pick, this.#tried)),
      )
      .catch((err: unknown) => this.#sink.error(classifyUpstreamError(err, req.pool.name)))
  }

  #send(picked: PickResult | undefined): void {
    const req = this.#req
    if (picked === undefined) return this.#sink.error(this.#lastError ?? noUpstream(req.pool.balancer))
    const upstream = picked.upstream
    this.#attempt++
    this.#picked = picked
    this.#controller = undefined
    this.#state = WAITING
    this.#done = req.pool.balancer.begin(upstream)
    this.#started = performance.now()
    const opts: Dispatcher.DispatchOptions = {
      method: req.method as Dispatcher.HttpMethod,
      // An upstream URL with a path (http://host/app) serves under that prefix.
      path: upstream.basePath === '' ? req.url : upstream.basePath + req.url,
      headers: req.headers,
      body: req.body,
    }
    try {
      this.#pools.get(upstream.id, upstream.url).dispatch(opts, this)
    } catch (err) {
      this.onResponseError(undefined, err as Error)
    }
  }

  /** Ends the attempt in flight with the balancer, and tells `onAttempt`. */
  #finish(outcome: RequestOutcome): void {
    this.#done!(outcome)
    this.#onAttempt?.(this.#req.pool.name, this.#picked!.upstream.id, outcome)
  }

  /** Whether the failed attempt in flight may be retried on another server. */
  #retryable(connectError: boolean, statusCode?: number): boolean {
    const { body, method, pool } = this.#req
    // A streamed body may be partly consumed by a failed attempt and cannot be sent again.
    if (body !== null && !Buffer.isBuffer(body)) return false
    return shouldRetry({ method, attempt: this.#attempt, retries: pool.retries, connectError, statusCode, bodySent: body !== null, retryOn: pool.retryOn })
  }

  #retry(): void {
    ;(this.#tried ??= new Set()).add(this.#picked!.upstream.id)
    this.next()
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    this.#sink.attach(controller)
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[]>): void {
    if (controller !== this.#controller || this.#state !== WAITING) return
    if (statusCode < 200) return this.#req.onInterim?.(statusCode, headers) // 1xx: informational, the real head follows
    const picked = this.#picked!
    const id = picked.upstream.id
    const durationMs = performance.now() - this.#started
    if (statusCode >= 502 && statusCode <= 504 && this.#retryable(false, statusCode)) {
      this.#finish({ ok: false, statusCode, durationMs })
      this.#lastError = new StrataError(statusCode === 504 ? 'STRATA_UPSTREAM_TIMEOUT' : 'STRATA_UPSTREAM_RESPONSE', `upstream ${id} answered ${statusCode}`)
      this.#state = DRAINING
      return
    }
    this.#finish({ ok: statusCode < 500, statusCode, durationMs })
    const setCookie = headers['set-cookie']
    if (setCookie !== undefined) this.#req.pool.balancer.learnFromResponse(picked.upstream, setCookie)
    const head: ForwardHead = { statusCode, headers, upstreamId: id }
    if (picked.setCookie !== undefined) head.setCookie = picked.setCookie
    this.#state = DELIVERING
    if (!this.#sink.start(head)) {
      this.#state = FINISHED
      controller.abort(new Error('response refused'))
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#state === DELIVERING && controller === this.#controller) this.#sink.data(chunk)
  }

  onResponseEnd(controller: Dispatcher.DispatchController): void {
    if (controller !== this.#controller) return
    const state = this.#state
    this.#state = FINISHED
    if (state === DELIVERING) this.#sink.end()
    else if (state === DRAINING) this.#retry()
  }

  onResponseError(controller: Dispatcher.DispatchController | undefined, err: Error): void {
    // No controller: the attempt failed before it had one (connect error, a refused dispatch).
    if (controller !== this.#controller) return
    const state = this.#state
    this.#state = FINISHED
    if (state === FINISHED) return
    // Only the sink aborts a controller: the client left (a refused head is FINISHED already).
    const aborted = controller?.aborted === true
    const e = classifyUpstreamError(err, this.#picked!.upstream.id)
    // The 5xx being drained broke off: retry all the same, unless the client is gone.
    if (state === DRAINING) return aborted ? this.#sink.error(e) : this.#retry()
    // The head went to the sink (and the attempt was counted then): cut the response short.
    if (state === DELIVERING) return this.#sink.error(e)
    const connectError = e.code === 'STRATA_UPSTREAM_CONNECT'
    this.#finish({ ok: false, connectError, aborted, durationMs: performance.now() - this.#started })
    if (aborted) return this.#sink.error(e)
    this.#lastError = e
    // No head yet, so a timeout is strata's own 504, retried as an upstream's would be.
    if ((connectError && this.#retryable(true)) || (e.code === 'STRATA_UPSTREAM_TIMEOUT' && this.#retryable(false, 504))) this.#retry()
    else this.#sink.error(e)
  }
}
