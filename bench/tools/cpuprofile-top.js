// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per group (strata
// JS, node http server, undici client, fastify, GC, idle, ...), as Markdown. Usage:
//   node bench/tools/cpuprofile-top.js <file.cpuprofile> [--top 30] [--from ms] [--to ms]
// --from/--to keep only samples in that window (ms since the profile started), e.g. the load
// phase without start-up.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' } } })
const prof = JSON.parse(readFileSync(positionals[0], 'utf8'))
const top = Number(values.top ?? 30)
const from = values.from === undefined ? -Infinity : Number(values.from) * 1000
const to = values.to === undefined ? Infinity : Number(values.to) * 1000

const nodes = new Map(prof.nodes.map((n) => [n.id, n]))
/** Group of a call frame, by its script URL and function name. */
export function group(cf) {
  const url = cf.url ?? ''
  const fn = cf.functionName
  if (fn === '(garbage collector)') return 'GC'
  if (fn === '(idle)') return 'idle'
  if (fn === '(program)') return 'native / not attributed (program)'
  if (url.includes('/dist/') || url.includes('/src/')) return 'strata JS'
  if (url.includes('node_modules/undici/')) return 'undici client'
  if (url.includes('node_modules/fastify/') || url.includes('node_modules/find-my-way/') || url.includes('node_modules/avvio/') || url.includes('node_modules/light-my-request/')) return 'fastify'
  if (url.includes('node_modules/pino') || url.includes('node_modules/sonic-boom') || url.includes('node_modules/thread-stream')) return 'pino / sonic-boom'
  if (url.includes('node_modules/')) return `other package (${url.split('node_modules/')[1].split('/').slice(0, url.includes('node_modules/@') ? 2 : 1).join('/')})`
  if (/node:_http_(server|incoming|outgoing|common)/.test(url)) return 'node http server'
  if (/node:(net|stream|internal\/streams|internal\/stream_base_commons)/.test(url)) return 'node net / streams'
  if (url.startsWith('node:')) return `node other (${url.slice(5).split('/').slice(0, 2).join('/')})`
  if (fn === 'writev' || fn === 'writeBuffer' || fn === 'writeUtf8String' || fn === 'writeLatin1String') return 'syscalls (socket writes)'
  if (url === '' && fn !== '') return `native (${fn})`
  return 'other'
}

const self = new Map() // node id → µs
const { samples, timeDeltas } = prof
let t = prof.startTime
for (let i = 0; i < samples.length; i++) {
  t += timeDeltas[i]
  const rel = t - prof.startTime
  if (rel < from || rel > to) continue
  const dt = timeDeltas[i + 1] ?? timeDeltas[i]
  self.set(samples[i], (self.get(samples[i]) ?? 0) + dt)
}
const byFn = new Map()
const byGroup = new Map()
let total = 0
let idle = 0
for (const [id, us] of self) {
  const cf = nodes.get(id).callFrame
  const g = group(cf)
  if (g === 'idle') {
    idle += us
    continue
  }
  total += us
  const key = `${cf.functionName || '(anonymous)'}  ${(cf.url ?? '').replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${cf.lineNumber + 1}`
  const f = byFn.get(key) ?? { us: 0, group: g }
  f.us += us
  byFn.set(key, f)
  byGroup.set(g, (byGroup.get(g) ?? 0) + us)
}
// Inclusive time of strata's functions (self + callees), per function and per file: where a
// request spends its time from strata's point of view. A function on the stack twice (recursion)
// is counted once per sample.
const parent = new Map()
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const inclusive = new Map()
const strataFile = new Map()
for (const [id, us] of self) {
  if (group(nodes.get(id).callFrame) === 'idle') continue
  const seen = new Set()
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const cf = nodes.get(cur).callFrame
    if (group(cf) !== 'strata JS') continue
    const key = `${cf.functionName || '(anonymous)'}  ${cf.url.replace(/^.*\/dist\//, 'dist/')}:${cf.lineNumber + 1}`
    if (seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + us)
  }
  const cf = nodes.get(id).callFrame
  if (group(cf) === 'strata JS') {
    const file = cf.url.replace(/^.*\/dist\//, 'dist/')
    strataFile.set(file, (strataFile.get(file) ?? 0) + us)
  }
}
const pct = (us) => `${((100 * us) / total).toFixed(1)}%`
console.log(`busy ${(total / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms (shares below are of busy time)\n`)
console.log('| group | self ms | share |\n| --- | ---: | ---: |')
for (const [g, us] of [...byGroup].sort((a, b) => b[1] - a[1])) console.log(`| ${g} | ${(us / 1000).toFixed(0)} | ${pct(us)} |`)
console.log(`\n| function (top ${top} by self time) | group | self ms | share |\n| --- | --- | ---: | ---: |`)
for (const [k, f] of [...byFn].sort((a, b) => b[1].us - a[1].us).slice(0, top)) console.log(`| \`${k}\` | ${f.group} | ${(f.us / 1000).toFixed(1)} | ${pct(f.us)} |`)
console.log('\n| strata file | self ms | share |\n| --- | ---: | ---: |')
for (const [f, us] of [...strataFile].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`| ${f} | ${(us / 1000).toFixed(1)} | ${pct(us)} |`)
console.log(`\n| strata function (top ${top} by inclusive time: itself and what it calls) | inclusive ms | share |\n| --- | ---: | ---: |`)
for (const [k, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`| \`${k}\` | ${(us / 1000).toFixed(1)} | ${pct(us)} |`)
