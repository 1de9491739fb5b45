import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createConnection } from 'node:net'
import { freePort, sleep } from './ports.js'

/**
 * A real redis-server on a free loopback port, owned by the test: it can be killed and restarted
 * on the same port to test failure and recovery. Nothing is persisted.
 */
export interface RedisServer {
  readonly port: number
  readonly url: string
  /** SIGKILL the server (a crash, not a clean shutdown). */
  kill(): Promise<void>
  /** Start it again on the same port (empty, as after a crash without persistence). */
  restart(): Promise<void>
  /** Stop it for good and remove its directory. */
  stop(): Promise<void>
}

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL')
})

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ port, host: '127.0.0.1' })
    sock.setTimeout(500)
    sock.once('connect', () => sock.write('PING\r\n'))
    sock.once('data', (d) => {
      sock.destroy()
      resolve(d.toString().startsWith('+PONG'))
    })
    sock.once('error', () => resolve(false))
    sock.once('timeout', () => {
      sock.destroy()
      resolve(false)
    })
  })
}

export async function startRedis(extraArgs: string[] = []): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-redis-'))
  let port = 0
  let child: ChildProcess | undefined

  const launch = async (fixedPort?: number) => {
    for (let attempt = 0; attempt < 5; attempt++) {
      port = fixedPort ?? (await freePort())
      const proc = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', '', '--daemonize', 'no', ...extraArgs],
        { stdio: 'ignore' },
      )
      live.add(proc)
      proc.once('exit', () => live.delete(proc))
      const deadline = Date.now() + 5000
      while (Date.now() < deadline && proc.exitCode === null) {
        if (await ping(port)) {
          child = proc
          return
        }
        await sleep(20)
      }
      proc.kill('SIGKILL')
      if (fixedPort !== undefined) await sleep(100) // the port may still be in TIME_WAIT
    }
    throw new Error(`redis-server did not start (port ${port})`)
  }

  const killChild = async () => {
    const c = child
    child = undefined
    if (!c || c.exitCode !== null) return
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve())
      c.kill('SIGKILL')
    })
  }

  await launch()
  return {
    get port() {
      return port
    },
    get url() {
      return `redis://127.0.0.1:${port}`
    },
    kill: killChild,
    restart: () => launch(port),
    async stop() {
      await killChild()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
