/**
 * Redis pub/sub between the nodes of one cache, for the page cache and the data cache alike (the
 * bentocache bus). On the wire a message is a JSON array `[nodeId, ...fields]`; each user brings a
 * codec for its fields. Everything that arrives is validated: a message that does not decode is
 * counted in `rejected` and dropped, never thrown (one bad PUBLISH must not take down a node).
 * A node ignores its own messages (it applied the change locally). While Redis is unreachable our
 * messages wait in an outage queue and go out in order once it answers. When the subscription
 * comes back after a gap, `onResync` tells the receiver that messages may have been missed.
 */
import type { Logger } from 'pino'
import { OutageQueue } from './outage-queue.js'
import type { RedisClient } from './redis.js'

export interface BusCodec<P> {
  /** The message's fields after the node id; must be JSON-serializable. */
  encode(payload: P): unknown[]
  /** The payload, or undefined when the fields are not a valid message. Must not throw. */
  decode(fields: readonly unknown[]): P | undefined
}

export interface BusPublisher {
  /** One PUBLISH under the caller's deadline and breaker: false when Redis could not take it. Never rejects. */
  publish(channel: string, message: string): Promise<boolean>
}

export interface RedisBusOptions<P> {
  channel: string
  nodeId: string
  codec: BusCodec<P>
  publisher: BusPublisher
  /** A dedicated connection: a subscribed connection cannot run other commands. */
  subscriber: RedisClient
  logger: Logger
  /** The single message that replaces an overflowing outage queue (e.g. "clear everything"). */
  overflow: () => P
  /** A valid message from another node. */
  onMessage(payload: P, node: string): void
  /** The subscription came back after a gap: drop what cannot be trusted (L1). */
  onResync(): void
  /** Outage queue bound (default 1000). */
  maxQueue?: number
  /** Outage queue retry period (default 500 ms: queued messages go out within a second of Redis answering). */
  retryMs?: number
}

/** Message envelope: `[node, ...fields]` with a non-empty string node id. Never throws. */
export function decodeEnvelope(raw: string): { node: string; fields: unknown[] } | undefined {
  let a: unknown
  try {
    a = JSON.parse(raw)
  } catch {
    return undefined
  }
  if (!Array.isArray(a) || a.length < 1 || typeof a[0] !== 'string' || a[0] === '') return undefined
  return { node: a[0], fields: a.slice(1) }
}

export class RedisBus<P> {
  readonly #opts: RedisBusOptions<P>
  readonly #queue: OutageQueue<P>
  #wasSubscribed = false
  #lostSubscription = false
  readonly #subscribed: Promise<void>
  published = 0
  received = 0
  /** Messages on our channel that failed validation (dropped). */
  rejected = 0

  constructor(opts: RedisBusOptions<P>) {
    this.#opts = opts
    this.#queue = new OutageQueue<P>({
      max: opts.maxQueue ?? 1000,
      retryMs: opts.retryMs ?? 500,
      overflow: opts.overflow,
      send: (p) => opts.publisher.publish(opts.channel, this.#encode(p)),
      onSent: () => this.published++,
    })
    const sub = opts.subscriber
    sub.on('error', (err: Error) => opts.logger.debug({ err }, 'bus subscriber error'))
    sub.on('close', () => {
      if (this.#wasSubscribed) this.#lostSubscription = true
    })
    // ioredis re-subscribes by itself after a reconnect; 'ready' fires once it is connected.
    sub.on('ready', () => {
      if (!this.#lostSubscription) return
      this.#lostSubscription = false
      opts.logger.info('bus reconnected: dropping L1, invalidations may have been missed')
      this.#safely(() => opts.onResync())
    })
    sub.on('message', (channel: string, raw: string) => {
      if (channel !== opts.channel) return
      this.#receive(raw)
    })
    this.#subscribed = sub.subscribe(opts.channel).then(
      () => {
        this.#wasSubscribed = true
      },
      (err: unknown) => opts.logger.warn({ err }, 'bus subscribe failed'),
    )
  }

  #encode(p: P): string {
    return JSON.stringify([this.#opts.nodeId, ...this.#opts.codec.encode(p)])
  }

  #receive(raw: unknown): void {
    const env = typeof raw === 'string' ? decodeEnvelope(raw) : undefined
    const payload = env === undefined ? undefined : this.#safeDecode(env.fields)
    if (env === undefined || payload === undefined) {
      this.rejected++
      this.#opts.logger.warn({ channel: this.#opts.channel, rejected: this.rejected }, 'ignored a malformed bus message')
      return
    }
    if (env.node === this.#opts.nodeId) return
    this.received++
    this.#safely(() => this.#opts.onMessage(payload, env.node))
  }

  #safeDecode(fields: readonly unknown[]): P | undefined {
    try {
      return this.#opts.codec.decode(fields)
    } catch {
      return undefined
    }
  }

  /** A receiver's bug must not escape into ioredis's event emitter (that would crash the process). */
  #safely(fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.#opts.logger.error({ err }, 'bus message handler threw')
    }
  }

  /** Resolves when the first SUBSCRIBE succeeded (or failed; never rejects). */
  whenSubscribed(): Promise<void> {
    return this.#subscribed
  }

  /** Fire and forget: never waits for Redis; queued while it is unreachable, sent in order once it answers. */
  publish(payload: P): void {
    if (!this.#queue.empty) {
      this.#queue.push(payload)
      void this.#queue.flush()
      return
    }
    void this.#opts.publisher.publish(this.#opts.channel, this.#encode(payload)).then((ok) => {
      if (ok) this.published++
      else this.#queue.push(payload)
    })
  }

  /** Sends what was queued during an outage; call when Redis answers again. */
  flush(): Promise<void> {
    return this.#queue.flush()
  }

  get queued(): number {
    return this.#queue.size
  }

  async close(): Promise<void> {
    this.#queue.close()
    const sub = this.#opts.subscriber
    try {
      await Promise.race([sub.quit(), new Promise((r) => setTimeout(r, 500))])
    } catch {
      // already gone
    }
    sub.disconnect()
  }
}
