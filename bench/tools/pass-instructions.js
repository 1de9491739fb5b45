// Instructions per pass request (issue 14), counted by valgrind's callgrind: a cross-check of
// pass-compare.js's CPU time that a shared, noisy machine does not disturb. Each build (and
// bench/servers/min-proxy.js, the Node floor) runs under callgrind with collection off, is warmed
// up, then counts exactly the main thread's instructions for N requests (1 KB `no-store` pass, 50
// connections). User space only: the kernel's socket work is not counted.
//   node bench/tools/pass-instructions.js dist-base dist      (N=3000 WARM=3000)
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, openSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { Pool } from 'undici'
import { ROOT, startNode } from '../lib.js'

const builds = process.argv.slice(2)
if (builds.length === 0) builds.push('dist')
const N = Number(process.env.N ?? 3000)
const WARM = Number(process.env.WARM ?? 3000)
const access = (process.env.PASS_LOG ?? 'on') === 'on'

/** Sends `n` GETs of `url` over 50 keep-alive connections, 50 in flight. */
async function send(url, n) {
  const u = new URL(url)
  const pool = new Pool(u.origin, { connections: 50 })
  let left = n
  const worker = async () => {
    while (left > 0) {
      left--
      const r = await pool.request({ method: 'GET', path: u.pathname })
      await r.body.dump()
      if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`)
    }
  }
  await Promise.all(Array.from({ length: 50 }, worker))
  await pool.close()
}

/** Starts `args` under callgrind (collection off) and waits for a line matching `ready` in its stdout. */
async function underCallgrind(args, out, readyFile) {
  const log = openSync(readyFile, 'w')
  const child = spawn('valgrind', ['--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes', `--callgrind-out-file=${out}`, process.execPath, ...args], { cwd: ROOT, stdio: ['ignore', log, 'ignore'] })
  closeSync(log)
  for (let i = 0; i < 1200; i++) {
    const line = readFileSync(readyFile, 'utf8').split('\n').find((l) => l.includes('"listening"'))
    if (line) {
      const info = JSON.parse(line)
      return { child, url: typeof info.listening === 'string' ? info.listening : info.listening.proxy.url }
    }
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('did not start')
}

const dir = mkdtempSync(join(tmpdir(), 'strata-pass-ir-'))
const origins = []
try {
  for (let i = 0; i < 2; i++) origins.push(await startNode(join(ROOT, 'bench/servers/origin.js'), ['1024', 'no-store']))
  const config = join(dir, 'config.json')
  writeFileSync(config, JSON.stringify({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { enabled: false },
    upstreams: origins.map((o, i) => ({ id: `o${i + 1}`, url: o.info.listening })),
    balancer: { algorithm: 'round-robin' },
    log: { level: 'info', access },
  }))
  const rows = []
  for (const b of [...builds, 'min-proxy']) {
    const out = join(dir, `${b}.callgrind`)
    const args = b === 'min-proxy' ? [join(ROOT, 'bench/servers/min-proxy.js'), ...origins.map((o) => o.info.listening)] : [join(ROOT, b, 'cli.js'), 'serve', '--config', config]
    const s = await underCallgrind(args, out, join(dir, `${b}.stdout`))
    const url = `${s.url}/item`
    await send(url, WARM)
    execFileSync('callgrind_control', ['-i', 'on', String(s.child.pid)])
    await send(url, N)
    execFileSync('callgrind_control', ['-i', 'off', String(s.child.pid)])
    s.child.kill('SIGTERM')
    await once(s.child, 'exit')
    // The main thread only (file -01): V8's compiler and GC helper threads run when they will,
    // and under valgrind's slowness their share of a short window is mostly noise.
    const ir = [...readFileSync(`${out}-01`, 'utf8').matchAll(/^totals:\s+(\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0)
    rows.push([b, ir / N])
    process.stderr.write(`${b}: ${Math.round(ir / N)} instructions/request\n`)
  }
  const floor = rows.at(-1)[1]
  console.log(`| build | main-thread instructions/request (callgrind, ${N} requests after ${WARM}) | ÷ min-proxy |\n| --- | ---: | ---: |`)
  for (const [b, ir] of rows) console.log(`| ${b} | ${Math.round(ir)} | ${(ir / floor).toFixed(2)} |`)
} finally {
  await Promise.all(origins.map((o) => o.stop()))
}
