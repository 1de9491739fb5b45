import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TEST_TOKEN } from './strata.js'

/** The compiled bin, as users run it (npm test builds first). */
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname

/**
 * strata as its own process (`strata serve`), for tests where the point is that the process
 * survives: an uncaught exception there ends the child, not the test runner, and is seen as an
 * exit with its stack on stderr.
 */
export interface StrataProcess {
  readonly child: ChildProcess
  readonly url: string
  readonly adminUrl: string
  readonly token: string
  /** Everything the process wrote to stderr (a crash's stack lands here). */
  stderr(): string
  /** Parsed JSON log lines from stdout so far. */
  logs(): Record<string, unknown>[]
  /** Still running (no exit, no signal). */
  alive(): boolean
  /** SIGTERM and wait for the exit; answers the exit code (or null after a signal). */
  stop(): Promise<number | null>
}

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL')
})

/**
 * `hosts`: an /etc/hosts-style file the process sees in place of /etc/hosts (a private mount
 * namespace, `unshare -m`: needs root), so names resolve through the system resolver to the
 * addresses a test chose.
 */
export async function spawnStrata(upstreams: string[], overrides: Record<string, unknown> = {}, env: Record<string, string> = {}, opts: { hosts?: string } = {}): Promise<StrataProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-proc-'))
  const cfg = join(dir, 'config.json')
  writeFileSync(
    cfg,
    JSON.stringify({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0, token: TEST_TOKEN },
      upstreams: upstreams.map((url, i) => ({ id: `b${i + 1}`, url })),
      log: { level: 'info', access: false },
      ...overrides,
    }),
  )
  const argv = [process.execPath, CLI, 'serve', '--config', cfg]
  const [file, ...args] = opts.hosts === undefined ? argv : ['unshare', '-m', 'sh', '-c', 'mount --bind "$1" /etc/hosts && shift && exec "$@"', 'sh', opts.hosts, ...argv]
  const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  live.add(child)
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child)
      rmSync(dir, { recursive: true, force: true })
      resolve(code)
    }),
  )
  const logs = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  const listening = await new Promise<{ proxy: { url: string }; admin: { url: string } }>((resolve, reject) => {
    const check = () => {
      const line = logs().find((l) => l['listening'] !== undefined)
      if (line !== undefined) {
        child.stdout!.off('data', check)
        resolve(line['listening'] as { proxy: { url: string }; admin: { url: string } })
      }
    }
    child.stdout!.on('data', check)
    void exited.then((code) => reject(new Error(`strata exited (${code}) before listening: ${err}${out}`)))
  })
  return {
    child,
    url: listening.proxy.url,
    adminUrl: listening.admin.url,
    token: TEST_TOKEN,
    stderr: () => err,
    logs,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      return exited
    },
  }
}
