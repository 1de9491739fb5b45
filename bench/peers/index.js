// The peers of `npm run bench -- --peers`: Debian's nginx, HAProxy and Varnish, each started in
// the foreground on a free loopback port with its config from this folder (the {{…}} slots filled
// in a temporary directory), and stopped by the bench. A peer that is not installed, or does not
// start, is skipped with a note: `start*` then resolves undefined and `notes` says why.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, trackChild } from '../lib.js'

const HERE = new URL('.', import.meta.url).pathname

/** Why peers were skipped, for the bench's report. */
export const notes = []

/** Whether `--peers` (or BENCH_PEERS=1) asked for peers in this run. */
export const wanted = process.argv.includes('--peers') || process.env.BENCH_PEERS === '1'

/** The first line of `cmd args` (stdout or stderr), or undefined when `cmd` is not installed. */
function version(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.error !== undefined) return undefined
  return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim() !== '')?.trim()
}

const fill = (template, slots) => template.replace(/\{\{(\w+)\}\}/g, (_, k) => slots[k] ?? '')

async function waitUntilUp(url, child, ms = 15_000) {
  const deadline = Date.now() + ms
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited ${child.exitCode ?? child.signalCode}`)
    try {
      const res = await fetch(url)
      await res.arrayBuffer()
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

/**
 * Runs `cmd args` in the foreground, waits until `http://127.0.0.1:<port>/__up` answers, and
 * returns { name, url, pid, version, stop }; undefined (with a note) when it cannot.
 */
async function startPeer(name, cmd, args, port, dir, ver) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  trackChild(child)
  let stderr = ''
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)))
  const url = `http://127.0.0.1:${port}`
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 5000))])
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitUntilUp(`${url}/__up`, child)
  } catch (err) {
    await stop()
    notes.push(`${name} did not start (${err.message}): ${stderr.trim().split('\n').slice(-3).join(' / ')}`)
    return undefined
  }
  return { name, url, pid: child.pid, version: ver, stop }
}

function tempDir(name) {
  const dir = mkdtempSync(join(tmpdir(), `strata-bench-${name}-`))
  // nginx's workers and varnishd's cache process drop root for their own users, which must read
  // the config and write the cache and temp paths.
  chmodSync(dir, 0o777)
  return dir
}

const hostPort = (url) => {
  const u = new URL(url)
  return `${u.hostname}:${u.port}`
}

/** nginx with proxy_cache (and proxy_cache_lock) over `origins`, round-robin. */
export async function startNginx(origins) {
  const ver = version('nginx', ['-v'])
  if (ver === undefined) return skip('nginx')
  const dir = tempDir('nginx')
  for (const d of ['cache', 'body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) chmodSync((mkdirSync(join(dir, d)), join(dir, d)), 0o777)
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, fill(readFileSync(join(HERE, 'nginx.conf'), 'utf8'), { DIR: dir, PORT: String(port), UPSTREAMS: origins.map((o) => `    server ${hostPort(o)};`).join('\n') }))
  return startPeer('nginx', 'nginx', ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')], port, dir, ver)
}

/** HAProxy, round-robin over `origins`, no cache. */
export async function startHaproxy(origins) {
  const ver = version('haproxy', ['-v'])
  if (ver === undefined) return skip('haproxy')
  const dir = tempDir('haproxy')
  const port = await freePort()
  const conf = join(dir, 'haproxy.cfg')
  writeFileSync(conf, fill(readFileSync(join(HERE, 'haproxy.cfg'), 'utf8'), { DIR: dir, PORT: String(port), SERVERS: origins.map((o, i) => `  server o${i + 1} ${hostPort(o)}`).join('\n') }))
  return startPeer('haproxy', 'haproxy', ['-db', '-f', conf], port, dir, ver)
}

/** varnishd, ESI on /esi/, round-robin over `origins`, a 64 MB malloc store. */
export async function startVarnish(origins) {
  const ver = version('varnishd', ['-V'])
  if (ver === undefined) return skip('varnish')
  const dir = tempDir('varnish')
  const port = await freePort()
  const vcl = join(dir, 'strata-bench.vcl')
  const backends = origins.map((o, i) => {
    const u = new URL(o)
    return `backend o${i + 1} { .host = "${u.hostname}"; .port = "${u.port}"; }`
  })
  writeFileSync(
    vcl,
    fill(readFileSync(join(HERE, 'varnish.vcl'), 'utf8'), { BACKENDS: backends.join('\n'), DIRECTOR: origins.map((_, i) => `  origins.add_backend(o${i + 1});`).join('\n') }),
  )
  return startPeer('varnish', 'varnishd', ['-F', '-a', `127.0.0.1:${port}`, '-f', vcl, '-n', join(dir, 'n'), '-s', 'malloc,64m', '-p', 'thread_pool_min=50'], port, dir, ver)
}

function skip(name) {
  notes.push(`${name} is not installed (apt-get install ${name === 'varnish' ? 'varnish' : name}): skipped`)
  return undefined
}
