import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createConnection } from 'node:net'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { freePort, sleep, waitFor } from './ports.js'

const run = promisify(execFile)

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

/**
 * `CLIENT PAUSE ms` on the server (every client's commands wait, as on a stalled Redis), sent on a
 * connection of its own. Resolves with `Date.now()` once Redis acknowledged the pause.
 */
export async function pauseRedis(server: Pick<RedisServer, 'url'>, ms: number): Promise<number> {
  const c = new Redis(server.url, { retryStrategy: () => null })
  c.on('error', () => {})
  try {
    await c.call('CLIENT', 'PAUSE', String(ms))
    return Date.now()
  } finally {
    c.disconnect()
  }
}

/** A real Redis Cluster of `masters` redis-server processes (no replicas), created with redis-cli. */
export interface RedisCluster {
  readonly nodes: readonly RedisServer[]
  /** One redis:// URL per master: the `cluster` form of strata's redis option. */
  readonly urls: readonly string[]
  stop(): Promise<void>
}

export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-cluster-'))
  const nodes = await Promise.all(
    Array.from({ length: masters }, (_, i) =>
      startRedis(['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${i}-${randomUUID()}.conf`), '--cluster-node-timeout', '2000']),
    ),
  )
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'])
    // Wait until every node agrees the cluster is up.
    await waitFor(async () => {
      const infos = await Promise.all(nodes.map((n) => run('redis-cli', ['-p', String(n.port), 'cluster', 'info'])))
      return infos.every((r) => r.stdout.includes('cluster_state:ok'))
    }, 20_000, 100)
  } catch (err) {
    await stop()
    throw err
  }
  return { nodes, urls: nodes.map((n) => n.url), stop }
}

/** A real Redis Sentinel (redis-server --sentinel) watching one master named `name`. */
export interface RedisSentinel {
  readonly master: RedisServer
  /** The `sentinels` form of strata's redis option. */
  readonly option: { sentinels: string[]; name: string }
  stop(): Promise<void>
}

export async function startRedisSentinel(name = 'strata-master'): Promise<RedisSentinel> {
  const master = await startRedis()
  const dir = mkdtempSync(join(tmpdir(), 'strata-sentinel-'))
  const port = await freePort()
  const conf = join(dir, 'sentinel.conf')
  writeFileSync(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`, ''].join('\n'))
  const sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
  live.add(sentinel)
  sentinel.once('exit', () => live.delete(sentinel))
  const stop = async () => {
    if (sentinel.exitCode === null) {
      await new Promise<void>((r) => {
        sentinel.once('exit', () => r())
        sentinel.kill('SIGKILL')
      })
    }
    await master.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitFor(async () => {
      const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null })
      probe.on('error', () => {})
      try {
        await probe.connect()
        const addr = (await probe.call('SENTINEL', 'get-master-addr-by-name', name)) as string[] | null
        return addr?.[1] === String(master.port)
      } finally {
        probe.disconnect()
      }
    }, 10_000, 50)
  } catch (err) {
    await stop()
    throw err
  }
  return { master, option: { sentinels: [`redis://127.0.0.1:${port}`], name }, stop }
}
