import type { EsiConfig } from '../../src/config/schema.js'
import { assemble, compile, type EsiResult, type FragmentFetcher, type FragmentResponse } from '../../src/esi/index.js'

export const baseConfig: EsiConfig = {
  enabled: true,
  paths: [],
  allowedHosts: [],
  credentialHosts: [],
  maxDepth: 5,
  maxConcurrentIncludes: 32,
  maxIncludes: 256,
  fragmentTimeoutMs: 1000,
  onError: 'continue',
  forwardHeaders: ['cookie', 'accept-language', 'authorization'],
  compress: false,
  assembledPagesBytes: 0,
}

export type FragmentSpec = string | Partial<FragmentResponse> | ((url: URL, init: Parameters<FragmentFetcher>[1]) => Promise<FragmentResponse> | FragmentResponse)

/**
 * A fetcher over a table of fragments keyed by path+query (the engine's injected dependency; the
 * timing tests use a real origin instead). A fragment whose body contains ESI and that is marked
 * `esi: true` comes back compiled, as the page cache's prepare hook would hand it over.
 */
export function tableFetcher(table: Record<string, FragmentSpec & { esi?: boolean }>, calls: string[] = []): FragmentFetcher {
  return async (url, init) => {
    const key = url.origin === 'http://site.test' ? url.pathname + url.search : url.href
    calls.push(key)
    const spec = table[key]
    if (spec === undefined) return { statusCode: 404, headers: {}, body: Buffer.from('not found') }
    if (typeof spec === 'function') return spec(url, init)
    if (typeof spec === 'string') return { statusCode: 200, headers: { 'cache-control': 'max-age=60' }, body: Buffer.from(spec) }
    const body = spec.body ?? Buffer.alloc(0)
    return {
      statusCode: spec.statusCode ?? 200,
      headers: spec.headers ?? {},
      body,
      ...(spec.program ? { program: spec.program } : {}),
    }
  }
}

/** Marks a fragment as an ESI template (compiled once, like the page cache would). */
export function esiFragment(body: string, headers: Record<string, string> = {}): Partial<FragmentResponse> {
  return { statusCode: 200, headers, body: Buffer.from(body), program: compile(body) }
}

export interface RunOptions {
  url?: string
  headers?: Record<string, string | string[]>
  fragments?: Record<string, FragmentSpec>
  fetch?: FragmentFetcher
  config?: Partial<EsiConfig>
  cacheControl?: string
}

export async function run(template: string, opts: RunOptions = {}): Promise<{ body: string; result: EsiResult; calls: string[] }> {
  const calls: string[] = []
  const program = compile(template)
  const a = assemble(program, {
    pageUrl: new URL(opts.url ?? 'http://site.test/page'),
    headers: opts.headers ?? {},
    fetch: opts.fetch ?? tableFetcher(opts.fragments ?? {}, calls),
    config: { ...baseConfig, ...opts.config },
    ...(opts.cacheControl !== undefined ? { cacheControl: opts.cacheControl } : {}),
  })
  const body = program.hasEsi ? (await a.toBuffer()).toString() : template
  return { body, result: await a.result, calls }
}
