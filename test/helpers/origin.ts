import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export type Handler = (req: IncomingMessage, res: ServerResponse) => unknown

/** A real HTTP origin on an ephemeral port that counts what reached it. */
export interface Origin {
  readonly port: number
  readonly url: string
  readonly server: Server
  /** Requests received, in order (method + url + headers). */
  readonly requests: { method: string; url: string; headers: IncomingMessage['headers'] }[]
  /** How many requests reached this origin (optionally only for one path). */
  hits(path?: string): number
  /** Replace the handler while running. */
  setHandler(h: Handler): void
  close(): Promise<void>
}

export async function startOrigin(handler: Handler, opts: { port?: number } = {}): Promise<Origin> {
  let current = handler
  const requests: Origin['requests'] = []
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers })
    Promise.resolve(current(req, res)).catch((err) => {
      if (!res.headersSent) res.writeHead(500)
      res.end(String(err))
    })
  })
  server.keepAliveTimeout = 10_000
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    server,
    requests,
    hits: (path?: string) => (path === undefined ? requests.length : requests.filter((r) => r.url === path).length),
    setHandler: (h) => {
      current = h
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** Reads a request body fully. */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}
