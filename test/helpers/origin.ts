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

/**
 * Replicas of one service on several loopback addresses (127.0.0.0/8 is all loopback on Linux),
 * all on one port as behind one service name; each answers `<address> <url>`. Returns the port
 * and the requests each address received; closes at `cleanup`.
 */
export async function startReplicas(addresses: string[]): Promise<{ port: number; hits: Map<string, number>; close(): Promise<void> }> {
  const hits = new Map<string, number>()
  for (let attempt = 0; attempt < 20; attempt++) {
    const servers = addresses.map((address) =>
      createServer((req, res) => {
        hits.set(address, (hits.get(address) ?? 0) + 1)
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' })
        res.end(`${address} ${req.url}`)
      }),
    )
    const listen = (server: Server, port: number, host: string) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => resolve())
      })
    const close = () => Promise.all(servers.map((srv) => new Promise<void>((r) => (srv.listening ? (srv.closeAllConnections(), srv.close(() => r())) : r())))).then(() => undefined)
    try {
      await listen(servers[0]!, 0, addresses[0]!)
      const port = (servers[0]!.address() as AddressInfo).port
      for (let i = 1; i < servers.length; i++) await listen(servers[i]!, port, addresses[i]!)
      return { port, hits, close }
    } catch {
      // The port was taken on another address: try another.
      await close()
    }
  }
  throw new Error(`no port free on every one of ${addresses.join(', ')}`)
}
