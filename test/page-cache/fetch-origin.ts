/**
 * The OriginFetch the tests hand to PageCache.handle: a real HTTP request with undici to a real
 * origin, the way the proxy will do it (failures become StrataErrors).
 */
import { request, Agent } from 'undici'
import { StrataError } from '../../src/core/errors.js'
import type { CacheRequest, OriginFetch, OriginResponse } from '../../src/page-cache/types.js'

const agent = new Agent({ connectTimeout: 1000, keepAliveTimeout: 1000 })

export function originFetch(baseUrl: () => string, opts: { timeoutMs?: number } = {}): OriginFetch {
  return async (req: CacheRequest, extra?: Record<string, string>): Promise<OriginResponse> => {
    const headers: Record<string, string | string[]> = {}
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && k !== 'host' && k !== 'connection') headers[k] = v
    if (extra) Object.assign(headers, extra)
    try {
      const res = await request(baseUrl() + req.url, {
        method: req.method as 'GET',
        headers,
        dispatcher: agent,
        headersTimeout: opts.timeoutMs ?? 5000,
        bodyTimeout: opts.timeoutMs ?? 5000,
      })
      return { statusCode: res.statusCode, headers: res.headers as Record<string, string | string[]>, body: res.body, upstreamId: 'origin' }
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') throw new StrataError('STRATA_UPSTREAM_TIMEOUT', undefined, { cause: err })
      throw new StrataError('STRATA_UPSTREAM_CONNECT', undefined, { cause: err })
    }
  }
}

/** Reads a CacheResult body (Buffer, stream or null) fully. */
export async function bodyOf(body: Buffer | NodeJS.ReadableStream | null): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0)
  if (Buffer.isBuffer(body)) return body
  const chunks: Buffer[] = []
  for await (const c of body) chunks.push(Buffer.from(c as Buffer))
  return Buffer.concat(chunks)
}
