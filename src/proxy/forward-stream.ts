import { Readable } from 'node:stream'
import { errors as undiciErrors, type Dispatcher } from 'undici'
import type { StrataError } from '../core/errors.js'
import type { ForwardHead, ForwardResponse, ForwardSink } from './forward.js'

/** undici's `request` reads up to 64 KiB ahead of its reader; so does this body. */
const HIGH_WATER_MARK = 64 * 1024

/**
 * `Forwarder.forward`'s sink: the engine's callbacks as a promise for the head and a Readable
 * for the body, which is what undici's `request` gives, over the same engine as the pass path.
 * The upstream is paused while the body's reader is behind (push() said stop) and resumed when it
 * reads again; destroying the body early cancels the upstream request; `signal` cancels it at any
 * point (an attempt not yet connected is cancelled as soon as it connects, as undici does).
 */
export class StreamSink implements ForwardSink {
  readonly #signal: AbortSignal | undefined
  readonly #resolve: (res: ForwardResponse) => void
  readonly #reject: (err: StrataError) => void
  #controller: Dispatcher.DispatchController | undefined
  #body: UpstreamBody | undefined
  /** The upstream response ended or failed: nothing is left to cancel. */
  #over = false

  constructor(signal: AbortSignal | undefined, resolve: (res: ForwardResponse) => void, reject: (err: StrataError) => void) {
    this.#resolve = resolve
    this.#reject = reject
    if (signal !== undefined) {
      this.#signal = signal
      signal.addEventListener('abort', this.#onAbort, { once: true })
    }
  }

  readonly #onAbort = (): void => this.cancel(new undiciErrors.RequestAbortedError())

  attach(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#signal?.aborted === true) controller.abort(new undiciErrors.RequestAbortedError())
  }

  start(head: ForwardHead): boolean {
    const body = new UpstreamBody(this)
    this.#body = body
    const res: ForwardResponse = { statusCode: head.statusCode, headers: head.headers, body, upstreamId: head.upstreamId }
    if (head.setCookie !== undefined) res.setCookie = head.setCookie
    this.#resolve(res)
    return true
  }

  data(chunk: Buffer): void {
    if (!this.#body!.push(chunk)) this.#controller?.pause()
  }

  end(): void {
    this.#settle()
    this.#body!.push(null)
  }

  error(err: StrataError): void {
    this.#settle()
    if (this.#body === undefined) this.#reject(err)
    else this.#body.destroy(err)
  }

  /** The body's reader wants more. */
  resume(): void {
    this.#controller?.resume()
  }

  /** The body was destroyed, or the signal aborted, before the upstream response was over. */
  cancel(reason: Error): void {
    if (!this.#over) this.#controller?.abort(reason)
  }

  #settle(): void {
    this.#over = true
    this.#signal?.removeEventListener('abort', this.#onAbort)
  }
}

/** The response body `forward` resolves with: its flow control is the upstream's. */
class UpstreamBody extends Readable {
  readonly #sink: StreamSink

  constructor(sink: StreamSink) {
    super({ highWaterMark: HIGH_WATER_MARK })
    this.#sink = sink
  }

  override _read(): void {
    this.#sink.resume()
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#sink.cancel(err ?? new undiciErrors.RequestAbortedError())
    callback(err)
  }
}
