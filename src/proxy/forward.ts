import type { Readable } from 'node:stream'
import { errors as undiciErrors, type Dispatcher } from 'undici'
import { StrataError } from '../core/errors.js'
import { appendVia, stripHopByHop } from '../core/headers.js'
import type { UpstreamPools } from './upstream-pools.js'
import { shouldRetry, type Balancer, type PickRequest, type PickResult, type RetryOn } from '../balancer/index.js'

export interface ForwardRequest {
  method: string
  /** path + query, as it goes upstream */
  url: string
  /** Upstream request headers, already rewritten (see upstreamRequestHeaders). */
  headers: Record<string, string | string[]>
  body: Readable | Buffer | null
  pick: PickRequest
  signal?: AbortSignal
}

export interface ForwardResponse {
  statusCode: number
  headers: Record<string, string | string[]>
  body: Readable
  upstreamId: string
  setCookie?: string
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED'])
/** Expect is answered by strata's own server (100-continue); it is not forwarded. */
const NOT_FORWARDED: ReadonlySet<string> = new Set(['expect'])

/**
 * Builds the upstream request headers from the client's: hop-by-hop removed (RFC 9110 §7.6.1),
 * X-Forwarded-For appended, X-Forwarded-Proto / -Host set from what strata saw, Via appended
 * (RFC 9110 §7.6.3). Host is kept, so virtual hosts work behind strata as they did without it.
 */
export function upstreamRequestHeaders(
  raw: Record<string, string | string[] | undefined>,
  client: { ip: string; proto: 'http' | 'https' },
): Record<string, string | string[]> {
  const out = stripHopByHop(raw, NOT_FORWARDED)
  const xff = raw['x-forwarded-for']
  out['x-forwarded-for'] = xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${client.ip}` : client.ip
  out['x-forwarded-proto'] = client.proto
  const host = raw['host']
  if (host !== undefined) out['x-forwarded-host'] = host
  out['via'] = appendVia(raw['via'])
  return out
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

export interface ForwarderOptions {
  pools: UpstreamPools
  balancer: Balancer
  /** Learn-mode sticky sessions shared through Redis need an async lookup before picking. */
  asyncPick: boolean
  retries: number
  /** Which failures may be retried on another server (`balancer.retryOn`). */
  retryOn: readonly RetryOn[]
}

/**
 * Sends one request to a picked upstream, retrying idempotent requests on another server when
 * the failure allows it (a connection failure, or a configured 502/503/504). A request whose
 * streamed body may have been sent is never retried, since its body is gone.
 */
export class Forwarder {
  readonly #pools: UpstreamPools
  readonly #balancer: Balancer
  readonly #asyncPick: boolean
  readonly #retries: number
  readonly #retryOn: readonly RetryOn[]

  constructor(opts: ForwarderOptions) {
    this.#pools = opts.pools
    this.#balancer = opts.balancer
    this.#asyncPick = opts.asyncPick
    this.#retries = opts.retries
    this.#retryOn = opts.retryOn
  }

  async forward(req: ForwardRequest): Promise<ForwardResponse> {
    // A streamed body may be partly consumed by a failed attempt and cannot be sent again.
    const replayable = req.body === null || Buffer.isBuffer(req.body)
    const retryable = (attempt: number, connectError: boolean, statusCode?: number) =>
      replayable &&
      shouldRetry({ method: req.method, attempt: attempt + 1, retries: this.#retries, connectError, statusCode, bodySent: req.body !== null, retryOn: this.#retryOn })
    let tried: Set<string> | undefined
    let lastError: StrataError | undefined
    for (let attempt = 0; ; attempt++) {
      const picked: PickResult | undefined = this.#asyncPick ? await this.#balancer.pickAsync(req.pick, tried) : this.#balancer.pick(req.pick, tried)
      if (picked === undefined) {
        throw lastError ?? new StrataError('STRATA_NO_UPSTREAM', 'no healthy upstream is available', { retryAfter: this.#balancer.retryAfterSeconds() })
      }
      const { upstream } = picked
      const done = this.#balancer.begin(upstream)
      const started = performance.now()
      let res: Dispatcher.ResponseData
      try {
        res = await this.#pools.get(upstream.id, upstream.url).request({
          method: req.method as Dispatcher.HttpMethod,
          // An upstream URL with a path (http://host/app) serves under that prefix.
          path: upstream.basePath === '' ? req.url : upstream.basePath + req.url,
          headers: req.headers,
          body: req.body,
          signal: req.signal ?? null,
        })
      } catch (err) {
        const e = classifyUpstreamError(err, upstream.id)
        const connectError = e.code === 'STRATA_UPSTREAM_CONNECT'
        done({ ok: false, connectError, durationMs: performance.now() - started })
        lastError = e
        if (connectError && retryable(attempt, true)) {
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
