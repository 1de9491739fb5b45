import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'

/**
 * The reference A/B topology in Linux network namespaces: one namespace per host, each with an
 * `eth0` on a bridge named `myNet` and a private address, and names resolved through
 * `/etc/netns/<ns>/hosts` (which `ip netns exec` mounts over /etc/hosts). The bridge sits in a
 * "switch" namespace of its own, so nothing is added to the machine's own network and two runs
 * at once do not collide: every namespace name carries a random run id.
 */
export interface Topology {
  /** Host name → its address on myNet. */
  readonly ips: Readonly<Record<string, string>>
  /** Starts a command inside a host's namespace; the topology kills it on `destroy`. */
  spawn(host: string, cmd: string, args: string[], env?: Record<string, string>): ChildProcess
  /** Runs a command inside a host's namespace to completion; throws on a non-zero exit. */
  exec(host: string, cmd: string, args: string[]): string
  /** Sets a host's link up or down (as a pulled cable). */
  link(host: string, state: 'up' | 'down'): void
  /** Kills every process it started, deletes every namespace and its /etc/netns directory. */
  destroy(): Promise<void>
}

/** Why the multi-host test cannot run here, or undefined when it can. */
export function unavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root'
  const ip = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  if (ip.error !== undefined || ip.status !== 0) return `\`ip netns\` is unavailable (${ip.error?.message ?? ip.stderr.trim()})`
  // Probe that namespaces can really be made (a container may forbid it even to root).
  const probe = `strata-probe-${randomBytes(3).toString('hex')}`
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' })
  if (add.status !== 0) return `\`ip netns add\` fails: ${add.stderr.trim()}`
  const veth = spawnSync('ip', ['-n', probe, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1'], { encoding: 'utf8' })
  const bridge = spawnSync('ip', ['-n', probe, 'link', 'add', 'b0', 'type', 'bridge'], { encoding: 'utf8' })
  spawnSync('ip', ['netns', 'del', probe])
  if (veth.status !== 0) return `veth pairs are unavailable: ${veth.stderr.trim()}`
  if (bridge.status !== 0) return `bridges are unavailable: ${bridge.stderr.trim()}`
  return undefined
}

const live = new Set<() => void>()
process.once('exit', () => {
  for (const cleanup of live) cleanup()
})

/** Creates the namespaces: `hosts` maps each host name to the last byte of its 10.77.0.0/24 address. */
export function createTopology(hosts: Record<string, number>): Topology {
  const run = randomBytes(3).toString('hex')
  const nsOf = (host: string) => `strata-${run}-${host}`
  const sw = nsOf('switch')
  const ips = Object.fromEntries(Object.entries(hosts).map(([h, last]) => [h, `10.77.0.${last}`]))
  const children = new Set<ChildProcess>()
  const namespaces: string[] = []
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })

  const cleanupSync = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    for (const ns of namespaces) {
      spawnSync('ip', ['netns', 'del', ns])
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true })
    }
    namespaces.length = 0
  }
  live.add(cleanupSync)

  try {
    ip('netns', 'add', sw)
    namespaces.push(sw)
    ip('-n', sw, 'link', 'add', 'myNet', 'type', 'bridge')
    ip('-n', sw, 'link', 'set', 'myNet', 'up')
    const hostsFile = ['127.0.0.1 localhost', ...Object.entries(ips).map(([h, addr]) => `${addr} ${h}`), ''].join('\n')
    for (const [host, addr] of Object.entries(ips)) {
      const ns = nsOf(host)
      ip('netns', 'add', ns)
      namespaces.push(ns)
      mkdirSync(`/etc/netns/${ns}`, { recursive: true })
      writeFileSync(`/etc/netns/${ns}/hosts`, hostsFile)
      // The veth is made in the switch namespace with its peer straight in the host's, so its
      // names never exist in the machine's own namespace.
      ip('-n', sw, 'link', 'add', `p-${host}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
      ip('-n', sw, 'link', 'set', `p-${host}`, 'master', 'myNet', 'up')
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0')
      ip('-n', ns, 'link', 'set', 'eth0', 'up')
      ip('-n', ns, 'link', 'set', 'lo', 'up')
    }
  } catch (err) {
    cleanupSync()
    live.delete(cleanupSync)
    throw err
  }

  const known = (host: string) => {
    if (!(host in ips)) throw new Error(`no host ${host} in this topology`)
    return nsOf(host)
  }

  return {
    ips,
    spawn(host, cmd, args, env = {}) {
      const child = spawn('ip', ['netns', 'exec', known(host), cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } })
      children.add(child)
      child.once('exit', () => children.delete(child))
      return child
    },
    exec(host, cmd, args) {
      return execFileSync('ip', ['netns', 'exec', known(host), cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    },
    link(host, state) {
      ip('-n', known(host), 'link', 'set', 'eth0', state)
    },
    async destroy() {
      // `ip netns exec` execs the command, so these are the processes themselves: SIGTERM lets
      // strata and the webservers shut down cleanly; SIGKILL whatever is still there after 5 s.
      await Promise.all(
        [...children].map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve()
              const hard = setTimeout(() => c.kill('SIGKILL'), 5000)
              c.once('exit', () => {
                clearTimeout(hard)
                resolve()
              })
              c.kill('SIGTERM')
            }),
        ),
      )
      cleanupSync()
      live.delete(cleanupSync)
    },
  }
}
