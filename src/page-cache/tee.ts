/**
 * Storing a response while it streams to the client: every chunk goes to the client as it arrives
 * and is also kept, up to maxBytes; past that, storing is given up and the client stream carries
 * on alone. The client's backpressure pauses the origin, but the client never waits for the
 * cache. If the client goes away while the body is still being stored, reading continues so the
 * cache (and coalesced waiters) still get the response.
 */
import { PassThrough, type Readable } from 'node:stream'
import { ownedConcat } from './owned-bytes.js'

const ignore = () => {}

export class BodyTee {
  /** Resolves with the whole body when it was kept, null when storing was given up. */
  readonly stored: Promise<Buffer | null>
  /** Storing was given up because the origin's body failed (not because it was too big). */
  failed = false
  #src: Readable
  #max: number
  #chunks: Buffer[] = []
  #size = 0
  #storing = true
  #ended = false
  #client: PassThrough | undefined
  #clientGone = false
  #resolve!: (b: Buffer | null) => void

  /**
   * @param clientNow create the client stream at once (streaming miss); otherwise the body is only
   * read for the cache and `client()` can still be called after `stored` resolved null (the chunks
   * read so far are replayed).
   */
  constructor(src: Readable, maxBytes: number, clientNow: boolean) {
    this.#src = src
    this.#max = maxBytes
    this.stored = new Promise((resolve) => (this.#resolve = resolve))
    if (clientNow) this.#attach()
    src.on('data', (chunk: Buffer) => this.#onData(chunk))
    src.once('end', () => {
      this.#ended = true
      if (this.#storing) this.#finish(ownedConcat(this.#chunks, this.#size))
      this.#client?.end()
    })
    src.once('error', (err) => {
      this.#fail()
      this.#client?.destroy(err)
    })
    src.once('close', () => {
      // Closed without 'end': the origin went away mid-body.
      if (!this.#ended) {
        this.#fail()
        this.#client?.destroy(new Error('origin body closed before its end'))
      }
    })
  }

  #fail(): void {
    if (this.#storing) this.failed = true
    this.#finish(null)
  }

  #finish(body: Buffer | null): void {
    if (body === null) this.#storing = false
    this.#resolve(body)
  }

  #onData(chunk: Buffer): void {
    if (this.#storing) {
      this.#size += chunk.length
      if (this.#size > this.#max) {
        this.#storing = false
        this.#finish(null)
        if (this.#client) this.#chunks = []
        else {
          // Nobody reads yet: keep what was read for a late client, and wait for it.
          this.#chunks.push(chunk)
          this.#src.pause()
          return
        }
      } else {
        this.#chunks.push(chunk)
      }
    }
    const c = this.#client
    if (c && !this.#clientGone) {
      if (!c.write(chunk)) this.#src.pause()
    } else if (!this.#storing) {
      this.#src.destroy()
    }
  }

  #attach(): PassThrough {
    const c = new PassThrough()
    this.#client = c
    // The origin's failure is passed on by destroying this stream with its error. Its reader (a
    // pipeline, fastify, a `for await`) sees that error through its own listener; until a reader
    // is attached, or if none ever is, the tee owns it: an 'error' event with no listener would
    // end the process.
    c.on('error', ignore)
    c.on('drain', () => this.#src.resume())
    c.once('close', () => {
      if (this.#ended) return
      this.#clientGone = true
      // Keep reading for the cache; if nothing is being stored, stop the origin.
      if (this.#storing) this.#src.resume()
      else this.#src.destroy()
    })
    return c
  }

  /** The client stream (created on first call; replays chunks read before it existed). */
  client(): Readable {
    if (this.#client) return this.#client
    const c = this.#attach()
    for (const chunk of this.#chunks) c.write(chunk)
    if (!this.#storing) this.#chunks = []
    if (this.#ended) c.end()
    else this.#src.resume()
    return c
  }

  /** Nobody will read the body: stop the origin unless the cache still wants it. */
  discard(): void {
    if (!this.#storing && !this.#ended) this.#src.destroy()
  }
}
