import type { IncomingMessage } from 'node:http'

/**
 * Rejects requests that a shared cache must not guess about. Node's parser already refuses
 * Content-Length + Transfer-Encoding together, duplicate Content-Length, bare LF line endings and
 * a missing Host; what it lets through, and we refuse here:
 * - a Transfer-Encoding other than exactly `chunked` (RFC 9112 §6.3: the length can't be known,
 *   and proxies that disagree about it are how requests get smuggled);
 * - more than one Host header, or a Host that is not a hostname[:port] (the cache key is built
 *   from Host, so an ambiguous one is a cache-poisoning vector, RFC 9112 §3.2);
 * - a request-target that is not origin-form (`/path`): absolute-form would let the target
 *   disagree with Host.
 * Returns the reason to send with a 400, or undefined when the request is fine.
 */
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/

export function rejectReason(req: IncomingMessage): string | undefined {
  const url = req.url ?? ''
  if (url.charCodeAt(0) !== 47 /* / */) {
    return req.method === 'OPTIONS' && url === '*' ? undefined : 'the request target must be a path (origin-form)'
  }
  const te = req.headers['transfer-encoding']
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') return 'unsupported Transfer-Encoding'
  const host = req.headers.host
  if (host === undefined || !HOST_RE.test(host)) return 'invalid Host header'
  const raw = req.rawHeaders
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 4 && name.toLowerCase() === 'host' && ++hosts > 1) return 'more than one Host header'
  }
  return undefined
}
