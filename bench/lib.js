// Shared bench plumbing: child-process servers, a load generator (wrk when installed, else
// autocannon), interleaved comparison rounds, and result formatting. Every bench reports ratios
// against a baseline measured in the same run, never absolute targets.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'

export const ROOT = new URL('..', import.meta.url).pathname
const children = new Set()
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
})

/** A child process killed (SIGKILL) if this bench exits without stopping it. */
export function trackChild(child) {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

export const hasWrk = spawnSync('wrk', ['--version']).error === undefined
/** The load generator's name and version, for the results file. */
export const loadTool = hasWrk
  ? (spawnSync('wrk', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]?.split(' [')[0] ?? 'wrk')
  : `autocannon ${JSON.parse(readFileSync(join(ROOT, 'node_modules/autocannon/package.json'), 'utf8')).version}`

/**
 * A progress bar on stderr for a step of known length (a TTY redraws one line; a log gets one
 * line per step). `totalSeconds` is the expected length; `step(text)` names what runs now.
 */
export function progress(name, totalSeconds) {
  const tty = process.stderr.isTTY === true
  const t0 = Date.now()
  let text = ''
  const draw = () => {
    const f = Math.min(1, (Date.now() - t0) / 1000 / totalSeconds)
    const width = 30
    const bar = '#'.repeat(Math.round(f * width)).padEnd(width, '.')
    process.stderr.write(`\r\x1b[2K${name} [${bar}] ${String(Math.round(f * 100)).padStart(3)}% ${text}`.slice(0, (process.stderr.columns ?? 120) + 8))
  }
  const timer = tty ? setInterval(draw, 250) : undefined
  timer?.unref()
  return {
    step(t) {
      text = t
      if (tty) draw()
      else process.stderr.write(`${name}: ${t}\n`)
    },
    done() {
      if (timer) clearInterval(timer)
      if (tty) process.stderr.write('\r\x1b[2K')
    },
  }
}

/**
 * Spawns `node <script> ...args`; resolves once the child prints a JSON line containing `match`
 * (default "listening") on stdout, with that parsed line.
 */
export async function startNode(script, args = [], { match = 'listening', env = {} } = {}) {
  const child = spawn(process.execPath, [script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } })
  children.add(child)
  child.once('exit', () => children.delete(child))
  let buf = ''
  const line = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${script} did not start`)), 15_000)
    const onData = (d) => {
      buf += d
      for (const l of buf.split('\n')) {
        if (l.includes(match)) {
          clearTimeout(t)
          child.stdout.off('data', onData)
          child.stdout.resume() // keep draining so the child never blocks on a full pipe
          resolve(JSON.parse(l))
          return
        }
      }
    }
    child.stdout.on('data', onData)
    child.once('exit', (code) => reject(new Error(`${script} exited ${code}`)))
  })
  return {
    info: line,
    child,
    async stop() {
      if (child.exitCode !== null) return
      child.kill('SIGTERM')
      await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 5000))])
      if (child.exitCode === null) child.kill('SIGKILL')
    },
  }
}

/**
 * Starts `strata serve` (compiled) with a config object. Its stdout (the access log) goes to a
 * file, as `strata serve > strata.log` would in production: a pipe read by this process would
 * charge the log consumer's CPU to strata on a 2-core machine.
 */
export async function startStrata(config, { cli = join(ROOT, 'dist/cli.js') } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'strata-bench-'))
  const file = join(dir, 'config.json')
  const log = join(dir, 'strata.log')
  writeFileSync(file, JSON.stringify(config))
  const out = openSync(log, 'w')
  const child = spawn(process.execPath, [cli, 'serve', '--config', file], { cwd: ROOT, stdio: ['ignore', out, 'inherit'] })
  closeSync(out)
  children.add(child)
  child.once('exit', () => children.delete(child))
  const deadline = Date.now() + 15_000
  let info
  while (!info) {
    if (child.exitCode !== null) throw new Error(`strata exited ${child.exitCode}: ${readFileSync(log, 'utf8').slice(-2000)}`)
    if (Date.now() > deadline) throw new Error('strata did not start')
    const line = readFileSync(log, 'utf8').split('\n').find((l) => l.includes('"listening"'))
    if (line) info = JSON.parse(line)
    else await new Promise((r) => setTimeout(r, 50))
  }
  return {
    info,
    child,
    logFile: log,
    url: info.listening.proxy.url,
    adminUrl: info.listening.admin?.url,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM')
        await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 5000))])
        if (child.exitCode === null) child.kill('SIGKILL')
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * Loads `url` for `seconds` with `connections` and returns { rps, p50, p99, errors, non2xx,
 * requests } (latencies in ms, `requests` answered in the run). wrk runs in its own process and so
 * measures the server, not itself.
 */
export async function load(url, { connections = 50, seconds = 8, headers = {} } = {}) {
  if (hasWrk) {
    const args = ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '--latency']
    for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`)
    args.push(url)
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'inherit'] })
    children.add(child)
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    await once(child, 'close') // 'exit' can come before the last of stdout
    children.delete(child)
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0)
    const requests = Number(/(\d+) requests in /.exec(out)?.[1] ?? 0)
    const pct = (p) => toMs(new RegExp(`\\s${p}%\\s+([\\d.]+\\w+)`).exec(out)?.[1])
    const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
    const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
    const errors = errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0
    return { tool: 'wrk', rps, p50: pct(50), p99: pct(99), errors, non2xx, requests }
  }
  const r = await autocannon({ url, connections, duration: seconds, headers })
  return {
    tool: 'autocannon',
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    requests: r.requests.total,
  }
}

let clockTicks
/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`, 100 on nearly every Linux). */
function clkTck() {
  clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100
  return clockTicks
}

/**
 * CPU time (user + system, in clock ticks) used so far by `pid` and its live descendants, or
 * undefined where /proc is missing (not Linux) or the process is gone. Descendants count because
 * some servers do their work in a child: varnishd's manager forks the cache process.
 */
export function cpuTicks(pid) {
  try {
    // proc(5): after the ")" closing comm (which may hold spaces) comes field 3, so utime
    // (field 14) and stime (field 15) are at offsets 11 and 12.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    let ticks = Number(f[11]) + Number(f[12])
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      let kids = ''
      try {
        kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8')
      } catch {
        continue // the thread ended, or the kernel lacks CONFIG_PROC_CHILDREN
      }
      for (const kid of kids.split(' ').filter(Boolean)) ticks += cpuTicks(Number(kid)) ?? 0
    }
    return ticks
  } catch {
    return undefined
  }
}

/** Median of numbers (NaN-free input); the mean of the middle two for an even count. */
export function median(values) {
  const v = [...values].sort((a, b) => a - b)
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

/**
 * Measures candidates against each other on a shared, noisy machine: a 1 s warm-up load per
 * candidate (opens every keep-alive connection, warms the JIT), then `rounds` rounds that load
 * each candidate once for `seconds`, in reverse order on odd rounds, so drift and whatever else
 * runs on the machine hit every candidate alike. `candidates` maps a label to a url or to
 * { url, pid?, headers? }; with a `pid` (Linux) it also reports the server's CPU time per request.
 * Checking the responses is the caller's job. Returns label → { tool, rps, p50, p99, errors,
 * non2xx, rounds: [{ rps, p99, cpuUsPerReq? }], cpuUsPerReq? }: rps, p50, p99 and cpuUsPerReq
 * are medians over the rounds, errors and non2xx are totals.
 */
export async function compare(candidates, { rounds = 3, seconds = 5, connections = 50, headers = {}, warmup = 1, name = 'bench' } = {}) {
  const list = Object.entries(candidates).map(([label, c]) => {
    const { url, pid, headers: own = {} } = typeof c === 'string' ? { url: c } : c
    return { label, url, pid, opts: { connections, seconds, headers: { ...headers, ...own } } }
  })
  const bar = progress(name, list.length * (warmup + rounds * seconds))
  for (const c of list) {
    if (warmup <= 0) continue
    bar.step(`warm-up: ${c.label}`)
    await load(c.url, { ...c.opts, seconds: warmup })
  }
  const runs = new Map(list.map((c) => [c.label, []]))
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 1 ? [...list].reverse() : list
    for (const c of order) {
      bar.step(`round ${r + 1}/${rounds}: ${c.label}`)
      const before = c.pid === undefined ? undefined : cpuTicks(c.pid)
      const res = await load(c.url, c.opts)
      const after = before === undefined ? undefined : cpuTicks(c.pid)
      if (after !== undefined && res.requests > 0) res.cpuUsPerReq = ((after - before) * 1e6) / clkTck() / res.requests
      runs.get(c.label).push(res)
    }
  }
  bar.done()
  const rows = {}
  for (const [label, rs] of runs) {
    const cpu = rs.map((x) => x.cpuUsPerReq).filter((x) => x !== undefined)
    rows[label] = {
      tool: rs[0].tool,
      rps: median(rs.map((x) => x.rps)),
      p50: median(rs.map((x) => x.p50)),
      p99: median(rs.map((x) => x.p99)),
      errors: rs.reduce((a, x) => a + x.errors, 0),
      non2xx: rs.reduce((a, x) => a + x.non2xx, 0),
      rounds: rs.map((x) => ({ rps: round(x.rps, 0), p99: x.p99, ...(x.cpuUsPerReq === undefined ? {} : { cpuUsPerReq: round(x.cpuUsPerReq, 1) }) })),
      ...(cpu.length === rs.length ? { cpuUsPerReq: median(cpu) } : {}),
    }
  }
  return rows
}

function toMs(v) {
  if (!v) return NaN
  const m = /^([\d.]+)(us|ms|s)$/.exec(v)
  if (!m) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n
}

/** A port that was free a moment ago on 127.0.0.1. */
export const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })

export const round = (n, d = 2) => Math.round(n * 10 ** d) / 10 ** d

/** Whether `value` meets a target `{ min }` or `{ max }`. */
export const meets = (value, t) => (t.min === undefined || value >= t.min) && (t.max === undefined || value <= t.max)
const targetText = (t) => [t.min === undefined ? '' : `≥ ${t.min}`, t.max === undefined ? '' : `≤ ${t.max}`].filter(Boolean).join(', ')

/**
 * Prints a table of named results (with a server CPU µs/req column when any row has one), the
 * ratios (against their targets, `{ name: { min?, max? } }`, when given) and the closing JSON line
 * that `npm run bench` collects into the results file.
 */
export function report(name, rows, ratios, extra = {}, targets = {}) {
  const cpu = Object.values(rows).some((r) => r.cpuUsPerReq !== undefined)
  if (Object.keys(rows).length > 0) console.log(`\n## ${name}  (load: ${loadTool})`)
  if (Object.keys(rows).length > 0) console.log(`| case | req/s | min–max | p50 ms | p99 ms |${cpu ? ' server CPU µs/req |' : ''} errors |`)
  if (Object.keys(rows).length > 0) console.log(`| --- | ---: | ---: | ---: | ---: |${cpu ? ' ---: |' : ''} ---: |`)
  for (const [label, r] of Object.entries(rows)) {
    const cpuCell = cpu ? ` ${r.cpuUsPerReq === undefined ? '–' : round(r.cpuUsPerReq, 1)} |` : ''
    const rps = (r.rounds ?? []).map((x) => x.rps)
    const span = rps.length > 1 ? `${Math.round(Math.min(...rps))}–${Math.round(Math.max(...rps))}` : '–'
    console.log(`| ${label} | ${Math.round(r.rps)} | ${span} | ${round(r.p50)} | ${round(r.p99)} |${cpuCell} ${r.errors + (r.non2xx ?? 0)} |`)
  }
  for (const [k, v] of Object.entries(ratios)) {
    const t = targets[k]
    console.log(`ratio ${k}: ${round(v)}${t ? ` (target ${targetText(t)}: ${meets(v, t) ? 'met' : 'NOT met'})` : ''}`)
  }
  console.log(JSON.stringify({ bench: name, load: loadTool, ...extra, results: rows, ratios, targets }))
}

/** Warm a URL so caches are filled before measuring. */
export async function warm(url, n = 3, headers = {}) {
  for (let i = 0; i < n; i++) {
    const res = await fetch(url, { headers })
    await res.arrayBuffer()
  }
}

const ping = (port) =>
  new Promise((resolve) => {
    const c = createConnection({ port, host: '127.0.0.1' })
    c.once('connect', () => c.write('PING\r\n'))
    c.once('data', (d) => (c.destroy(), resolve(d.toString().startsWith('+PONG'))))
    c.once('error', () => resolve(false))
  })

/** A redis-server on a free loopback port, no persistence; `stop()` kills it and removes its dir. */
export async function startRedis() {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'strata-bench-redis-'))
  const proc = trackChild(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' }))
  for (let i = 0; i < 250 && !(await ping(port)); i++) await new Promise((r) => setTimeout(r, 20))
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      if (proc.exitCode === null) await new Promise((r) => (proc.once('exit', r), proc.kill('SIGKILL')))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * Whether the compiled strata accepts `config` (`strata check-config`): lets a bench include a
 * scenario for a config key that only some builds have (e.g. `workers`).
 */
export function strataAccepts(config) {
  const dir = mkdtempSync(join(tmpdir(), 'strata-bench-check-'))
  try {
    const file = join(dir, 'config.json')
    writeFileSync(file, JSON.stringify(config))
    return spawnSync(process.execPath, [join(ROOT, 'dist/cli.js'), 'check-config', '--config', file]).status === 0
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Starts strata with `workers: 2` when this build has the key, else resolves undefined and says
 * so in `notes` (the issue's workers: 2 scenarios).
 */
export async function startStrataWorkers(config, notes) {
  const cfg = { ...config, workers: 2 }
  if (!strataAccepts(cfg)) {
    notes.push('this build has no `workers` config key: the workers: 2 scenario is skipped')
    return undefined
  }
  try {
    return await startStrata(cfg)
  } catch (err) {
    notes.push(`strata with workers: 2 did not start (${err.message}): skipped`)
    return undefined
  }
}

/**
 * Eight routes a request to `/page` on any host but api.example.com matches none of (host,
 * wildcard host, prefixes, methods, header): the whole list runs. Used by route-match.js and by
 * page-cache.js's routed hit, so both measure the same table.
 */
export const BENCH_ROUTES = [
  { match: { host: 'api.example.com' }, pool: 'api' },
  { match: { host: '*.cdn.example.com' }, pool: 'static' },
  { match: { pathPrefix: '/static/' }, pool: 'static', cache: { defaultTtl: 3600 } },
  { match: { pathPrefix: '/assets/' }, pool: 'static' },
  { match: { methods: ['POST', 'PUT', 'PATCH', 'DELETE'] }, pool: 'api' },
  { match: { pathPrefix: '/api/', header: { name: 'x-beta', value: '1' } }, pool: 'api', stripPrefix: '/api' },
  { match: { pathPrefix: '/v2/' }, pool: 'api', stripPrefix: '/v2' },
  { match: { header: { name: 'x-internal' } }, pool: 'api' },
]
