import pino, { type Logger, type LoggerOptions, type DestinationStream } from 'pino'

export type { Logger }

export interface LoggerHandle {
  logger: Logger
  /** Writes out whatever the buffered destination still holds (call on shutdown). */
  flush(): void
}

const BASE_OPTIONS: LoggerOptions = {
  base: { pid: process.pid },
  // Epoch milliseconds: an ISO string costs a Date allocation and formatting on every line.
}

/**
 * The root pino logger. Modules take a `Logger` in their options and derive a child with
 * `{ module: '<name>' }`; nothing logs through console. Secrets are kept out of log calls
 * rather than redacted, because redaction costs on every line of the access log.
 */
export function createLogger(level: string = process.env['STRATA_LOG_LEVEL'] ?? 'info', destination?: DestinationStream): Logger {
  const opts: LoggerOptions = { ...BASE_OPTIONS, level }
  return destination ? pino(opts, destination) : pino(opts)
}

/**
 * The logger the server process uses: stdout through a buffered asynchronous destination, so the
 * access log (one line per request) costs a memcpy per request instead of a write(2). Lines are
 * flushed every 4 KiB and at shutdown.
 */
export function createServerLogger(level: string): LoggerHandle {
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 })
  const logger = createLogger(level, dest)
  // Bound the delay before a quiet server's last lines appear.
  const timer = setInterval(() => dest.flush(), 1000)
  timer.unref()
  return {
    logger,
    flush() {
      try {
        dest.flushSync()
      } catch {
        // Nothing left to flush, or stdout is gone.
      }
    },
  }
}

/** A logger that drops everything; the default for library code and unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' })
