// Where the pass path's CPU goes (issue 14's closing note); a tool, not part of `npm run bench`
// (bench/run.js runs bench/*.js only). strata in front of 2 origins that answer 1 KB `no-store`
// (bench/balancer.js's setup), loaded with wrk -t1 -c50; a CPU profile of the strata process
// over the measured window only (bench/tools/profile-preload.js), summarised by
// bench/tools/cpuprofile-top.js into bench/results/pass-profile.md.
//   node bench/tools/pass-profile.js            (npm run build first; BENCH_SECONDS=8, PASS_LOG=on|off)
// Also reports CPU µs per request from /proc in an unprofiled window of the same length, since the
// profiler's own sampling costs a little.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, cpuTicks, load, loadTool, startNode, startStrata } from '../lib.js'

const SIZE = 1024
const seconds = Number(process.env.BENCH_SECONDS ?? 8)
const access = (process.env.PASS_LOG ?? 'on') === 'on'
const started = []
const tick = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
/** [user, system] CPU ticks of `pid` (/proc/<pid>/stat fields 14 and 15). */
const ticks = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return [Number(f[11]), Number(f[12])]
}
const dir = mkdtempSync(join(tmpdir(), 'strata-pass-profile-'))
const out = join(dir, 'strata.cpuprofile')
try {
  const load0 = loadavg().map((x) => x.toFixed(2)).join(' ')
  for (let i = 0; i < 2; i++) started.push(await startNode(join(ROOT, 'bench/servers/origin.js'), [String(SIZE), 'no-store']))
  const saved = process.env.NODE_OPTIONS
  process.env.NODE_OPTIONS = `${saved ?? ''} --import ${join(ROOT, 'bench/tools/profile-preload.js')}`.trim()
  process.env.STRATA_PROFILE_OUT = out
  const strata = await startStrata({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { enabled: false },
    upstreams: started.map((o, i) => ({ id: `o${i + 1}`, url: o.info.listening })),
    balancer: { algorithm: 'round-robin' },
    log: { level: 'info', access },
  })
  if (saved === undefined) delete process.env.NODE_OPTIONS
  else process.env.NODE_OPTIONS = saved
  started.push(strata)
  const url = `${strata.url}/item`
  const pid = strata.child.pid
  process.stderr.write('pass-profile: warm-up\n')
  await load(url, { seconds: 3 })
  process.stderr.write('pass-profile: unprofiled window\n')
  const c0 = ticks(pid)
  const plain = await load(url, { seconds })
  const c0b = ticks(pid)
  const us = (a, b, n) => ((b - a) * 1e6) / tick / n
  const plainUser = us(c0[0], c0b[0], plain.requests)
  const plainSys = us(c0[1], c0b[1], plain.requests)
  const plainCpu = plainUser + plainSys
  // The Node floor: the same load through bench/servers/min-proxy.js (node:http + undici, nothing else).
  process.stderr.write('pass-profile: Node floor (min-proxy)\n')
  const floorProxy = await startNode(join(ROOT, 'bench/servers/min-proxy.js'), started.slice(0, 2).map((o) => o.info.listening))
  started.push(floorProxy)
  await load(`${floorProxy.info.listening}/item`, { seconds: 3 })
  const f0 = ticks(floorProxy.child.pid)
  const floor = await load(`${floorProxy.info.listening}/item`, { seconds })
  const f1 = ticks(floorProxy.child.pid)
  const floorUser = us(f0[0], f1[0], floor.requests)
  const floorSys = us(f0[1], f1[1], floor.requests)
  await floorProxy.stop()
  process.stderr.write('pass-profile: profiled window\n')
  process.kill(pid, 'SIGUSR2')
  await new Promise((r) => setTimeout(r, 200))
  const c1 = cpuTicks(pid)
  const profiled = await load(url, { seconds })
  const profCpu = ((cpuTicks(pid) - c1) * 1e6) / tick / profiled.requests
  process.kill(pid, 'SIGWINCH')
  for (let i = 0; i < 100 && !existsSync(out); i++) await new Promise((r) => setTimeout(r, 100))
  await new Promise((r) => setTimeout(r, 300))
  const summary = execFileSync(process.execPath, [join(ROOT, 'bench/tools/cpuprofile-top.js'), out, '--top', '40'], { encoding: 'utf8', maxBuffer: 1 << 24 })
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
  const md = `# Pass path profile (issue 14)

- command: \`npm run build && node bench/tools/pass-profile.js\` (BENCH_SECONDS=${seconds}, PASS_LOG=${access ? 'on' : 'off'}), commit ${commit}, ${new Date().toISOString()}
- setup: bench/balancer.js's pass case: strata (default config + 2 upstreams, round-robin, access log ${access ? 'on' : 'off'}) in front of 2 node origins answering 1 KB \`Cache-Control: no-store\`; ${loadTool} -t1 -c50 on \`/item\`
- machine: ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores; Node ${process.version}; load average before ${load0}, after ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other jobs share the machine: read shares, not absolute times)
- unprofiled window: ${Math.round(plain.rps)} req/s, ${plainCpu.toFixed(1)} µs CPU per request (strata process, /proc): ${plainUser.toFixed(1)} µs user + ${plainSys.toFixed(1)} µs system (kernel: socket reads and writes, epoll; on loopback the sender's write also runs the receiving side's TCP processing)
- the Node floor, same load, same window length: bench/servers/min-proxy.js (node:http server → undici Pool → headers and body written back, nothing else): ${Math.round(floor.rps)} req/s, ${(floorUser + floorSys).toFixed(1)} µs CPU per request (${floorUser.toFixed(1)} user + ${floorSys.toFixed(1)} system); strata/floor CPU per request ${(plainCpu / (floorUser + floorSys)).toFixed(2)}
- profiled window: ${Math.round(profiled.rps)} req/s, ${profCpu.toFixed(1)} µs CPU per request; V8 CPU profile of that window only (bench/tools/profile-preload.js, 100 µs sampling), summarised by bench/tools/cpuprofile-top.js. "syscalls (socket writes)" is time inside the native writev/writeBuffer calls; "(program)" is native time V8 could not attribute (libuv polling, socket reads, the llhttp parser in C).

${summary}`
  const file = join(ROOT, 'bench/results/pass-profile.md')
  // Hand-written reading kept across runs: everything from the marker on.
  const MARK = '<!-- reading: kept by bench/tools/pass-profile.js across runs -->'
  const old = existsSync(file) ? readFileSync(file, 'utf8') : ''
  const kept = old.includes(MARK) ? old.slice(old.indexOf(MARK)) : `${MARK}\n`
  writeFileSync(file, `${md}\n${kept}`)
  console.log(md)
  console.error(`written: ${file} (raw profile: ${out})`)
} finally {
  await Promise.all(started.map((s) => s.stop()))
}
