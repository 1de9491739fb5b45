// `npm run bench`: runs every bench in sequence (each one a standalone script), so their numbers
// come from the same machine in the same sitting.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'

const only = process.argv.slice(2)
const benches = readdirSync(new URL('.', import.meta.url))
  .filter((f) => f.endsWith('.js') && !['run.js', 'lib.js'].includes(f))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort()
let failed = 0
for (const f of benches) {
  console.log(`\n=== bench/${f}`)
  const r = spawnSync(process.execPath, [new URL(f, import.meta.url).pathname], { stdio: 'inherit' })
  if (r.status !== 0) failed++
}
process.exit(failed ? 1 : 0)
