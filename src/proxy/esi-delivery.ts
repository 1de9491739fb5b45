import { createGunzip, createGzip, gunzipSync } from 'node:zlib'
import { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { EsiConfig } from '../config/schema.js'
import { appendServerTiming } from '../observability/server-timing.js'
import type { Logger } from '../observability/logger.js'
import { StrataError } from '../core/errors.js'
import { headerValue } from '../core/headers.js'
import { through } from '../core/streams.js'
import {
  AssembledPages, assemble, compile, credentialsAllowed, credentialTable, forwardedHeaders, isEsiResponse, keepable, prepareEsi, varyKeepable,
  type EsiProgram, type FragmentFetcher, type FragmentLookup, type FragmentResponse, type KeepVerdict,
} from '../esi/index.js'
import { writeChunkedPage } from './raw-response.js'
import { acceptsEncoding, canonicalTarget, hitHead, keyTarget, ownedBytes, type CacheEntry, type CacheRequest, type CacheResult, type OriginResponse, type PageCache } from '../page-cache/index.js'

/** Fields of the template that don't describe the assembled page (RFC 9110 §8.6, §8.8). */
const TEMPLATE_ONLY = ['content-length', 'content-range', 'etag', 'last-modified', 'accept-ranges', 'content-md5', 'content-encoding', 'surrogate-control']

export interface EsiDeliveryOptions {
  config: EsiConfig
  cache: PageCache
  logger: Logger
  /** Largest fragment or uncached template strata will buffer (cache.maxObjectBytes). */
  maxBodyBytes: number
  /** Where assembly times and include outcomes are counted (the app's metrics). */
  metrics?: EsiMetrics
}

/** What ESI delivery reports to the metrics. */
export interface EsiMetrics {
  esiAssembled(ms: number): void
  esiInclude(outcome: 'hit' | 'miss' | 'error' | 'timeout', n?: number): void
}

/** What /stats shows of ESI (the `esi` section). */
export interface EsiStats {
  /**
   * Whole assembled pages kept for pages whose every part is public and fresh (`esi.assembledPagesBytes`):
   * bytes and pages held, the bound, pages served whole, kept, dropped because a part changed or
   * went stale, evicted by the bound, and assemblies not kept, by reason.
   */
  assembledPages: { maxBytes: number; bytes: number; pages: number; hits: number; kept: number; dropped: number; evicted: number; notKept: Partial<Record<Exclude<KeepVerdict, 'ok'>, number>> }
}

/** Sends a fragment request upstream: through the balancer for the site's own host, else straight to the allowed host. */
export type FragmentOriginFetch = (req: CacheRequest, opts: { sameSite: boolean; signal: AbortSignal }) => Promise<OriginResponse>

/**
 * ESI at the edge: the page cache keeps each template's compiled program next to its body (the
 * `prepare` hook, run once when the entry enters memory); a request for it walks the program and
 * fetches the includes in parallel through the page cache, so each fragment is cached under its own
 * key with its own lifetime. The assembled page is never stored in the page cache as a whole; a
 * page assembled from memory whose every part is public and fresh is kept in memory beside it
 * (AssembledPages), and served again only while every part still resolves, for that very
 * request, to the stored entry it was built from.
 */
export class EsiDelivery {
  #config: EsiConfig
  readonly #cache: PageCache
  readonly #log: Logger
  readonly #maxBody: number
  readonly #metrics: EsiMetrics | undefined
  /**
   * Page URLs by host + target, reused across requests: a URL parse costs more than a whole
   * memory-only assembly's lookups, and include resolution remembers its answers per URL object.
   */
  readonly #pageUrls = new Map<string, URL>()
  /** Each resolved fragment URL's page-cache request target and key, computed once. */
  readonly #targets = new WeakMap<URL, FragmentTarget>()
  /** Whole pages assembled from memory, by host + request target; undefined when esi.assembledPagesBytes is 0. */
  #pages: AssembledPages<KeptPart> | undefined
  /** Assemblies from memory not kept, by reason (for /stats). */
  readonly #notKept: Partial<Record<Exclude<KeepVerdict, 'ok'>, number>> = {}

  constructor(opts: EsiDeliveryOptions) {
    this.#config = opts.config
    this.#cache = opts.cache
    this.#log = opts.logger.child({ module: 'esi' })
    this.#maxBody = opts.maxBodyBytes
    this.#metrics = opts.metrics
    this.#pages = keptPages(opts.config)
  }

  /** A config reload: the next template and assembly use the new settings (esi.enabled stays). */
  reconfigure(config: EsiConfig): void {
    const resized = config.assembledPagesBytes !== this.#config.assembledPagesBytes
    this.#config = config
    // Include resolution remembers its answers per page URL object (allowedHosts among them).
    this.#pageUrls.clear()
    // Kept pages were assembled under the old settings (allowed hosts, forwarded headers, limits).
    if (resized) this.#pages = keptPages(config)
    else this.#pages?.clear()
  }

  /**
   * After a purge: a purge of everything drops every kept page at once. Other purges need nothing
   * here (a kept page whose part was purged no longer finds that part's entry and is dropped on
   * its next request); its memory is freed then, or by the bound.
   */
  purged(cmd: unknown): void {
    if (cmd !== null && typeof cmd === 'object' && (cmd as { all?: unknown }).all === true) this.#pages?.clear()
  }

  /** The `esi` section of /stats. */
  stats(): EsiStats {
    const pages = this.#pages
    const size = pages?.size ?? { bytes: 0, pages: 0 }
    const s = pages?.stats ?? { hits: 0, kept: 0, dropped: 0, evicted: 0 }
    return { assembledPages: { maxBytes: pages === undefined ? 0 : pages.maxBytes, bytes: size.bytes, pages: size.pages, hits: s.hits, kept: s.kept, dropped: s.dropped, evicted: s.evicted, notKept: { ...this.#notKept } } }
  }

  /** The page cache's prepare hook: a compiled program for ESI templates, undefined otherwise. */
  prepare = (entry: CacheEntry): EsiProgram | undefined => {
    const headers = entry.surrogateControl === undefined ? entry.headers : { ...entry.headers, 'surrogate-control': entry.surrogateControl }
    return prepareEsi({ headers, body: entry.body, encoding: entry.encoding, path: keyTarget(entry.key) }, this.#config, this.#log)
  }

  /** Whether an origin response (for this request URL) is an ESI template: cheap, synchronous. */
  isTemplate(originHeaders: Record<string, string | string[]>, url: string): boolean {
    return isEsiResponse(originHeaders, url, this.#config)
  }

  /**
   * The program to assemble for this result, if any: from the stored entry on hits, or compiled
   * now from a marked response that streamed from the origin (a miss or an uncacheable template).
   * Returns undefined when the response is not an ESI template.
   */
  async programFor(result: CacheResult, originHeaders: Record<string, string | string[]> | undefined, url: string): Promise<{ program: EsiProgram; cacheControl: string | string[] | undefined } | undefined> {
    // A stored template carries its program whatever form the body takes here (a Buffer, a gunzip
    // stream for a client without gzip, or none for HEAD): the program alone is walked.
    const prepared = result.entry?.prepared as EsiProgram | undefined
    if (prepared !== undefined) return { program: prepared, cacheControl: result.entry!.headers['cache-control'] }
    if (originHeaders === undefined || !(result.body instanceof Readable) || !isEsiResponse(originHeaders, url, this.#config)) return undefined
    // result.headers, not the origin's: the page cache already decoded gzip for a client without it.
    const body = await readAll(decoded(result.body, headerValue(result.headers, 'content-encoding')), this.#maxBody)
    const program = compile(body, { logger: this.#log })
    if (!program.hasEsi) {
      // Marked but without ESI: serve the bytes as they are.
      result.body = body
      delete result.headers['content-encoding']
      result.headers['content-length'] = String(body.length)
      return undefined
    }
    return { program, cacheControl: originHeaders['cache-control'] }
  }

  /** Assembles and sends the page. Resolves once fastify has the response. */
  async send(
    request: FastifyRequest,
    reply: FastifyReply,
    result: CacheResult,
    found: { program: EsiProgram; cacheControl: string | string[] | undefined },
    fetchOrigin: FragmentOriginFetch,
    /** Server-Timing so far (cache, upstream) when it is on; `esi;dur` is added at the head. */
    timing?: string,
  ): Promise<FastifyReply> {
    const { program, cacheControl: templateCacheControl } = found
    const started = performance.now()
    const pageUrl = this.#pageUrl(request.headers.host, request.url)
    const assembly = assemble(program, {
      pageUrl,
      headers: request.headers,
      fetch: this.#fetcher(pageUrl.host, fetchOrigin),
      lookup: this.#lookup,
      config: this.#config,
      logger: this.#log,
      ...(templateCacheControl === undefined ? {} : { cacheControl: templateCacheControl }),
    })
    // The client left: stop fetching for nobody.
    request.raw.once('close', () => {
      if (!reply.raw.writableFinished) assembly.abort(new Error('client closed the connection'))
    })
    const head = await assembly.head
    if (head.error) {
      this.#log.warn({ url: request.url, err: { code: head.error.code, message: head.error.message } }, 'ESI page failed before its first byte')
      throw head.error
    }
    // If every include already finished, the client Cache-Control is exact; otherwise a fragment
    // still pending could be private, so the page is marked private (strata itself never stores
    // assembled pages, only their parts).
    let final: string | undefined
    void assembly.result.then((r) => (final = r.cacheControl))
    await Promise.resolve()
    const headers = pageHeaders(result.headers, final ?? 'private, max-age=0')
    if (timing !== undefined) headers['server-timing'] = appendServerTiming(timing, 'esi', performance.now() - started)
    const compress = this.#config.compress && acceptsEncoding(headerValue(request.headers, 'accept-encoding'), 'gzip')
    let body: Readable | undefined
    if (final === undefined || compress) {
      body = assembly.toReadable()
      if (compress) {
        body = through(body, createGzip())
        headers['content-encoding'] = 'gzip'
        headers['vary'] = appendVary(headers['vary'], 'Accept-Encoding')
      }
    }
    void assembly.result.then((r) => {
      const metrics = this.#metrics
      if (metrics !== undefined) {
        metrics.esiAssembled(performance.now() - started)
        for (const f of r.failed) metrics.esiInclude(f.reason === 'timeout' ? 'timeout' : 'error')
      }
      if (r.anyFailed) this.#log.warn({ url: request.url, failed: r.failed.map((f) => ({ src: f.src, reason: f.reason, handledBy: f.handledBy })) }, 'ESI includes failed')
    })
    // A Range was decided against the template's bytes; the assembled page is sent whole.
    const status = result.statusCode === 206 || result.statusCode === 416 ? (result.entry?.status ?? 200) : result.statusCode
    if (body !== undefined) {
      reply.code(status).headers(headers)
      return reply.send(body)
    }
    // Everything was ready before the first byte (the common case: every fragment cached). The
    // page is still chunked without a Content-Length, like every assembled page, but goes out as
    // one chunk: write + end in one tick are corked into a single socket write. Fastify's stream
    // machinery costs more than the assembly here, so the raw response is used (onResponse hooks,
    // and so the access log, still run).
    const page = await assembly.toBuffer()
    reply.hijack()
    writeChunkedPage(reply.raw, status, headers, page)
    request.strata.ended(status)
    return reply
  }

  /**
   * The fast path for a stored template: assembles it synchronously when every include is a
   * fresh fragment in memory, and returns the status, headers and page to write; undefined (with
   * nothing fetched and nothing counted) when the page needs the full, asynchronous path. A page
   * kept whole (see `#keptPage`) is served without walking the program.
   */
  assembleFromMemory(result: CacheResult, program: EsiProgram, req: { url: string; headers: CacheRequest['headers'] }, now: number): { status: number; headers: Record<string, string | string[]>; page: Buffer } | undefined {
    if (result.statusCode !== 200 || (this.#config.compress && acceptsEncoding(headerValue(req.headers, 'accept-encoding'), 'gzip'))) return undefined
    const host = req.headers.host as string | undefined
    const template = result.entry
    const pages = template === undefined ? undefined : this.#pages
    // The page URL is what the walk resolves includes against (with the Host): the same request
    // target on the same host gives the same walk, whatever the cache key normalises away.
    const pageId = pages === undefined ? '' : `${host ?? 'localhost'}${req.url}`
    if (pages !== undefined) {
      const kept = this.#keptPage(pages, pageId, template!, req.headers, now)
      if (kept !== undefined) {
        const fragments = kept.parts.length - 1
        for (let i = 0; i < fragments; i++) this.#cache.countHit()
        this.#metrics?.esiInclude('hit', fragments)
        return { status: result.statusCode, headers: pageHeaders(result.headers, kept.headers['cache-control'] as string), page: kept.body }
      }
    }
    const pageUrl = this.#pageUrl(host, req.url)
    // While a page may be kept, every part the walk resolves is recorded with its stored entry.
    const parts: KeptPart[] | undefined = pages === undefined ? undefined : [{ target: undefined, credentials: false, entry: template! }]
    let hits = 0
    const lookup: FragmentLookup = (url, init) => {
      const entry = this.#fragmentEntry(url, init.headers, now)
      if (entry === undefined) return undefined
      hits++
      if (parts !== undefined) parts.push({ target: this.#target(url), credentials: credentialsAllowed(url, pageUrl, this.#config.credentialHosts, credentialTable(pageUrl, this.#config.credentialHosts)), entry })
      return asFragment(entry)
    }
    const assembly = assemble(program, {
      pageUrl,
      headers: req.headers,
      fetch: NO_FETCH,
      lookup,
      memoryOnly: true,
      config: this.#config,
      logger: this.#log,
      ...(template?.headers['cache-control'] === undefined ? {} : { cacheControl: template.headers['cache-control'] }),
    })
    const done = assembly.completeSync()
    if (done === undefined) return undefined
    for (let i = 0; i < hits; i++) this.#cache.countHit()
    this.#metrics?.esiInclude('hit', hits)
    const headers = pageHeaders(result.headers, done.cacheControl)
    if (parts !== undefined) this.#keep(pages!, pageId, program, done, parts, headers)
    return { status: result.statusCode, headers, page: done.page }
  }

  /**
   * The fast path's first try for a stored template, before any response object is built: the
   * kept page for this request with its head as a flat header list (Age and Cache-Status of this
   * hit), as `assembleFromMemory` would answer it; undefined otherwise (then `freshResult` and
   * `assembleFromMemory` as usual). Only a plain GET or HEAD qualifies: a conditional or Range
   * request, or one needing the template decoded, takes the usual way.
   */
  keptHit(entry: CacheEntry, req: { url: string; headers: CacheRequest['headers'] }, now: number): { status: number; headers: (string | string[])[]; page: Buffer } | undefined {
    const pages = this.#pages
    const h = req.headers
    if (pages === undefined || entry.status !== 200 || h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['range'] !== undefined) return undefined
    const ae = h['accept-encoding']
    if (ae !== undefined) {
      // What deliver (a gunzip stream) and assembleFromMemory (esi.compress) would refuse.
      const gzip = acceptsEncoding(headerValue(h, 'accept-encoding'), 'gzip')
      if (this.#config.compress ? gzip : entry.encoding === 'gzip' && !gzip) return undefined
    } else if (entry.encoding === 'gzip') return undefined
    const kept = this.#keptPage(pages, `${(h.host as string | undefined) ?? 'localhost'}${req.url}`, entry, h, now)
    if (kept?.wire === undefined) return undefined
    const fragments = kept.parts.length - 1
    for (let i = 0; i < fragments; i++) this.#cache.countHit()
    this.#metrics?.esiInclude('hit', fragments)
    return { status: 200, headers: hitHead(kept.wire, entry, now), page: kept.body }
  }

  /**
   * The kept page for this request, if it is exactly what assembling it now would give: the
   * template is the entry this request just found, and every fragment, looked up again with the
   * headers the walk would send for this request, is the very entry the page was built from (a
   * purge, a refresh, an eviction or another variant is another entry, or none) and still fresh.
   */
  #keptPage(pages: AssembledPages<KeptPart>, pageId: string, template: CacheEntry, headers: CacheRequest['headers'], now: number): KeptPage | undefined {
    let fwd: ReturnType<typeof forwardedHeaders> | undefined
    return pages.get(pageId, now, (part) => {
      const t = part.target
      if (t === undefined) return part.entry === template
      fwd ??= forwardedHeaders(headers, this.#config.forwardHeaders)
      const h = part.credentials ? fwd.forward : fwd.anonymous
      return this.#cache.freshEntry({ method: 'GET', scheme: t.scheme, host: t.host, url: t.url, headers: h }, false, t.key, now) === part.entry
    })
  }

  /**
   * Keeps an assembly whose output needs nothing from the request but what the identity checks
   * cover: no ESI variables in any program walked (the template's or a nested fragment's), every
   * part public with a positive max-age (the folded Cache-Control), no part varying by anything
   * but Accept-Encoding. The reason it was not kept is counted otherwise.
   */
  #keep(pages: AssembledPages<KeptPart>, pageId: string, program: EsiProgram, done: { page: Buffer; cacheControl: string }, parts: readonly KeptPart[], headers: Record<string, string | string[]>): void {
    let verdict = keepable(program, done.cacheControl)
    let freshUntil = Number.POSITIVE_INFINITY
    for (const p of parts) {
      if (verdict !== 'ok') break
      if ((p.entry.prepared as EsiProgram | undefined)?.usesVariables === true) verdict = 'variables'
      else verdict = varyKeepable(p.entry.vary)
      if (p.entry.staleAt < freshUntil) freshUntil = p.entry.staleAt
    }
    if (verdict !== 'ok') {
      this.#notKept[verdict] = (this.#notKept[verdict] ?? 0) + 1
      return
    }
    // A small page is a view into Node's shared pool: kept, it would pin the whole slab.
    const wire = hitWire(headers)
    pages.set(pageId, { status: 200, headers: { 'cache-control': done.cacheControl }, body: ownedBytes(done.page), parts, freshUntil, ...(wire === undefined ? {} : { wire }) })
  }

  /** A fresh fragment in L1, answered during the program walk (identity-encoded entries only). */
  readonly #lookup: FragmentLookup = (url, init) => {
    const entry = this.#fragmentEntry(url, init.headers)
    if (entry === undefined) return undefined
    this.#cache.countHit()
    this.#metrics?.esiInclude('hit')
    return asFragment(entry)
  }

  #pageUrl(host: string | undefined, target: string): URL {
    const h = host ?? 'localhost'
    const id = h + target
    let url = this.#pageUrls.get(id)
    if (url === undefined) {
      url = new URL(`http://${h}${target}`)
      if (this.#pageUrls.size >= 10_000) this.#pageUrls.clear()
      this.#pageUrls.set(id, url)
    }
    return url
  }

  #target(url: URL): FragmentTarget {
    let t = this.#targets.get(url)
    if (t === undefined) {
      const req = fragmentRequest(url, {})
      t = { scheme: req.scheme, host: req.host, url: req.url, key: this.#cache.keyFor(req) }
      this.#targets.set(url, t)
    }
    return t
  }

  /** The fresh L1 entry of a fragment for these include headers, if identity-encoded (uncounted). */
  #fragmentEntry(url: URL, headers: Readonly<Record<string, string>>, now?: number): CacheEntry | undefined {
    const t = this.#target(url)
    const entry = this.#cache.freshEntry({ method: 'GET', scheme: t.scheme, host: t.host, url: t.url, headers }, false, t.key, now)
    return entry === undefined || entry.encoding !== '' ? undefined : entry
  }

  /** Each include is a sub-request through the page cache: its own key, TTL, Vary and coalescing. */
  #fetcher(siteHost: string, fetchOrigin: FragmentOriginFetch): FragmentFetcher {
    return async (url, init) => {
      const sameSite = url.host === siteHost
      const req = fragmentRequest(url, { ...init.headers, host: url.host })
      req.signal = init.signal
      // The client-facing result has Surrogate-Control stripped; whether a fragment fetched now is
      // itself a template is read from the origin's own headers.
      let originHeaders: Record<string, string | string[]> | undefined
      const result = await this.#cache.handle(req, async (r, extra) => {
        const res = await fetchOrigin(extra === undefined ? r : { ...r, headers: { ...r.headers, ...extra } }, { sameSite, signal: init.signal })
        originHeaders ??= res.headers
        return res
      })
      this.#metrics?.esiInclude(result.cacheStatus === 'HIT' || result.cacheStatus === 'STALE' ? 'hit' : 'miss')
      return this.#toFragment(result, originHeaders, url.pathname, init.signal)
    }
  }

  async #toFragment(result: CacheResult, originHeaders: Record<string, string | string[]> | undefined, path: string, signal: AbortSignal): Promise<FragmentResponse> {
    const status = result.statusCode
    let program = result.entry?.prepared as EsiProgram | undefined
    let body: Buffer
    if (result.body instanceof Readable) {
      const stream = result.body
      const onAbort = () => stream.destroy(new StrataError('STRATA_ESI_FRAGMENT_FAILED', 'fragment aborted'))
      signal.addEventListener('abort', onAbort, { once: true })
      try {
        body = await readAll(decoded(stream, headerValue(result.headers, 'content-encoding')), this.#maxBody)
      } finally {
        signal.removeEventListener('abort', onAbort)
      }
      if (program === undefined && originHeaders !== undefined && isEsiResponse(originHeaders, path, this.#config)) {
        const compiled = compile(body, { logger: this.#log })
        if (compiled.hasEsi) program = compiled
      }
    } else if (result.body === null) {
      body = Buffer.alloc(0)
    } else {
      body = result.entry?.encoding === 'gzip' && result.headers['content-encoding'] === 'gzip' ? gunzipSync(result.body) : result.body
    }
    return { statusCode: status, headers: result.headers, body, ...(program === undefined ? {} : { program }) }
  }
}

/** A fragment URL as the page cache sees it, with its primary key. */
interface FragmentTarget {
  readonly scheme: 'http' | 'https'
  readonly host: string
  readonly url: string
  readonly key: string
}

/** One part of a kept page: the stored entry it was built from, and how to look it up again. */
interface KeptPart {
  /** The fragment's request target; undefined for the template (the request's own lookup finds it). */
  readonly target: FragmentTarget | undefined
  /** Whether the walk sent the client's Cookie and Authorization with this include. */
  readonly credentials: boolean
  readonly entry: CacheEntry
}

type KeptPage = ReturnType<AssembledPages<KeptPart>['get']> & object

function keptPages(config: EsiConfig): AssembledPages<KeptPart> | undefined {
  return config.assembledPagesBytes > 0 ? new AssembledPages<KeptPart>({ maxBytes: config.assembledPagesBytes }) : undefined
}

/**
 * The page's head as `hitHead` takes it: a flat list with Age, X-Cache and Cache-Status first (in
 * `deliver`'s order, whose values `hitHead` replaces per hit); undefined if they are not first.
 */
function hitWire(headers: Record<string, string | string[]>): (string | string[])[] | undefined {
  const out: (string | string[])[] = []
  for (const name in headers) out.push(name, headers[name]!)
  return out[0] === 'age' && out[2] === 'x-cache' && out[3] === 'HIT' && out[4] === 'cache-status' ? out : undefined
}

/** A stored fragment as the engine takes it. */
function asFragment(entry: CacheEntry): FragmentResponse {
  const program = entry.prepared as EsiProgram | undefined
  return program === undefined ? { statusCode: entry.status, headers: entry.headers, body: entry.body } : { statusCode: entry.status, headers: entry.headers, body: entry.body, program }
}

/** memoryOnly assemblies never fetch; the engine does not call this. */
const NO_FETCH: FragmentFetcher = () => Promise.reject(new StrataError('STRATA_ESI_FRAGMENT_FAILED', 'memory-only assembly'))

/** The template's headers turned into the assembled page's: its own length and validators go. */
function pageHeaders(headers: Record<string, string | string[]>, cacheControl: string): Record<string, string | string[]> {
  for (const name of TEMPLATE_ONLY) delete headers[name]
  headers['cache-control'] = cacheControl
  return headers
}

/** The page-cache request for an include (a GET with the forwarded client headers). */
function fragmentRequest(url: URL, headers: CacheRequest['headers']): CacheRequest {
  // WHATWG already resolved dot segments and lower-cased the host; canonicalTarget adds the
  // percent-encoding normalisation, so the include and a client's request share one key.
  return { method: 'GET', scheme: url.protocol === 'https:' ? 'https' : 'http', host: url.host, url: canonicalTarget(url.pathname + url.search), headers }
}

function decoded(stream: Readable, encoding: string | undefined): Readable {
  return encoding === 'gzip' ? through(stream, createGunzip()) : stream
}

async function readAll(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of stream) {
    size += (c as Buffer).length
    if (size > limit) {
      stream.destroy()
      throw new StrataError('STRATA_ESI_FRAGMENT_FAILED', `ESI body larger than ${limit} bytes`)
    }
    chunks.push(c as Buffer)
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
}

function appendVary(cur: string | string[] | undefined, field: string): string {
  const list = cur === undefined ? '' : Array.isArray(cur) ? cur.join(', ') : cur
  if (list.toLowerCase().split(',').some((f) => f.trim() === field.toLowerCase() || f.trim() === '*')) return list
  return list ? `${list}, ${field}` : field
}
