/**
 * The data cache's bus messages: the codec for the shared bus in core/redis-bus.ts. On the wire:
 * `[node, type, path, keys]`.
 */
import { decodeEnvelope, type BusCodec } from '../core/redis-bus.js'

export const BUS_MESSAGE_TYPES = { set: 'set', delete: 'delete', tag: 'tag', clear: 'clear' } as const
export type BusMessageType = (typeof BUS_MESSAGE_TYPES)[keyof typeof BUS_MESSAGE_TYPES]

/** What happened, in which view, to which keys/tags. */
export interface BusPayload {
  type: BusMessageType
  /** The view path inside the root namespace ('' for the root itself). */
  path: string
  /** Keys for set/delete, tags for tag, empty for clear. */
  keys: string[]
}

/** A payload with its sender. */
export interface BusMessage extends BusPayload {
  node: string
}

const TYPES = new Set<string>(Object.values(BUS_MESSAGE_TYPES))

export const busCodec: BusCodec<BusPayload> = {
  encode: (p) => [p.type, p.path, p.keys],
  decode(fields) {
    if (fields.length !== 3) return undefined
    const [type, path, keys] = fields
    if (typeof type !== 'string' || !TYPES.has(type) || typeof path !== 'string') return undefined
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) return undefined
    return { type: type as BusMessageType, path, keys: keys as string[] }
  },
}

/** The whole wire form of one message. */
export function encodeMessage(m: BusMessage): string {
  return JSON.stringify([m.node, ...busCodec.encode(m)])
}

export function decodeMessage(raw: string): BusMessage | undefined {
  const env = decodeEnvelope(raw)
  const p = env === undefined ? undefined : busCodec.decode(env.fields)
  return env === undefined || p === undefined ? undefined : { node: env.node, ...p }
}
