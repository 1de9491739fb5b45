// The access log's writer on its own: what one line costs the proxy. Writes 300k access-like
// lines (≈200 bytes) to a file, 100 per millisecond (100k lines/s, ≈ 20 MB/s: more than a busy
// strata logs), in one macrotask each (as a busy event loop hands them over), through the
// compiled LineWriter (sonic-boom underneath), and reports
// - the time spent inside write() (what a request pays on the hot path), in ns per line;
// - the process's whole CPU time (all threads: the libuv pool's write(2)s too) per line.
// Pass another compiled writer module to compare (it must export LineWriter with write() and
// close() or flushSync()), e.g. the previous one: `node bench/access-lines.js /tmp/old/line-writer.js`.
// Absolute numbers move with the machine; compare two writers in the same sitting.
import { openSync, closeSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ROOT } from './lib.js'

const modPath = process.argv.slice(2).find((a) => !a.startsWith('--')) ?? join(ROOT, 'dist/observability/line-writer.js')
const { LineWriter } = await import(pathToFileURL(modPath).href)
const LINES = Number(process.env.BENCH_LINES ?? 300_000)
const PER_TICK = 100
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)

const line = (i) => `{"level":30,"time":${Date.now()},"pid":${process.pid},"method":"GET","url":"/news/article-${i % 1000}?page=2","status":200,"ms":0.0${i % 10},"upstream":"web1","cache":"HIT","msg":"request"}\n`

async function once() {
  const dir = mkdtempSync(join(tmpdir(), 'strata-lines-'))
  const fd = openSync(join(dir, 'access.log'), 'w')
  const w = new LineWriter(fd)
  const cpu0 = process.cpuUsage()
  let inWrite = 0n
  let expected = 0
  for (let i = 0; i < LINES; ) {
    const s = line(i)
    expected += s.length * Math.min(PER_TICK, LINES - i)
    const t0 = process.hrtime.bigint()
    for (let k = 0; k < PER_TICK && i < LINES; k++, i++) w.write(s)
    inWrite += process.hrtime.bigint() - t0
    await new Promise((r) => setTimeout(r, 1))
  }
  if (typeof w.close === 'function') await w.close()
  else w.flushSync()
  const cpu = process.cpuUsage(cpu0)
  const bytes = statSync(join(dir, 'access.log')).size
  try {
    closeSync(fd)
  } catch {
    // sonic-boom's end() closes the descriptor it was given (except 1 and 2).
  }
  rmSync(dir, { recursive: true, force: true })
  return { nsPerWrite: Number(inWrite) / LINES, cpuUsPerLine: (cpu.user + cpu.system) / LINES, complete: bytes === expected, dropped: w.dropped ?? 0 }
}

const runs = []
for (let r = 0; r < rounds; r++) runs.push(await once())
const median = (k) => runs.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(runs.length / 2)]
console.log(`\n## access-lines  (${modPath})`)
console.log('| write() ns/line | process CPU µs/line | all bytes written |')
console.log('| ---: | ---: | --- |')
console.log(`| ${median('nsPerWrite').toFixed(0)} | ${median('cpuUsPerLine').toFixed(3)} | ${runs.every((x) => x.complete)} |`)
console.log(JSON.stringify({ bench: 'access-lines', module: modPath, lines: LINES, runs }))
