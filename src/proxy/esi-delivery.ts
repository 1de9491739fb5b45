import { createGunzip, createGzip, gunzipSync } from 'node:zlib'
import { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { EsiConfig } from '../config/schema.js'
import { appendServerTiming } from '../observability/server-timing.js'
import type { Logger } from '../observability/logger.js'
import { StrataError } from '../core/errors.js'
import { headerValue } from '../core/headers.js'
import { through } from '../core/streams.js'
import { assemble, compile, isEsiResponse, prepareEsi, type EsiProgram, type FragmentFetcher, type FragmentLookup, type FragmentResponse } from '../esi/index.js'
import { writeChunkedPage } from './raw-response.js'
import { acceptsEncoding, canonicalTarget, keyTarget, type CacheEntry, type CacheRequest, type CacheResult, type OriginResponse, type PageCache } from '../page-cache/index.js'

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

/** Sends a fragment request upstream: through the balancer for the site's own host, else straight to the allowed host. */
export type FragmentOriginFetch = (req: CacheRequest, opts: { sameSite: boolean; signal: AbortSignal }) => Promise<OriginResponse>

/**
 * ESI at the edge: the page cache keeps each template's compiled program next to its body (the
 * `prepare` hook, run once when the entry enters memory); a request for it walks the program and
 * fetches the includes in parallel through the page cache, so each fragment is cached under its own
 * key with its own lifetime. The assembled page is never stored as a whole.
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

  constructor(opts: EsiDeliveryOptions) {
    this.#config = opts.config
    this.#cache = opts.cache
    this.#log = opts.logger.child({ module: 'esi' })
    this.#maxBody = opts.maxBodyBytes
    this.#metrics = opts.metrics
  }

  /** A config reload: the next template and assembly use the new settings (esi.enabled stays). */
  reconfigure(config: EsiConfig): void {
    this.#config = config
    // Include resolution remembers its answers per page URL object (allowedHosts among them).
    this.#pageUrls.clear()
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
   * nothing fetched and nothing counted) when the page needs the full, asynchronous path.
   */
  assembleFromMemory(result: CacheResult, program: EsiProgram, req: { url: string; headers: CacheRequest['headers'] }, now: number): { status: number; headers: Record<string, string | string[]>; page: Buffer } | undefined {
    if (result.statusCode !== 200 || (this.#config.compress && acceptsEncoding(headerValue(req.headers, 'accept-encoding'), 'gzip'))) return undefined
    let hits = 0
    const lookup: FragmentLookup = (url, init) => {
      const r = this.#fragmentFromMemory(url, init.headers, false, now)
      if (r !== undefined) hits++
      return r
    }
    const assembly = assemble(program, {
      pageUrl: this.#pageUrl(req.headers.host as string | undefined, req.url),
      headers: req.headers,
      fetch: NO_FETCH,
      lookup,
      memoryOnly: true,
      config: this.#config,
      logger: this.#log,
      ...(result.entry?.headers['cache-control'] === undefined ? {} : { cacheControl: result.entry.headers['cache-control'] }),
    })
    const done = assembly.completeSync()
    if (done === undefined) return undefined
    for (let i = 0; i < hits; i++) this.#cache.countHit()
    this.#metrics?.esiInclude('hit', hits)
    return { status: result.statusCode, headers: pageHeaders(result.headers, done.cacheControl), page: done.page }
  }

  /** A fresh fragment in L1, answered during the program walk (identity-encoded entries only). */
  readonly #lookup: FragmentLookup = (url, init) => {
    const r = this.#fragmentFromMemory(url, init.headers, true)
    if (r !== undefined) this.#metrics?.esiInclude('hit')
    return r
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

  #fragmentFromMemory(url: URL, headers: Record<string, string>, count: boolean, now?: number): FragmentResponse | undefined {
    const t = this.#target(url)
    const entry = this.#cache.freshEntry({ method: 'GET', scheme: t.scheme, host: t.host, url: t.url, headers }, count, t.key, now)
    if (entry === undefined || entry.encoding !== '') return undefined
    const program = entry.prepared as EsiProgram | undefined
    return program === undefined ? { statusCode: entry.status, headers: entry.headers, body: entry.body } : { statusCode: entry.status, headers: entry.headers, body: entry.body, program }
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
