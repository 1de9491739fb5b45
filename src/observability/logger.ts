import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino'

export type { Logger }

/**
 * The root pino logger. Modules take a `Logger` in their options and derive a child with
 * `{ module: '<name>' }`; nothing logs through console.
 */
export function createLogger(level: string = process.env['STRATA_LOG_LEVEL'] ?? 'info', destination?: DestinationStream): Logger {
  const opts: LoggerOptions = {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['token', '*.token', 'req.headers.authorization'], censor: '[redacted]' },
  }
  return destination ? pino(opts, destination) : pino(opts)
}

/** A logger that drops everything; the default for library code and unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' })
