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
      resolve({ text, statuses: [...text.matchAll(/(?:^|\r\n)HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])) })
    })
  })
}

/** The body of the last response in a raw exchange (no chunked decoding: tests ask for lengths). */
export function lastBody(text: string): string {
  const i = text.lastIndexOf('\r\n\r\n')
  return i === -1 ? '' : text.slice(i + 4)
}
