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

/** The last Host value that passed HOST_RE: a site sees the same few over and over. */
let lastGoodHost = ''

export function rejectReason(req: IncomingMessage): string | undefined {
  const url = req.url ?? ''
  if (url.charCodeAt(0) !== 47 /* / */) {
    return req.method === 'OPTIONS' && url === '*' ? undefined : 'the request target must be a path (origin-form)'
  }
  const te = req.headers['transfer-encoding']
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') return 'unsupported Transfer-Encoding'
  const host = req.headers.host
  if (host === undefined) return 'invalid Host header'
  if (host !== lastGoodHost) {
    if (!HOST_RE.test(host)) return 'invalid Host header'
    lastGoodHost = host
  }
  const raw = req.rawHeaders
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) {
    if (isHostName(raw[i]!) && ++hosts > 1) return 'more than one Host header'
  }
  return undefined
}

/** `name` equals "host" in any case, without allocating a lower-cased copy. */
function isHostName(name: string): boolean {
  return (
    name.length === 4 &&
    (name.charCodeAt(0) | 0x20) === 0x68 &&
    (name.charCodeAt(1) | 0x20) === 0x6f &&
    (name.charCodeAt(2) | 0x20) === 0x73 &&
    (name.charCodeAt(3) | 0x20) === 0x74
  )
}
