/** Pass-through: the request goes to the origin and its answer to the client, not stored (Cache-Status `fwd`). */
import { passHeaders } from './respond.js'
import type { Counters } from './stats.js'
import type { CacheRequest, CacheResult, OriginFetch, OriginResponse } from './types.js'

/** Straight to the origin, counted as a pass; the answer goes back untouched but for its headers. */
export async function pass(counters: Counters, req: CacheRequest, fetchOrigin: OriginFetch, fwd: string): Promise<CacheResult> {
  counters.passes++
  const res = await fetchOrigin(req)
  return passResult(res, fwd)
}

export function passResult(res: OriginResponse, fwd: string): CacheResult {
  return { statusCode: res.statusCode, headers: passHeaders(res.headers, fwd), body: res.body, cacheStatus: 'PASS', ...(res.upstreamId !== undefined ? { upstreamId: res.upstreamId } : {}) }
}
