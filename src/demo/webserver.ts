import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseCookies } from '../core/headers.js'
import { Registry } from 'prom-client'
import { registerDataCacheMetrics, type Duration } from '../data-cache/index.js'
import type { Logger } from '../observability/logger.js'
import type { NewsDb } from './news-db.js'
import { createNewsReads, type NewsReads } from './news-reads.js'

/**
 * A demo "B" webserver: a small news site whose pages are ESI templates assembled by strata from
 * fragments with their own lifetimes. Every response says which webserver served it.
 */
export interface DemoWebserverOptions {
  id: string
  db: NewsDb
  /**
   * The webserver's own data cache (namespace `demo`) in front of `db`. `redis` (a URL) adds the
   * shared L2 and the bus; without it the cache is L1 only with a short TTL (see news-reads.ts).
   */
  dataCache?: { redis?: string | undefined; ttl?: Duration }
  /** Where the data cache logs Redis state changes; silent by default. */
  logger?: Logger
  port?: number
  host?: string
}

export interface DemoWebserver {
  readonly id: string
  readonly url: string
  readonly server: Server
  readonly reads: NewsReads
  close(): Promise<void>
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const CSS = `body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
header,footer{border-bottom:1px solid #ddd;padding:.5rem 0;margin-bottom:1rem}footer{border-top:1px solid #ddd;border-bottom:0;color:#666;font-size:.85rem}
.greeting{background:#f4f6fb;padding:.5rem .75rem;border-radius:6px}a{color:#2557c7}li{margin:.3rem 0}
`

function page(title: string, main: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · strata news</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body>
<esi:include src="/fragments/header" onerror="continue"/>
<esi:include src="/fragments/greeting" onerror="continue"/>
<main>
${main}
</main>
<esi:include src="/fragments/footer" onerror="continue"/>
<esi:remove><p>This page is assembled by strata from ESI fragments.</p></esi:remove>
</body></html>
`
}

export async function startDemoWebserver(opts: DemoWebserverOptions): Promise<DemoWebserver> {
  const { id, db } = opts
  const reads = await createNewsReads({
    db,
    redis: opts.dataCache?.redis,
    ...(opts.dataCache?.ttl === undefined ? {} : { ttl: opts.dataCache.ttl }),
    ...(opts.logger === undefined ? {} : { logger: opts.logger.child({ webserver: id }) }),
  })
  // Without a shared L2 the other node may serve an edited article from its L1 until the data
  // cache's TTL runs out; strata must not keep such a page for minutes, so it gets a short life.
  // The data cache's own metrics in Prometheus format at /metrics (what an application embedding
  // strata/data-cache would do with its registry).
  const registry = new Registry()
  registerDataCacheMetrics(reads, registry, { name: 'news' })
  const articleCacheControl = reads.shared ? 'public, s-maxage=300, max-age=0, stale-while-revalidate=30' : 'public, s-maxage=10, max-age=0, stale-while-revalidate=30'

  const send = (res: ServerResponse, status: number, headers: Record<string, string>, body: string) => {
    res.writeHead(status, { 'x-served-by': id, 'content-length': Buffer.byteLength(body), ...headers })
    res.end(body)
  }
  const html = 'text/html; charset=utf-8'
  const esiPage = { 'content-type': html, 'surrogate-control': 'content="ESI/1.0"' }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://demo.local')
    const path = url.pathname
    const cookies = parseCookies(req.headers.cookie)
    const method = req.method ?? 'GET'

    if (method === 'GET' || method === 'HEAD') {
      if (path === '/health') return send(res, 200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }, 'ok\n')
      if (path === '/') {
        const main = `<h1>Latest news</h1>\n<esi:include src="/fragments/news-list" onerror="continue"/>`
        return send(res, 200, { ...esiPage, 'cache-control': 'public, s-maxage=60, max-age=0, stale-while-revalidate=30' }, page('Home', main))
      }
      const article = /^\/news\/(\d+)$/.exec(path)
      if (article) {
        const a = await reads.get(Number(article[1]))
        if (!a) return send(res, 404, { 'content-type': html, 'cache-control': 'public, max-age=10' }, page('Not found', '<h1>No such article</h1>'))
        const main = `<article><h1>${esc(a.title)}</h1><p>${esc(a.body)}</p><p><small>updated ${esc(a.updatedAt)}</small></p></article>`
        return send(res, 200, { ...esiPage, 'cache-control': articleCacheControl, 'surrogate-key': `news article-${a.id}` }, page(a.title, main))
      }
      if (path === '/fragments/header') {
        return send(res, 200, { 'content-type': html, 'cache-control': 'public, max-age=3600' }, `<header><a href="/"><strong>strata news</strong></a> · <a href="/news/1">first story</a></header>`)
      }
      if (path === '/fragments/greeting') {
        const user = cookies.get('user')
        const body = user
          ? `<p class="greeting">Hello, ${esc(user)}! <small>(session on ${esc(id)})</small></p>`
          : `<p class="greeting">Hello, guest. <a href="/login?name=ada">Log in as ada</a></p>`
        // Per-user: never stored in the shared cache.
        return send(res, 200, { 'content-type': html, 'cache-control': 'private, no-store' }, body)
      }
      if (path === '/fragments/news-list') {
        const list = await reads.list()
        const items = list.map((a) => `<li><a href="/news/${a.id}">${esc(a.title)}</a></li>`).join('\n')
        return send(res, 200, { 'content-type': html, 'cache-control': 'public, s-maxage=10, max-age=0, stale-while-revalidate=30', 'surrogate-key': 'news news-list' }, `<ul class="news">\n${items}\n</ul>`)
      }
      if (path === '/fragments/footer') {
        return send(res, 200, { 'content-type': html, 'cache-control': 'public, max-age=86400' }, `<footer>strata demo · footer rendered by ${esc(id)} at ${new Date().toISOString()}</footer>`)
      }
      if (path === '/static/style.css') {
        return send(res, 200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'public, max-age=86400' }, CSS)
      }
      if (path === '/login') {
        const name = (url.searchParams.get('name') ?? 'guest').replace(/[^\w-]/g, '').slice(0, 32) || 'guest'
        res.writeHead(303, { 'x-served-by': id, location: '/', 'set-cookie': `user=${name}; Path=/; HttpOnly; SameSite=Lax`, 'cache-control': 'no-store', 'content-length': 0 })
        return res.end()
      }
      if (path === '/api/stats') {
        // This node's data cache (hits per tier, misses, loader calls, Redis state) and the
        // database's query count: what the data cache saves, visible with curl.
        const body = JSON.stringify({ servedBy: id, dataCache: { mode: reads.shared ? 'l1+redis' : 'l1-only', ...reads.stats() }, db: { queries: db.queries } })
        return send(res, 200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, body)
      }
      if (path === '/metrics') {
        const body = await registry.metrics()
        return send(res, 200, { 'content-type': registry.contentType, 'cache-control': 'no-store' }, body)
      }
      if (path === '/api/whoami') {
        return send(res, 200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify({ servedBy: id, user: cookies.get('user') ?? null, time: new Date().toISOString() }))
      }
      return send(res, 404, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=10' }, 'not found\n')
    }

    // POST /news/:id with a form or JSON body { "title": "…" } edits a record. strata invalidates
    // /news/:id itself (a successful unsafe request invalidates its URI); the app drops its
    // data-cache copies (deleteByTag on `article:<id>` and `news`, on every node when Redis is
    // shared), so the next read goes to the database.
    const edit = /^\/news\/(\d+)$/.exec(path)
    if (method === 'POST' && edit) {
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      const raw = Buffer.concat(chunks).toString('utf8')
      let title: string | undefined
      try {
        title = (req.headers['content-type'] ?? '').includes('json') ? (JSON.parse(raw) as { title?: string }).title : (new URLSearchParams(raw).get('title') ?? undefined)
      } catch {
        title = undefined
      }
      if (!title) return send(res, 400, { 'content-type': 'text/plain', 'cache-control': 'no-store' }, 'title is required\n')
      const updated = await db.update(Number(edit[1]), title.slice(0, 200))
      if (!updated) return send(res, 404, { 'content-type': 'text/plain', 'cache-control': 'no-store' }, 'no such article\n')
      await reads.invalidate(updated.id)
      return send(res, 200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify(updated))
    }
    return send(res, 405, { 'content-type': 'text/plain', allow: 'GET, HEAD', 'cache-control': 'no-store' }, 'method not allowed\n')
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500, { 'x-served-by': id, 'content-type': 'text/plain' })
      res.end(`error: ${(err as Error).message}\n`)
    })
  })
  server.keepAliveTimeout = 65_000
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve())
    })
  } catch (err) {
    await reads.close()
    throw err
  }
  const { port } = server.address() as AddressInfo
  return {
    id,
    url: `http://127.0.0.1:${port}`,
    server,
    reads,
    async close() {
      await new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
      await reads.close()
    },
  }
}
