// `npm run bench [-- --peers] [-- name…]`: runs every bench in sequence (each one a standalone
// script), so their numbers come from the same machine in the same sitting, then prints one
// table of every ratio against its target and writes bench/results/<date>-<commit>.json and .md.
// `--peers` starts nginx, HAProxy and Varnish where installed (bench/peers/); names filter the
// benches by prefix (`npm run bench -- page esi`).
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { ROOT, loadTool, meets, round } from './lib.js'

const args = process.argv.slice(2)
const withPeers = args.includes('--peers')
const only = args.filter((a) => !a.startsWith('--'))
const benches = readdirSync(new URL('.', import.meta.url))
  // conformance.js is a test suite with its own script (`npm run conformance`), not a bench.
  .filter((f) => f.endsWith('.js') && !['run.js', 'lib.js', 'conformance.js'].includes(f))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort()

const git = (...a) => spawnSync('git', a, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? ''
const commit = git('rev-parse', '--short', 'HEAD') || 'unknown'
const dirty = git('status', '--porcelain', '--untracked-files=no') !== ''
const startedAt = new Date()
const loadBefore = loadavg()

/** Runs one bench, echoing its output, and resolves with its exit code and closing JSON lines. */
function runBench(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [new URL(file, import.meta.url).pathname, ...(withPeers ? ['--peers'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] })
    const found = []
    let buf = ''
    child.stdout.on('data', (d) => {
      process.stdout.write(d)
      buf += d
      const lines = buf.split('\n')
      buf = lines.pop()
      for (const l of lines) {
        if (!l.startsWith('{"bench"')) continue
        try {
          found.push(JSON.parse(l))
        } catch {
          // a line that only looks like a result
        }
      }
    })
    child.once('close', (code) => resolve({ code, results: found }))
  })
}

let failed = 0
const collected = []
for (const f of benches) {
  console.log(`\n=== bench/${f}`)
  const { code, results } = await runBench(f)
  if (code !== 0) failed++
  collected.push(...results.map((r) => ({ file: f, exitCode: code, ...r })))
  if (results.length === 0) collected.push({ file: f, exitCode: code, bench: f.replace(/\.js$/, ''), note: 'no result line' })
}

// One table of every ratio, against its target where the bench gave one.
const summary = []
for (const r of collected) {
  for (const [k, v] of Object.entries(r.ratios ?? {})) {
    const t = r.targets?.[k]
    summary.push({ bench: r.bench, ratio: k, value: v, target: t, met: t ? meets(v, t) : undefined })
  }
}
const tText = (t) => (t ? [t.min === undefined ? '' : `≥ ${t.min}`, t.max === undefined ? '' : `≤ ${t.max}`].filter(Boolean).join(', ') : '')
const summaryMd = [
  '| bench | ratio | value | target | met |',
  '| --- | --- | ---: | --- | --- |',
  ...summary.map((s) => `| ${s.bench} | ${s.ratio} | ${round(s.value)} | ${tText(s.target)} | ${s.met === undefined ? '' : s.met ? 'yes' : '**no**'} |`),
]
console.log(`\n=== summary (${commit}${dirty ? ', uncommitted changes' : ''})\n${summaryMd.join('\n')}`)

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryBytes: totalmem(),
  kernel: release(),
  loadAverage: { before: loadBefore.map((x) => round(x)), after: loadavg().map((x) => round(x)) },
}
const file = `${startedAt.toISOString().slice(0, 10)}-${commit}`
const dir = join(ROOT, 'bench/results')
mkdirSync(dir, { recursive: true })
const doc = { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), commit, dirty, node: process.version, load: loadTool, peers: withPeers, machine, benches: collected, summary }
writeFileSync(join(dir, `${file}.json`), `${JSON.stringify(doc, null, 2)}\n`)
writeFileSync(join(dir, `${file}.md`), markdown(doc, summaryMd))
console.log(`\nwrote bench/results/${file}.json and .md`)
process.exit(failed ? 1 : 0)

function markdown(d, summaryLines) {
  const out = [
    `# Bench results ${d.startedAt.slice(0, 10)}, commit ${d.commit}${d.dirty ? ' (with uncommitted changes)' : ''}`,
    '',
    `- machine: ${d.machine.cpu}, ${d.machine.cores} cores, ${Math.round(d.machine.memoryBytes / 2 ** 30)} GB, Linux ${d.machine.kernel}; load average before ${d.machine.loadAverage.before.join(' ')}, after ${d.machine.loadAverage.after.join(' ')}`,
    `- Node ${d.node}; load generator ${d.load}; peers ${d.peers ? 'on (--peers)' : 'off'}`,
    `- from ${d.startedAt} to ${d.finishedAt}; \`npm run bench${d.peers ? ' -- --peers' : ''}\``,
    '',
    '## Every ratio against its target',
    '',
    ...summaryLines,
  ]
  for (const b of d.benches) {
    out.push('', `## ${b.bench} (bench/${b.file}${b.exitCode === 0 ? '' : `, exit ${b.exitCode}`})`, '')
    const meta = ['connections', 'seconds', 'rounds', 'sizeBytes', 'burst', 'originMs', 'maxBytes'].filter((k) => b[k] !== undefined).map((k) => `${k} ${b[k]}`)
    if (meta.length) out.push(meta.join(', '), '')
    for (const [name, v] of Object.entries(b.peers ?? {})) out.push(`- ${name}: ${v}`)
    for (const n of b.notes ?? []) out.push(`- note: ${n}`)
    if (b.note) out.push(`- ${b.note}`)
    const rows = Object.entries(b.results ?? {})
    if (rows.length) {
      out.push('', '| case | req/s (median) | min–max | p50 ms | p99 ms | server CPU µs/req | errors + non-2xx |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
      for (const [label, r] of rows) {
        const rps = (r.rounds ?? []).map((x) => x.rps)
        const span = rps.length ? `${Math.min(...rps)}–${Math.max(...rps)}` : ''
        out.push(`| ${label} | ${Math.round(r.rps)} | ${span} | ${round(r.p50)} | ${round(r.p99)} | ${r.cpuUsPerReq === undefined ? '–' : round(r.cpuUsPerReq, 1)} | ${r.errors + (r.non2xx ?? 0)} |`)
      }
    }
    for (const [label, r] of Object.entries(b.bursts ?? {})) {
      out.push(`- ${label}: origin requests per burst ${r.rounds.map((x) => x.originRequests).join(', ')}; p50 ${round(r.p50, 1)} ms, p99 ${round(r.p99, 1)} ms (median of rounds; rounds' p99 ${r.rounds.map((x) => x.p99).join(', ')})`)
    }
    if (b.rssEnd !== undefined) {
      const mb = (x) => `${Math.round(x / 2 ** 20)} MB`
      out.push(`- RSS at start ${mb(b.rssStart)}, after the fill ${mb(b.rssEnd)}, peak ${mb(b.peak)}; L1 holds ${mb(b.l1?.bytes ?? 0)} in ${b.l1?.entries} entries; ${b.pages} pages of ${b.pageBytes / 1024} KB`)
    }
    if (b.l1 !== undefined && b.l2_us !== undefined) {
      out.push(`- L1 hit ops/s: ${Object.entries(b.l1).map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`).join(', ')}`)
      out.push(`- L2 hit µs (p50/p99): ${Object.entries(b.l2_us).map(([k, v]) => `${k} ${v.p50}/${v.p99}`).join(', ')}`)
    }
    if (b.decisionsNs !== undefined) {
      out.push('', '| algorithm | ns per pick → begin → done (median) | min–max |', '| --- | ---: | ---: |')
      for (const [k, v] of Object.entries(b.decisionsNs)) out.push(`| ${k} | ${Math.round(v.nsPerDecision)} | ${Math.round(v.min)}–${Math.round(v.max)} |`)
    }
    if (!b.targets && b.ratios) out.push('', ...Object.entries(b.ratios).map(([k, v]) => `- ${k}: ${round(v, 3)}`))
  }
  return `${out.join('\n')}\n`
}
