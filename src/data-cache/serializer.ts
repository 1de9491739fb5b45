import { Packr } from 'msgpackr'

/**
 * Turns values into bytes for L2 (and for measuring an L1 entry's size). `deserialize` receives
 * a Buffer view over the payload part of the stored record, never a copy.
 */
export interface Serializer {
  serialize(value: unknown): string | Uint8Array
  deserialize(data: Buffer): unknown
}

export const jsonSerializer: Serializer = {
  serialize: (value) => JSON.stringify(value),
  // toString on the view decodes straight from Redis' reply buffer: no intermediate copy.
  deserialize: (data) => JSON.parse(data.toString('utf8')),
}

// moreTypes keeps Maps and Sets distinct from plain objects; msgpackr already maps Buffers to
// bin and Dates to the timestamp extension. No shared `structures`: record definitions travel
// inside each message, so nodes with different histories decode each other's values.
const packr = new Packr({ moreTypes: true })

export const msgpackSerializer: Serializer = {
  serialize: (value) => packr.pack(value),
  deserialize: (data) => packr.unpack(data),
}

export type SerializerOption = 'json' | 'msgpack' | Serializer

export function isSerializer(value: unknown): value is Serializer {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Serializer).serialize === 'function' &&
    typeof (value as Serializer).deserialize === 'function'
  )
}
