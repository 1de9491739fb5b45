import type { Logger } from '../observability/logger.js'
import type { RedisClient } from '../core/redis.js'
import type { RedisTier } from './l2.js'

export const BUS_MESSAGE_TYPES = { set: 'set', delete: 'delete', tag: 'tag', clear: 'clear' } as const
export type BusMessageType = (typeof BUS_MESSAGE_TYPES)[keyof typeof BUS_MESSAGE_TYPES]

/** What travels on the channel: who sent it, what happened, in which view, to which keys/tags. */
export interface BusMessage {
  node: string
  type: BusMessageType
  /** The view path inside the root namespace ('' for the root itself). */
  path: string
  /** Keys for set/delete, tags for tag, empty for clear. */
  keys: string[]
}

const TYPES = new Set<string>(Object.values(BUS_MESSAGE_TYPES))
// While Redis is unreachable our own invalidations are queued; past this many, one `clear` of
// the root replaces them (the receivers drop more than needed, but nothing stale survives).
const MAX_QUEUE = 1000

export function encodeMessage(m: BusMessage): string {
  return JSON.stringify([m.node, m.type, m.path, m.keys])
}

export function decodeMessage(raw: string): BusMessage | undefined {
  try {
    const a: unknown = JSON.parse(raw)
    if (!Array.isArray(a) || a.length !== 4) return undefined
    const [node, type, path, keys] = a as unknown[]
    if (typeof node !== 'string' || typeof type !== 'string' || !TYPES.has(type) || typeof path !== 'string') return undefined
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) return undefined
    return { node, type: type as BusMessageType, path, keys: keys as string[] }
  } catch {
    return undefined
  }
}

export interface BusOptions {
  channel: string
  nodeId: string
  publisher: RedisTier
  subscriber: RedisClient
  logger: Logger
  /** A message from another node. Our own are filtered out by node id before this is called. */
  onMessage(message: BusMessage): void
  /**
   * The subscription came back after a gap: messages may have been missed, so the receiver
   * should drop what it cannot trust (L1).
   */
  onResync(): void
}

/**
 * Redis pub/sub between the nodes of one namespace. Each message carries the sender's node id;
 * a node ignores its own messages (it already applied the change locally).
 */
export class Bus {
  readonly #opts: BusOptions
  #queue: BusMessage[] = []
  #overflowed = false
  #flushing = false
  #wasSubscribed = false
  #lostSubscription = false
  #subscribed: Promise<void>
  published = 0
  received = 0

  constructor(opts: BusOptions) {
    this.#opts = opts
    const sub = opts.subscriber
    sub.on('error', (err: Error) => opts.logger.debug({ err }, 'bus subscriber error'))
    sub.on('close', () => {
      if (this.#wasSubscribed) this.#lostSubscription = true
    })
    // ioredis re-subscribes by itself after a reconnect; 'ready' fires once it is connected.
    sub.on('ready', () => {
      if (this.#lostSubscription) {
        this.#lostSubscription = false
        opts.logger.info('bus reconnected: dropping L1, invalidations may have been missed')
        opts.onResync()
      }
    })
    sub.on('message', (channel: string, raw: string) => {
      if (channel !== opts.channel) return
      const m = decodeMessage(raw)
      if (m === undefined) {
        opts.logger.warn('ignored a malformed bus message')
        return
      }
      if (m.node === opts.nodeId) return
      this.received++
      opts.onMessage(m)
    })
    this.#subscribed = sub.subscribe(opts.channel).then(
      () => {
        this.#wasSubscribed = true
      },
      (err: unknown) => opts.logger.warn({ err }, 'bus subscribe failed'),
    )
  }

  /** Resolves when the first SUBSCRIBE succeeded (or failed; never rejects). */
  whenSubscribed(): Promise<void> {
    return this.#subscribed
  }

  /** Fire and forget: queued while Redis is unreachable, sent again when it is back. */
  publish(type: BusMessageType, path: string, keys: string[]): void {
    const m: BusMessage = { node: this.#opts.nodeId, type, path, keys }
    if (this.#queue.length > 0 || this.#overflowed || !this.#opts.publisher.usable) {
      this.#enqueue(m)
      if (this.#opts.publisher.usable) void this.flush()
      return
    }
    void this.#opts.publisher.publish(this.#opts.channel, encodeMessage(m)).then((ok) => {
      if (ok) this.published++
      else this.#enqueue(m)
    })
  }

  /** Sends what was queued during an outage; called when the publisher is ready again. */
  async flush(): Promise<void> {
    if (this.#flushing) return
    this.#flushing = true
    try {
      if (this.#overflowed) {
        this.#overflowed = false
        this.#queue = [{ node: this.#opts.nodeId, type: 'clear', path: '', keys: [] }]
      }
      while (this.#queue.length > 0) {
        const m = this.#queue[0]!
        if (!(await this.#opts.publisher.publish(this.#opts.channel, encodeMessage(m)))) return
        this.published++
        this.#queue.shift()
      }
    } finally {
      this.#flushing = false
    }
  }

  get queued(): number {
    return this.#queue.length
  }

  #enqueue(m: BusMessage): void {
    if (this.#overflowed) return
    if (this.#queue.length >= MAX_QUEUE) {
      this.#overflowed = true
      this.#queue = []
      return
    }
    this.#queue.push(m)
  }

  async close(): Promise<void> {
    const sub = this.#opts.subscriber
    try {
      await Promise.race([sub.quit(), new Promise((r) => setTimeout(r, 500))])
    } catch {
      // already gone
    }
    sub.disconnect()
  }
}
