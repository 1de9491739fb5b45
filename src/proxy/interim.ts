import type { IncomingMessage, ServerResponse } from 'node:http'
import { stripHopByHop } from '../core/headers.js'

/**
 * Passes an origin's interim (1xx) response on to the client, before the final head. RFC 9111 §3:
 * a cache never stores a non-final response, so this is the only place a 1xx goes: it is never part
 * of a stored entry (the page cache only sees the final response). Only 102 Processing and
 * 103 Early Hints are relayed: strata answers `Expect: 100-continue` itself and 101 is an upgrade.
 * RFC 9110 §15.2: never to an HTTP/1.0 client; and never once the final head is out.
 */
export function relayInterim(req: IncomingMessage, res: ServerResponse, statusCode: number, headers: Record<string, string | string[]>): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return
  if (req.httpVersionMajor < 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor === 0)) return
  try {
    if (statusCode === 103) {
      // Node writes a 103 only when it carries a Link (what Early Hints is for, RFC 8297 §2).
      res.writeEarlyHints(stripHopByHop(headers))
    } else if (statusCode === 102) {
      res.writeProcessing()
    }
  } catch {
    // An origin's malformed Link is its problem, not the client's: the final response still follows.
  }
}

export type InterimHandler = (statusCode: number, headers: Record<string, string | string[]>) => void
