import { connect } from 'node:net'

export interface RawExchange {
  /** Everything the server sent before it closed the connection. */
  text: string
  /** The status codes of the responses in `text`, in order. */
  statuses: number[]
}

/**
 * Writes exact bytes on a fresh connection and collects what comes back until the server closes
 * it: every request here either asks for `Connection: close` or is one the server must refuse
 * (and close). The deadline only guards against a hang; it is far above any real answer time and
 * reaching it fails the test.
 */
export function exchange(port: number, bytes: string | Buffer, deadlineMs = 15_000): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const sock = connect(port, '127.0.0.1', () => sock.write(bytes))
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new Error(`the server neither answered nor closed: ${Buffer.concat(chunks).toString('latin1').slice(0, 300)}`))
    }, deadlineMs)
    sock.on('data', (d: Buffer) => chunks.push(d))
    // A reset after the server's answer (it closed with our bytes unread) still ends the exchange.
    sock.on('error', () => undefined)
    sock.on('close', () => {
      clearTimeout(timer)
      const text = Buffer.concat(chunks).toString('latin1')
      resolve({ text, statuses: responseStatuses(text) })
    })
  })
}

/** The body of the last response in a raw exchange (no chunked decoding: tests ask for lengths). */
export function lastBody(text: string): string {
  const i = text.lastIndexOf('\r\n\r\n')
  return i === -1 ? '' : text.slice(i + 4)
}

/**
 * The statuses of the responses in a raw byte stream, read by their framing (1xx and 204/304
 * without a body, Content-Length, chunked), so a body can never be mistaken for a response.
 * Stops at anything it cannot frame (a body read until close).
 */
export function responseStatuses(text: string): number[] {
  const out: number[] = []
  let at = 0
  while (at < text.length) {
    const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n/.exec(text.slice(at))
    if (m === null) break
    const status = Number(m[1])
    out.push(status)
    const end = text.indexOf('\r\n\r\n', at)
    if (end === -1) break
    const head = text.slice(at, end).toLowerCase()
    at = end + 4
    if (status < 200 || status === 204 || status === 304) continue
    const cl = /\r\ncontent-length: *(\d+)/.exec(head)
    if (cl !== null) {
      at += Number(cl[1])
      continue
    }
    if (!/\r\ntransfer-encoding: *chunked/.test(head)) break
    for (;;) {
      const lineEnd = text.indexOf('\r\n', at)
      if (lineEnd === -1) return out
      const size = parseInt(text.slice(at, lineEnd), 16)
      at = lineEnd + 2
      if (!(size > 0)) {
        const trailerEnd = text.indexOf('\r\n', at)
        at = trailerEnd === at ? at + 2 : text.indexOf('\r\n\r\n', at) + 4
        break
      }
      at += size + 2
    }
  }
  return out
}
