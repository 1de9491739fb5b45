import pino, { type Logger } from 'pino'

export interface AccessRecord {
  method: string
  url: string
  status: number
  ms: number
  upstream: string | undefined
  cache: string
}

/**
 * The access log: one JSON line per request, in pino's format (level 30, epoch `time`, `pid`,
 * `msg: "request"`), written to the logger's own destination. Built by hand because it runs on
 * every request: pino's generic serialisation cost ~3.4 µs a line here, about a tenth of a cache
 * hit; this costs a few hundred nanoseconds. Returns undefined when info is not enabled.
 */
export function createAccessLog(logger: Logger, lines?: { write(s: string): unknown }): ((r: AccessRecord) => void) | undefined {
  if (!logger.isLevelEnabled('info')) return undefined
  // A dedicated line writer when the process has one (the CLI), else the logger's own stream.
  const stream = lines ?? (logger as unknown as Record<symbol, { write(s: string): unknown }>)[pino.symbols.streamSym]
  if (stream === undefined) return undefined
  const prefix = `{"level":30,"time":`
  const pid = `,"pid":${process.pid},"method":`
  return (r) => {
    // Upstream ids are validated to [A-Za-z0-9._-] and cache statuses are a fixed set, so only
    // the method and the URL, which come from the client, need escaping.
    stream.write(
      `${prefix}${Date.now()}${pid}${JSON.stringify(r.method)},"url":${JSON.stringify(r.url)},"status":${r.status},"ms":${r.ms}${r.upstream === undefined ? '' : `,"upstream":"${r.upstream}"`},"cache":"${r.cache}","msg":"request"}\n`,
    )
  }
}
