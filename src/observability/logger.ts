import pino, { type Logger, type LoggerOptions, type DestinationStream } from 'pino'
import { LineWriter, PIPE_BUF } from './line-writer.js'

export type { Logger }

export interface LoggerHandle {
  logger: Logger
  /** Where the access log writes its lines (buffered, asynchronous; see LineWriter). */
  accessLines: LineWriter
  /** Writes out whatever is still buffered, waiting a bounded time for stdout (call on shutdown). */
  flush(): Promise<void>
}

/**
 * The root pino logger. Modules take a `Logger` in their options and derive a child with
 * `{ module: '<name>' }`; nothing logs through console. Timestamps are epoch milliseconds. Secrets
 * are kept out of log calls rather than redacted.
 */
export function createLogger(level: string = process.env['STRATA_LOG_LEVEL'] ?? 'info', destination?: DestinationStream): Logger {
  const opts: LoggerOptions = { base: { pid: process.pid }, level }
  return destination ? pino(opts, destination) : pino(opts)
}

/**
 * The server process's logging. Everything on stdout goes through one asynchronous writer, so
 * that lines never interleave mid-line (a second writer on the same fd would write into a batch
 * that is still half written when stdout is a pipe that filled up). The access log (one line per
 * request) is written in batches, because a write(2) per request cost about a third of cache-hit
 * throughput; operational lines (startup, errors, state changes: a few per minute) start a write
 * at once, so tools see "listening" without delay.
 */
export function createServerLogger(level: string, opts: { sharedStdout?: boolean } = {}): LoggerHandle {
  // Workers share the primary's stdout: writes small enough for a pipe to take whole (see LineWriter).
  const accessLines = new LineWriter(1, opts.sharedStdout === true ? { atomicBytes: PIPE_BUF } : {})
  const logger = createLogger(level, { write: (line: string) => accessLines.writeNow(line) })
  return { logger, accessLines, flush: () => accessLines.close() }
}

/** A logger that drops everything; the default for library code and unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' })
