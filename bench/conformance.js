// RFC 9111 conformance: runs the public HTTP cache test suite (https://cache-tests.fyi/,
// github.com/http-tests/cache-tests) against strata and scores it as cache-tests.fyi does.
//
//   npm run conformance [-- --json] [-- --suite DIR] [-- --config overrides.json] [-- --id TEST-ID]
//
// The suite is not vendored (never commit its code): clone it into .cache-tests/ (git-ignored), see
// README "RFC 9111 conformance". Its origin server runs in this process on a free loopback port;
// strata runs compiled (dist/cli.js), default config, that origin as its only upstream.
import { createServer } from 'node:http'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { ROOT, startStrata } from './lib.js'

/** The suite commit the README's numbers were measured on. */
export const SUITE_COMMIT = 'b55b8bd'

/**
 * Runs the suite and returns the scored result. `suiteDir` holds a checkout of http-tests/cache-tests
 * (it must resolve `undici` for the interim-response tests: inside this repo, or with its own
 * node_modules). `overrides` is merged over strata's default config.
 */
export async function runConformance({ suiteDir = defaultSuiteDir(), overrides = {}, testId } = {}) {
  const suite = (p) => pathToFileURL(join(suiteDir, p)).href
  for (const f of ['tests/index.mjs', 'test-engine/client/runner.mjs', 'test-engine/lib/results.mjs', 'test-engine/server/handle-test.mjs']) {
    if (!existsSync(join(suiteDir, f))) throw new Error(`no cache-tests suite at ${suiteDir} (missing ${f}); ${HOW_TO_GET}`)
  }
  const [{ default: suites }, { runTests, getResults }, { determineTestResult, resultTypes }, handlers] = await Promise.all([
    import(suite('tests/index.mjs')),
    import(suite('test-engine/client/runner.mjs')),
    import(suite('test-engine/lib/results.mjs')),
    Promise.all(['handle-config', 'handle-test', 'handle-state'].map((h) => import(suite(`test-engine/server/${h}.mjs`)))),
  ])
  const [handleConfig, handleTest, handleState] = handlers.map((m) => m.default)

  // The suite's own server.mjs listens on every interface at a fixed port; the same three handlers
  // behind a loopback server on port 0 avoid both. Its static file handler is for browsers only.
  const origin = createServer((req, res) => {
    const segs = new URL(req.url, 'http://origin/').pathname.split('/').slice(1)
    const dispatch = segs.shift()
    if (dispatch === 'config') handleConfig(segs, req, res)
    else if (dispatch === 'test') handleTest(segs, req, res)
    else if (dispatch === 'state') handleState(segs, req, res)
    else res.writeHead(404).end()
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  const originUrl = `http://127.0.0.1:${origin.address().port}`

  const config = merge(
    {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { enabled: false },
      upstreams: [{ id: 'cache-tests', url: originUrl }],
      log: { level: 'info', access: false },
    },
    overrides,
  )
  const strata = await startStrata(config)
  try {
    let selected = suites
    if (testId !== undefined) {
      selected = suites.map((s) => ({ ...s, tests: s.tests.filter((t) => t.id === testId) })).filter((s) => s.tests.length > 0)
      if (selected.length === 0) throw new Error(`no test with id ${testId}`)
      for (const s of selected) for (const t of s.tests) t.dump = true
    }
    await runTests(selected, false, strata.url.replace(/\/$/, ''))
    return score(suites, getResults(), determineTestResult, resultTypes)
  } finally {
    await strata.stop()
    origin.closeAllConnections()
    origin.close()
  }
}

/**
 * Scores raw results as cache-tests.fyi does (test-engine/lib/results.mjs): a test whose
 * `depends_on` tests did not pass is a dependency failure; a test without `kind` is required;
 * `optimal` failures are optional; `check` tests answer yes/no and are neither pass nor fail.
 */
function score(suites, raw, determineTestResult, resultTypes) {
  const names = new Map(Object.entries(resultTypes).map(([k, v]) => [v, k]))
  const counts = {}
  const outcomes = {}
  const requiredFailures = []
  const optionalFailures = []
  for (const s of suites) {
    for (const t of s.tests) {
      if (!(t.id in raw)) continue
      const outcome = names.get(determineTestResult(suites, t.id, raw))
      outcomes[t.id] = outcome
      counts[outcome] = (counts[outcome] ?? 0) + 1
      if (outcome === 'fail') requiredFailures.push({ id: t.id, name: t.name, detail: Array.isArray(raw[t.id]) ? raw[t.id][1] : undefined })
      if (outcome === 'optional_fail') optionalFailures.push(t.id)
    }
  }
  return {
    run: Object.keys(raw).length,
    passed: counts.pass ?? 0,
    failed: counts.fail ?? 0,
    requiredFailures,
    optionalFailures,
    counts,
    outcomes,
    raw,
  }
}

function merge(a, b) {
  const out = { ...a }
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k]
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur) ? merge(cur, v) : v
  }
  return out
}

function defaultSuiteDir() {
  return resolve(process.env.CACHE_TESTS_DIR ?? join(ROOT, '.cache-tests'))
}

const HOW_TO_GET = `get it with: git clone https://github.com/http-tests/cache-tests .cache-tests && git -C .cache-tests checkout ${SUITE_COMMIT} (or set CACHE_TESTS_DIR / --suite)`

async function main() {
  const { values } = parseArgs({
    options: { json: { type: 'boolean' }, suite: { type: 'string' }, config: { type: 'string' }, id: { type: 'string' } },
  })
  const overrides = values.config ? JSON.parse(readFileSync(values.config, 'utf8')) : {}
  const opts = { overrides }
  if (values.suite) opts.suiteDir = resolve(values.suite)
  if (values.id) opts.testId = values.id
  // The suite logs harness errors with console.error; in --json mode stdout carries only the JSON.
  const r = await runConformance(opts)
  if (values.json) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n')
  } else {
    const c = r.counts
    const line = (label, n) => `  ${label.padEnd(22)} ${n ?? 0}\n`
    process.stdout.write(`cache-tests against strata (default config${values.config ? ` + ${values.config}` : ''}): ${r.run} tests run\n`)
    process.stdout.write(line('passed', r.passed) + line('required failures', r.failed) + line('optional failures', c.optional_fail))
    process.stdout.write(line('dependency failures', c.dependency_fail) + line('setup failures', c.setup_fail) + line('harness failures', c.harness_fail))
    process.stdout.write(line('retries', c.retry) + line('checks yes / no', `${c.yes ?? 0} / ${c.no ?? 0}`))
    for (const f of r.requiredFailures) process.stdout.write(`  FAIL ${f.id}: ${f.detail ?? ''}\n`)
    if (values.id) process.stdout.write(`  ${values.id}: ${r.outcomes[values.id]} ${JSON.stringify(r.raw[values.id])}\n`)
  }
  return r.failed === 0 ? 0 : 1
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${err.message}\n`)
      process.exit(2)
    },
  )
}
