import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Dispatcher } from 'undici'
import type { StrataError } from '../core/errors.js'
import type { AccessLog } from '../observability/access-log.js'
import { REQUEST_ID_HEADER } from '../observability/request-id.js'
import { passHeaderList, type CacheRequest } from '../page-cache/index.js'
import { classifyUpstreamError, type ForwardHead, type ForwardSink } from './forward.js'
import { errorResponse } from './raw-response.js'

/** What a pass-through response needs from the pipeline. */
export interface PassHooks {
  /** Whether this response is an ESI template (then it is handed back to the full path, and the URL remembered). */
  needsEsi(host: string, url: string, headers: Record<string, string | string[]>): boolean
  /** A failure answered or cut short: logged like the full path's proxy errors. */
  failed(e: StrataError, method: string, url: string, upstream: string | undefined): void
  /**
   * The cache invalidation an unsafe request's response calls for (RFC 9111 §4.4), or undefined.
   * The client gets the response once it is done, as on the full path.
   */
  invalidate(req: CacheRequest, status: number, headers: Record<string, string | string[]>): Promise<void> | undefined
  /** The Server-Timing value for the response head when it is on, else undefined (`start`: when the request arrived). */
  timing(start: number): string | undefined
}

/**
 * A pass-through response written straight to the client as undici parses it: the head once it
 * is final (after any retries), each body chunk as it arrives (pausing the upstream while the
 * client's socket is full), the access line when it ends. A client that leaves cancels the
 * upstream request. An ESI template is handed back to the full path instead.
 */
export class PassToClient implements ForwardSink {
  readonly #hooks: PassHooks
  readonly #creq: CacheRequest
  readonly #req: IncomingMessage
  readonly #res: ServerResponse
  readonly #fwd: string
  readonly #log: AccessLog | undefined
  readonly #start: number
  readonly #fallback: (req: IncomingMessage, res: ServerResponse) => void
  #controller: Dispatcher.DispatchController | undefined
  #upstream: string | undefined
  #closed = false
  /** Body chunks (and whether the end came) received while the head waits for an invalidation. */
  #held: Buffer[] | undefined
  #heldEnd = false
  /** `error` answered or cut the response: nothing more is written. */
  #failed = false
  /** The head's Content-Length until the first chunk comes (-1: unknown, or a chunk came). */
  #expect = -1
  /**
   * The whole body, when it came as one chunk: written with the end, so Node's OutgoingMessage
   * runs once (`end(chunk)`) instead of twice (`write` then `end`). Only a chunk that is the whole
   * declared body is held, so nothing waits for a chunk that may never come (a stream, SSE).
   */
  #whole: Buffer | undefined

  constructor(hooks: PassHooks, creq: CacheRequest, req: IncomingMessage, res: ServerResponse, fwd: string, log: AccessLog | undefined, start: number, fallback: (req: IncomingMessage, res: ServerResponse) => void) {
    this.#hooks = hooks
    this.#creq = creq
    this.#req = req
    this.#res = res
    this.#fwd = fwd
    this.#log = log
    this.#start = start
    this.#fallback = fallback
    res.once('close', this.#onClose)
  }

  readonly #onClose = (): void => {
    this.#closed = true
    if (this.#res.writableFinished) return
    this.#controller?.abort(new Error('client closed the connection'))
    this.#logLine(this.#res.headersSent ? this.#res.statusCode : 499)
  }

  readonly #resume = (): void => this.#controller?.resume()

  attach(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    // The client left while the pick was awaited (learn-mode sessions in Redis).
    if (this.#closed) controller.abort(new Error('client closed the connection'))
  }

  start(head: ForwardHead): boolean {
    if (this.#closed) return false
    const req = this.#req
    const creq = this.#creq
    // Only GET and HEAD are assembled (as on the full path), and only they can still be handed over.
    if ((creq.method === 'GET' || creq.method === 'HEAD') && this.#hooks.needsEsi(creq.host, creq.url, head.headers)) {
      // Out of undici's parser callback first; this attempt is aborted when we return.
      this.#res.off('close', this.#onClose)
      process.nextTick(this.#fallback, req, this.#res)
      return false
    }
    this.#upstream = head.upstreamId
    const length = head.headers['content-length']
    if (typeof length === 'string' && creq.method !== 'HEAD') this.#expect = Number(length)
    const headers = passHeaderList(head.headers, this.#fwd, head.setCookie, this.#hooks.timing(this.#start))
    const invalidating = this.#hooks.invalidate(creq, head.statusCode, head.headers)
    if (invalidating === undefined) return this.#writeHead(head.statusCode, headers)
    // Hold the response (and the upstream) until the cache has forgotten what it changed.
    this.#held = []
    this.#controller?.pause()
    const release = () => {
      const held = this.#held ?? []
      this.#held = undefined
      if (this.#closed || this.#failed || !this.#writeHead(head.statusCode, headers)) return
      for (const chunk of held) this.data(chunk)
      if (this.#heldEnd) this.end()
      else this.#controller?.resume()
    }
    invalidating.then(release, release)
    return true
  }

  /** Writes the head; false (the client already answered with a 502) when Node refuses it. */
  #writeHead(status: number, headers: (string | string[])[]): boolean {
    try {
      this.#res.writeHead(status, headers)
      return true
    } catch (err) {
      // Header bytes Node refuses to send (e.g. control characters from a broken upstream).
      this.#controller?.abort(err as Error)
      this.error(classifyUpstreamError(err, this.#upstream ?? 'upstream'))
      return false
    }
  }

  data(chunk: Buffer): void {
    if (this.#held !== undefined) {
      this.#held.push(chunk)
      return
    }
    if (this.#expect !== -1) {
      const whole = chunk.length === this.#expect
      this.#expect = -1
      if (whole) {
        this.#whole = chunk
        return
      }
    }
    const whole = this.#whole
    if (whole !== undefined) {
      // More than the declared length: undici fails such a response; write in order all the same.
      this.#whole = undefined
      this.#res.write(whole)
    }
    if (!this.#res.write(chunk) && !this.#closed) {
      this.#controller?.pause()
      this.#res.once('drain', this.#resume)
    }
  }

  end(): void {
    if (this.#held !== undefined) {
      this.#heldEnd = true
      return
    }
    const whole = this.#whole
    if (whole === undefined) this.#res.end()
    else {
      this.#whole = undefined
      this.#res.end(whole)
    }
    this.#logLine(this.#res.statusCode)
  }

  error(e: StrataError): void {
    // Once: an abort of our own (a head Node refused) may report back here.
    if (this.#closed || this.#failed) return
    const req = this.#req
    this.#hooks.failed(e, req.method ?? 'GET', req.url ?? '/', this.#upstream)
    // A held response is dropped: the failure is answered instead.
    this.#held = undefined
    this.#failed = true
    if (this.#res.headersSent) {
      // Part of the body is out: cut the response so the client sees it is incomplete.
      this.#res.destroy()
      return
    }
    const answer = errorResponse(e)
    this.#res.writeHead(answer.status, answer.headers)
    this.#res.end(answer.body)
    this.#logLine(answer.status)
  }

  #logLine(status: number): void {
    const log = this.#log
    if (log === undefined) return
    const req = this.#req
    log({ method: req.method ?? 'GET', url: req.url ?? '/', status, ms: performance.now() - this.#start, upstream: this.#upstream, cache: 'PASS', id: req.headers[REQUEST_ID_HEADER] as string })
  }
}
