/**
 * The invalidation bus: every purge (admin or unsafe-method) is published so every node drops the
 * entries from its own L1. Messages carry the sending node's id so a node ignores its own.
 */
import type { PurgeCommand } from './types.js'

export interface BusMessage {
  node: string
  purge: PurgeCommand
}

export interface InvalidationBus {
  publish(msg: BusMessage): Promise<void>
  /** Resolves once subscribed. */
  subscribe(handler: (msg: BusMessage) => void): Promise<void>
  close(): Promise<void>
}
