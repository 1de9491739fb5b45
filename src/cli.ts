#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { adminTokenGenerated, loadConfigFile, ConfigError } from './config/load.js'
import { createStrata, type Strata } from './app.js'
import { createLogger, createServerLogger, type Logger } from './observability/logger.js'
import { VERSION } from './version.js'
import { printableConfig } from './config/printable.js'
import cluster from 'node:cluster'
import { ClusterPrimary, WORKER_ENV } from './cluster/primary.js'
import { parseDuration } from './core/duration.js'

const USAGE = `strata ${VERSION} — a multi-tier caching reverse proxy

Usage:
  strata serve --config <file.json>          run the proxy and its admin API; SIGHUP re-reads the file
                                             ("workers": N: N processes share the proxy port)
  strata check-config --config <file.json> [--print]
                                             validate a config; print every problem, exit 1 if any;
                                             --print: the effective config (defaults applied,
                                             secrets as "***") as JSON on stdout
  strata demo [--port 2001] [--admin-port 4001]
                                             run the demo cluster: two webservers behind strata
  strata demo-webserver --id b1 [--port 3001] [--host 0.0.0.0]
                                             run one demo webserver alone (a "B" host)
  strata load <url> [--connections 10] [--duration 10s] [--paths <file>] [--json]
             [--upstream-header <name>] [--admin <url> --token <token>]
                                             load-test a site through strata (autocannon): a
                                             progress bar on a terminal, then latency, req/s,
                                             errors, the hit ratio (X-Cache / Cache-Status), the
                                             spread over upstreams (from a response header, or
                                             the admin API's /stats before and after), ESI
                                             assembly time (Server-Timing esi;dur) and a warning
                                             when the load generator saturated a core
  strata --version | --help

Environment: STRATA_LOG_LEVEL overrides log.level.`

/** Exit codes: 0 ok, 1 invalid config, 2 usage error, 3 runtime failure (e.g. port in use). */
export async function main(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        port: { type: 'string' },
        host: { type: 'string' },
        id: { type: 'string' },
        'admin-port': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        print: { type: 'boolean' },
        connections: { type: 'string' },
        duration: { type: 'string' },
        paths: { type: 'string' },
        json: { type: 'boolean' },
        'upstream-header': { type: 'string' },
        admin: { type: 'string' },
        token: { type: 'string' },
      },
    })
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.version) {
    process.stdout.write(`${VERSION}\n`)
    return 0
  }
  const command = positionals[0]
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(`${USAGE}\n`)
    return command === undefined && !values.help ? 2 : 0
  }

  switch (command) {
    case 'check-config': {
      if (!values.config) return usage('check-config needs --config <file>')
      try {
        const config = loadConfigFile(values.config)
        if (values.print) process.stdout.write(`${JSON.stringify(printableConfig(config), null, 2)}\n`)
        else process.stdout.write(`${values.config}: ok\n`)
        return 0
      } catch (err) {
        return reportConfigError(err)
      }
    }
    case 'serve': {
      // A worker forked by the primary of `"workers": N` gets its config from the primary.
      if (process.env[WORKER_ENV] === '1' && cluster.isWorker) return (await import('./cluster/worker.js')).runWorker()
      if (!values.config) return usage('serve needs --config <file>')
      let config
      try {
        config = loadConfigFile(values.config)
      } catch (err) {
        return reportConfigError(err)
      }
      const { logger, accessLines, flush } = createServerLogger(process.env['STRATA_LOG_LEVEL'] ?? config.log.level, { sharedStdout: config.workers > 1 })
      if (config.workers > 1) {
        const primary = new ClusterPrimary(config, logger, { configFile: values.config })
        // SIGHUP re-reads the config file in every worker (the primary checks it first).
        const onHangup = () => {
          primary.reload().catch((err: unknown) => {
            if (!(err instanceof ConfigError)) logger.error({ err }, 'config reload failed')
          })
        }
        const startedPrimary = () =>
          primary.start().then(() => {
            if (config.admin.enabled && adminTokenGenerated(config)) logGeneratedToken(logger, config.admin.token)
            process.on('SIGHUP', onHangup)
            return primary
          })
        // The workers drain within shutdownMs each, in parallel; the primary waits a little longer.
        return run(
          logger,
          startedPrimary,
          (p) => {
            process.off('SIGHUP', onHangup)
            return p.close()
          },
          config.timeouts.shutdownMs + 3000,
        ).finally(flush)
      }
      const strata = createStrata(config, { logger, accessLines, configFile: values.config })
      // SIGHUP re-reads the config file; reload() logs what changed, or every problem it found.
      const onHangup = () => {
        strata.reload().catch((err: unknown) => {
          if (!(err instanceof ConfigError)) logger.error({ err }, 'config reload failed')
        })
      }
      return run(
        logger,
        async () => {
          await strata.listen()
          if (config.admin.enabled && adminTokenGenerated(config)) logGeneratedToken(logger, config.admin.token)
          process.on('SIGHUP', onHangup)
          return strata
        },
        (s) => {
          process.off('SIGHUP', onHangup)
          return s.close()
        },
        config.timeouts.shutdownMs,
      ).finally(flush)
    }
    case 'demo': {
      const { startDemo } = await import('./demo/cluster.js')
      const { logger, flush } = createServerLogger(process.env['STRATA_LOG_LEVEL'] ?? 'info')
      const port = values.port === undefined ? undefined : Number(values.port)
      const adminPort = values['admin-port'] === undefined ? undefined : Number(values['admin-port'])
      if ((port !== undefined && !Number.isInteger(port)) || (adminPort !== undefined && !Number.isInteger(adminPort))) return usage('--port and --admin-port take a number')
      return run(logger, () => startDemo({ logger, ...(port === undefined ? {} : { port }), ...(adminPort === undefined ? {} : { adminPort }) }), (d) => d.close(), 15_000).finally(flush)
    }
    case 'demo-webserver': {
      const { startDemoWebserver } = await import('./demo/webserver.js')
      const { NewsDb } = await import('./demo/news-db.js')
      const logger = createLogger(process.env['STRATA_LOG_LEVEL'] ?? 'info')
      const port = values.port === undefined ? 3001 : Number(values.port)
      if (!Number.isInteger(port)) return usage('--port takes a number')
      const id = values.id ?? 'b1'
      // STRATA_DEMO_REDIS=redis://…: the data cache's shared L2 and bus (as for `demo`); else L1 only.
      const { demoRedisFromEnv } = await import('./demo/news-reads.js')
      const redis = demoRedisFromEnv()
      return run(
        logger,
        async () => {
          const w = await startDemoWebserver({ id, db: new NewsDb(30), port, host: values.host ?? '0.0.0.0', dataCache: { redis }, logger })
          logger.info({ id, listening: w.url, dataCache: redis === undefined ? 'l1-only' : 'l1+redis' }, 'demo webserver ready')
          return w
        },
        (w) => w.close(),
        5000,
      )
    }
    case 'load':
      return load(positionals[1], values)
    default:
      return usage(`unknown command "${command}"`)
  }
}

/**
 * The admin token generated for this run (no `admin.token` configured), shown once so the admin
 * API is usable; on stderr as well when the log level hides warnings. Configure a token to keep
 * it out of the logs.
 */
function logGeneratedToken(logger: Logger, token: string): void {
  const msg = 'admin.token is not configured: generated one for this run (set admin.token to choose your own)'
  if (logger.isLevelEnabled('warn')) logger.warn({ adminToken: token }, msg)
  else process.stderr.write(`strata: ${msg}: ${token}\n`)
}

/** `strata load`: checks the arguments (exit 2), runs the load, prints the table or JSON. */
async function load(
  url: string | undefined,
  v: { connections?: string | undefined; duration?: string | undefined; paths?: string | undefined; json?: boolean | undefined; 'upstream-header'?: string | undefined; admin?: string | undefined; token?: string | undefined },
): Promise<number> {
  if (url === undefined) return usage('load needs a url, e.g. strata load http://127.0.0.1:8080/')
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) return usage(`load: "${url}" is not an http(s) URL`)
  const connections = Number(v.connections ?? 10)
  if (!Number.isInteger(connections) || connections < 1 || connections > 10_000) return usage('--connections takes a whole number from 1 to 10000')
  let durationMs
  try {
    // A bare number is seconds here, as for autocannon and wrk.
    durationMs = /^\s*\d+(\.\d+)?\s*$/.test(v.duration ?? '10') ? Number(v.duration ?? 10) * 1000 : parseDuration(v.duration ?? '10s', '--duration')
  } catch (err) {
    return usage((err as Error).message)
  }
  if (durationMs < 1000) return usage('--duration must be at least 1s')
  if ((v.admin === undefined) !== (v.token === undefined)) return usage('--admin and --token go together')
  if (v.admin !== undefined && !URL.canParse(v.admin)) return usage(`--admin: "${v.admin}" is not a URL`)
  const { runLoad, formatReport, parsePaths } = await import('./load/index.js')
  let paths
  if (v.paths !== undefined) {
    try {
      paths = parsePaths((await import('node:fs')).readFileSync(v.paths, 'utf8'), v.paths)
    } catch (err) {
      return usage((err as Error).message)
    }
  }
  try {
    const report = await runLoad({
      url,
      connections,
      durationSeconds: Math.round(durationMs / 1000),
      ...(paths === undefined ? {} : { paths }),
      ...(v['upstream-header'] === undefined ? {} : { upstreamHeader: v['upstream-header'] }),
      ...(v.admin === undefined || v.token === undefined ? {} : { admin: { url: v.admin, token: v.token } }),
      ...(process.stderr.isTTY ? { progress: process.stderr } : {}),
    })
    process.stdout.write(v.json ? `${JSON.stringify(report)}\n` : formatReport(report))
    return 0
  } catch (err) {
    process.stderr.write(`strata load: ${(err as Error).message}\n`)
    return 3
  }
}

function usage(message: string): number {
  process.stderr.write(`strata: ${message}\n\n${USAGE}\n`)
  return 2
}

function reportConfigError(err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`)
    return 1
  }
  process.stderr.write(`strata: ${(err as Error).message}\n`)
  return 1
}

/** Starts something, then waits for SIGINT/SIGTERM and shuts it down within `graceMs`. */
async function run<T>(logger: Logger, start: () => Promise<T>, stop: (t: T) => Promise<void>, graceMs: number): Promise<number> {
  let started: T
  try {
    started = await start()
  } catch (err) {
    logger.fatal({ err }, 'failed to start')
    return 3
  }
  return new Promise<number>((resolve) => {
    let stopping = false
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) return
      stopping = true
      logger.info({ signal }, 'shutting down')
      // A hard stop slightly after the graceful deadline, in case something refuses to close.
      setTimeout(() => {
        logger.error('shutdown took too long; exiting')
        resolve(1)
      }, graceMs + 2000).unref()
      stop(started).then(
        () => {
          logger.info('stopped')
          resolve(0)
        },
        (err) => {
          logger.error({ err }, 'error during shutdown')
          resolve(1)
        },
      )
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  })
}

// Run when executed directly (the `strata` bin), not when imported by tests.
const invokedDirectly = process.argv[1] !== undefined && import.meta.url === (await import('node:url')).pathToFileURL((await import('node:fs')).realpathSync(process.argv[1])).href
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
      // Give pino a tick to flush, then leave even if a stray handle is open.
      setTimeout(() => process.exit(code), 50).unref()
    },
    (err) => {
      process.stderr.write(`strata: ${(err as Error).stack ?? String(err)}\n`)
      process.exit(3)
    },
  )
}

export type { Strata }
