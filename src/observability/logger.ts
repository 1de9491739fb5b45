import pino, { type Logger, type LoggerOptions, type DestinationStream } from 'pino'
import { LineWriter } from './line-writer.js'

export type { Logger }

export interface LoggerHandle {
  logger: Logger
  /** Where the access log writes its lines (buffered; see LineWriter). */
  accessLines: LineWriter
  /** Writes out whatever is still buffered (call on shutdown). */
  flush(): void
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
 * The server process's logging: operational lines (startup, errors, state changes: a few per
 * minute) go out synchronously so tools see "listening" at once and nothing is lost on a crash;
 * the access log (one line per request) goes through a buffered asynchronous writer, because a
 * write(2) per request cost about a third of cache-hit throughput.
 */
export function createServerLogger(level: string): LoggerHandle {
  const logger = createLogger(level)
  const accessLines = new LineWriter(1)
  return { logger, accessLines, flush: () => accessLines.flushSync() }
}

/** A logger that drops everything; the default for library code and unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' })
