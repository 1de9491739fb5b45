/**
 * The invalidation bus: every purge (admin or unsafe-method) is published so every node drops the
 * entries from its own L1. Messages carry the sending node's id so a node ignores its own. The
 * Redis implementation is the shared bus in core/redis-bus.ts with the codec below: on the wire
 * `[node, purgeCommand]`. Receivers validate every message (a purge command is compiled before it
 * is applied) and count the ones they drop.
 */
import type { BusCodec, RedisBus } from '../core/redis-bus.js'
import type { PurgeCommand } from './types.js'

export interface BusMessage {
  node: string
  purge: PurgeCommand
}

export interface BusStats {
  published: number
  received: number
  /** Messages that failed validation and were dropped. */
  rejected: number
  /** Invalidations waiting for Redis to answer again. */
  queued: number
}

export interface InvalidationBus {
  /** Fire and forget: the caller never waits for it (a bus queues what it cannot send yet). */
  publish(msg: BusMessage): void | Promise<void>
  /**
   * Resolves once subscribed. `onResync` runs when the subscription came back after a gap
   * (messages may have been missed).
   */
  subscribe(handler: (msg: BusMessage) => void, onResync?: () => void): Promise<void>
  close(): Promise<void>
  /** Counters for /stats, when the bus keeps them. */
  stats?(): BusStats
}

export const purgeCodec: BusCodec<PurgeCommand> = {
  encode: (p) => [p],
  // Shape only; the receiver compiles the command (compilePurge) before applying it.
  decode: (fields) => {
    const p = fields[0]
    return fields.length === 1 && typeof p === 'object' && p !== null && !Array.isArray(p) ? (p as PurgeCommand) : undefined
  },
}

/** The page cache's view of the shared Redis bus. */
export class RedisInvalidationBus implements InvalidationBus {
  readonly #bus: RedisBus<PurgeCommand>
  readonly #handlers: ((msg: BusMessage) => void)[] = []
  readonly #resyncs: (() => void)[] = []
  readonly #onClose: () => Promise<void>

  /** `make` builds the core bus around this adapter's dispatchers. */
  constructor(
    make: (hooks: { onMessage(p: PurgeCommand, node: string): void; onResync(): void }) => RedisBus<PurgeCommand>,
    onClose: () => Promise<void> = async () => {},
  ) {
    this.#bus = make({
      onMessage: (purge, node) => {
        for (const h of this.#handlers) h({ node, purge })
      },
      onResync: () => {
        for (const r of this.#resyncs) r()
      },
    })
    this.#onClose = onClose
  }

  publish(msg: BusMessage): void {
    this.#bus.publish(msg.purge)
  }

  /** Sends what was queued during an outage. */
  flush(): Promise<void> {
    return this.#bus.flush()
  }

  async subscribe(handler: (msg: BusMessage) => void, onResync?: () => void): Promise<void> {
    this.#handlers.push(handler)
    if (onResync !== undefined) this.#resyncs.push(onResync)
    // Do not hold startup hostage to Redis: the subscription completes in the background if it is slow.
    await Promise.race([this.#bus.whenSubscribed(), new Promise((r) => setTimeout(r, 3000).unref())])
  }

  stats(): BusStats {
    return { published: this.#bus.published, received: this.#bus.received, rejected: this.#bus.rejected, queued: this.#bus.queued }
  }

  async close(): Promise<void> {
    await this.#bus.close()
    await this.#onClose()
  }
}
