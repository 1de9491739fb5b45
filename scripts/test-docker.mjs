#!/usr/bin/env node
// `npm run test:docker`: builds the images and runs the reference A/B cluster of docker-compose.yml
// in a real Docker engine, then checks it from this host, through the published ports only:
//   1. a + b1 + b2: balancing over b1/b2 by name, the sticky cookie, `docker stop b1` during a
//      burst (no GET lost, the cookie re-pinned), a purge through the admin API on :4001;
//   2. + docker-compose.redis.yml --profile scale-out: a page cached through a is an L2 hit
//      through a2, and a purge on a2 is gone from a within 100 ms;
//   3. + docker-compose.ssh.yml: `exec b1 ssh my@a hostname` works; root and passwords do not;
//   4. docker-compose.scale.yml: DNS service discovery; `--scale web=2` → 3 → 2 under a bounded
//      load: no GET fails, and the new replica gets traffic within resolveEveryMs plus a health check.
// Everything is torn down (containers, network, volumes) after each part, also on failure.
// Needs a running engine (scripts/docker-engine.sh) and the base image (scripts/docker-base.sh).
import { spawn, spawnSync } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const PROJECT = 'strata-test'
const TOKEN = 'change-me-in-production' // config/cluster*.json
const HEALTH_TIMEOUT_MS = 180_000
const t0 = Date.now()
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`
const log = (msg) => console.log(`[test:docker ${secs(Date.now() - t0).padStart(7)}] ${msg}`)

// Compose v1.29 (Debian's docker-compose) or v2 (the docker CLI plugin): the same files.
const COMPOSE = spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0 ? ['docker-compose'] : ['docker', 'compose']
// Without the buildx plugin a recent docker CLI refuses BuildKit; the classic builder does the job.
const buildEnv = { ...process.env, ...(spawnSync('docker', ['buildx', 'version'], { stdio: 'ignore' }).status === 0 ? {} : { DOCKER_BUILDKIT: '0' }) }

/** Runs a command; its trimmed stdout with `capture`, its exit code with `status`. */
function sh(cmd, args, { capture = false, allowFail = false, status = false, env = process.env } = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, env, encoding: 'utf8', stdio: capture ? ['ignore', 'pipe', 'pipe'] : 'inherit', maxBuffer: 64 << 20 })
  if (status) return r.status
  if (r.status !== 0 && !allowFail) {
    throw new Error(`\`${cmd} ${args.join(' ')}\` exited ${r.status ?? r.signal}${capture ? `\n${r.stdout}${r.stderr}` : ''}`)
  }
  return capture ? r.stdout.trim() : ''
}

/**
 * `sh` without blocking the event loop, for commands that run while this process sends load
 * (spawnSync would stop every request in flight here for as long as the command takes).
 */
function shAsync(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`\`${cmd} ${args.join(' ')}\` exited ${code}\n${out}`))))
  })
}

/** One compose project over a set of files and profiles. */
function cluster(files, profiles = []) {
  const base = [...files.flatMap((f) => ['-f', f]), '-p', PROJECT, ...profiles.flatMap((p) => ['--profile', p])]
  const compose = (args, opts) => sh(COMPOSE[0], [...COMPOSE.slice(1), ...base, ...args], opts)
  const container = (service) => {
    const id = compose(['ps', '-q', service], { capture: true })
    if (!id) throw new Error(`no container for service ${service}`)
    return id
  }
  return {
    compose,
    composeAsync: (args) => shAsync(COMPOSE[0], [...COMPOSE.slice(1), ...base, ...args]),
    container,
    up: () => compose(['up', '-d', '--no-build']),
    async waitHealthy() {
      const deadline = Date.now() + HEALTH_TIMEOUT_MS
      let states = ''
      while (Date.now() < deadline) {
        const ids = compose(['ps', '-q'], { capture: true }).split('\n').filter(Boolean)
        states = ids.length === 0 ? '' : sh('docker', ['inspect', '-f', '{{.Name}}={{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}', ...ids], { capture: true })
        if (ids.length > 0 && states.split('\n').every((l) => l.endsWith('=healthy'))) return
        await sleep(500)
      }
      compose(['ps'], { allowFail: true })
      compose(['logs', '--tail', '40'], { allowFail: true })
      throw new Error(`containers not healthy within ${secs(HEALTH_TIMEOUT_MS)}: ${states.replace(/\n/g, ', ')}`)
    },
    down() {
      compose(['down', '-v', '--remove-orphans', '-t', '10'], { allowFail: true })
    },
    logs() {
      compose(['logs', '--tail', '60'], { allowFail: true })
    },
  }
}

function check(ok, message) {
  if (!ok) throw new Error(`check failed: ${message}`)
  log(`ok - ${message}`)
}

/** A GET with undici (fetch would drop a Host header; the cache key is built from it). */
async function get(url, headers = {}) {
  const res = await request(url, { headers, headersTimeout: 15_000, bodyTimeout: 15_000 })
  const body = await res.body.text()
  const h = res.headers
  const one = (name) => (h[name] === undefined ? null : [h[name]].flat().join(', '))
  return { status: res.statusCode, headers: { get: one }, body, servedBy: one('x-served-by'), setCookie: [h['set-cookie'] ?? []].flat() }
}

async function purge(adminUrl, body) {
  const res = await fetch(`${adminUrl}/purge`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  })
  const json = await res.json()
  if (res.status !== 200) throw new Error(`purge ${JSON.stringify(body)} on ${adminUrl}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

/** `strata_srv=<token>` from a response's Set-Cookie, or undefined. */
const stickyOf = (r) => r.setCookie.map((c) => c.split(';')[0]).find((c) => c.startsWith('strata_srv='))

/** Waits until the proxy answers 200 from both webservers (health checks have run by then). */
async function waitServing(url) {
  const deadline = Date.now() + 60_000
  const seen = new Set()
  while (Date.now() < deadline && seen.size < 2) {
    const r = await get(`${url}/api/whoami`).catch(() => undefined)
    if (r?.status === 200 && r.servedBy) seen.add(r.servedBy)
    else await sleep(200)
  }
  if (seen.size < 2) throw new Error(`${url} did not serve from both webservers within 60 s (saw ${[...seen]})`)
}

// --- 1. a + b1 + b2 -------------------------------------------------------------------------
async function partAB() {
  const c = cluster(['docker-compose.yml'])
  const A = 'http://127.0.0.1:2001'
  const ADMIN = 'http://127.0.0.1:4001'
  try {
    c.up()
    await c.waitHealthy()
    await waitServing(A)
    log('a, b1, b2 healthy')

    // Balanced over b1 and b2, reached by name (config/cluster.json: http://b1:3001, http://b2:3001).
    const counts = { b1: 0, b2: 0 }
    for (let i = 0; i < 20; i++) {
      const r = await get(`${A}/api/whoami`)
      if (r.status !== 200) throw new Error(`GET /api/whoami #${i + 1}: ${r.status} ${r.body}`)
      counts[r.servedBy] = (counts[r.servedBy] ?? 0) + 1
    }
    check(counts.b1 >= 5 && counts.b2 >= 5 && counts.b1 + counts.b2 === 20, `20 requests without a cookie are balanced over b1 and b2 (${JSON.stringify(counts)})`)

    // The sticky cookie holds: a cookie pinned to b1 goes to b1, ten times out of ten.
    let pinned
    for (let i = 0; i < 20 && pinned === undefined; i++) {
      const r = await get(`${A}/api/whoami`)
      if (r.servedBy === 'b1') pinned = stickyOf(r)
    }
    check(pinned !== undefined, 'a response from b1 sets the sticky cookie')
    const sticky = []
    for (let i = 0; i < 10; i++) sticky.push((await get(`${A}/api/whoami`, { cookie: pinned })).servedBy)
    check(sticky.every((s) => s === 'b1'), `10 requests with b1's cookie all go to b1 (${sticky.join(' ')})`)

    // Admin API on :4001: a cached page is purged.
    await get(`${A}/static/style.css`)
    const hit = await get(`${A}/static/style.css`)
    check(hit.headers.get('x-cache') === 'HIT', `/static/style.css is a cache hit the second time (X-Cache ${hit.headers.get('x-cache')})`)
    const purged = await purge(ADMIN, { urls: ['/static/style.css'] })
    check(purged.purged >= 1, `POST :4001/purge drops it (${JSON.stringify(purged)})`)
    const after = await get(`${A}/static/style.css`)
    check(after.headers.get('x-cache') === 'MISS', `the next GET is a MISS (X-Cache ${after.headers.get('x-cache')})`)

    // `docker stop b1` during a bounded burst: no GET is lost, b1's users are re-pinned to b2.
    const results = []
    let stopped = false
    const worker = async (w) => {
      let extra = 0
      const deadline = Date.now() + 120_000
      while (extra < 25 && Date.now() < deadline) {
        const headers = w % 2 === 0 ? { cookie: pinned } : {}
        const afterStop = stopped // sent after `docker stop` returned, so b1 was gone
        try {
          const r = await get(`${A}/api/whoami`, headers)
          results.push({ status: r.status, servedBy: r.servedBy, afterStop })
        } catch (err) {
          results.push({ status: 0, error: String(err?.cause?.code ?? err), afterStop })
        }
        if (stopped) extra++
      }
    }
    const burst = Promise.all([0, 1, 2, 3].map(worker))
    while (results.length < 20) await sleep(10)
    log(`docker stop b1 after ${results.length} requests of the burst`)
    const stopStart = Date.now()
    sh('docker', ['stop', '-t', '10', c.container('b1')], { capture: true })
    stopped = true
    log(`b1 stopped in ${secs(Date.now() - stopStart)}`)
    await burst
    const failed = results.filter((r) => r.status !== 200)
    check(failed.length === 0, `${results.length} GETs during the stop of b1: none failed${failed.length ? ` (${JSON.stringify(failed.slice(0, 5))})` : ''}`)
    const lateB1 = results.filter((r) => r.afterStop && r.servedBy === 'b1').length
    check(results.filter((r) => r.afterStop).length >= 90 && lateB1 === 0, `after the stop every answer came from b2 (${lateB1} from b1)`)
    const moved = await get(`${A}/api/whoami`, { cookie: pinned })
    const repinned = stickyOf(moved)
    check(moved.status === 200 && moved.servedBy === 'b2' && repinned !== undefined && repinned !== pinned, "b1's cookie now goes to b2 and is reissued for it")
    const held = []
    for (let i = 0; i < 5; i++) held.push((await get(`${A}/api/whoami`, { cookie: repinned })).servedBy)
    check(held.every((s) => s === 'b2'), `the reissued cookie holds on b2 (${held.join(' ')})`)
  } catch (err) {
    c.logs()
    throw err
  } finally {
    c.down()
  }
}

// --- 2. Redis and a second edge --------------------------------------------------------------
async function partScaleOut() {
  const c = cluster(['docker-compose.yml', 'docker-compose.redis.yml'], ['scale-out'])
  const A = 'http://127.0.0.1:2001'
  const A2 = 'http://127.0.0.1:2002'
  const ADMIN = 'http://127.0.0.1:4001'
  try {
    c.up()
    await c.waitHealthy()
    await waitServing(A)
    await waitServing(A2)
    log('redis, a, a2, b1, b2 healthy')

    // One site name on both edges, as behind DNS round-robin: the cache key includes the Host.
    const site = { host: 'www.strata.test' }
    const page = '/static/style.css'
    const first = await get(`${A}${page}`, site)
    check(first.status === 200 && first.headers.get('x-cache') === 'MISS', `${page} through a is a MISS (${first.headers.get('cache-status')})`)
    // a writes L2 after answering; wait until Redis holds the entry (a's admin /stats counts it),
    // since a2 asked too early would fetch the page itself.
    const l2Entries = async () => {
      const res = await fetch(`${ADMIN}/stats`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(15_000) })
      return (await res.json()).cache.l2.entries
    }
    for (let i = 0; i < 200 && (await l2Entries()) < 1; i++) await sleep(50)
    const onA2 = await get(`${A2}${page}`, site)
    check(
      onA2.headers.get('x-cache') === 'HIT' && /detail=l2/.test(onA2.headers.get('cache-status') ?? ''),
      `${page} through a2 is an L2 hit (${onA2.headers.get('cache-status')})`,
    )
    check((await get(`${A}${page}`, site)).headers.get('x-cache') === 'HIT', `${page} is a hit on a again`)

    const purged = await purge('http://127.0.0.1:4002', { urls: [page] })
    const purgedAt = performance.now()
    let gone = -1
    // Hits are asked back to back; `gone` is when the first one that missed was sent (its own
    // answer then takes an origin round trip, which is not the purge's doing).
    while (performance.now() - purgedAt < 5000) {
      const sentAt = performance.now() - purgedAt
      const r = await get(`${A}${page}`, site)
      if (r.headers.get('x-cache') !== 'HIT') {
        gone = sentAt
        break
      }
    }
    check(gone >= 0 && gone <= 100, `a purge on a2 (${JSON.stringify(purged)}) is gone from a within 100 ms (a request sent ${gone.toFixed(1)} ms after the purge answered missed)`)

    // The webservers share their data cache through the same Redis.
    const stats = JSON.parse(sh('docker', ['exec', c.container('b1'), 'node', '-e', "fetch('http://127.0.0.1:3001/api/stats').then((r) => r.text()).then((t) => process.stdout.write(t))"], { capture: true }))
    check(stats.dataCache?.mode === 'l1+redis', `b1's data cache uses Redis (mode ${stats.dataCache?.mode})`)
  } catch (err) {
    c.logs()
    throw err
  } finally {
    c.down()
  }
}

// --- 3. ssh between the hosts ----------------------------------------------------------------
async function partSsh() {
  const c = cluster(['docker-compose.yml', 'docker-compose.ssh.yml'])
  try {
    c.up()
    await c.waitHealthy()
    log('a, b1, b2 (ssh target) healthy')
    const hostname = sh('docker', ['inspect', '-f', '{{.Config.Hostname}}', c.container('a')], { capture: true })
    const out = c.compose(['exec', '-T', 'b1', 'ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', 'my@a', 'hostname'], { capture: true })
    check(out === hostname, `\`exec b1 ssh my@a hostname\` prints a's hostname (${out})`)
    const refused = (...args) => c.compose(['exec', '-T', 'b1', 'ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', ...args, 'true'], { capture: true, allowFail: true, status: true }) !== 0
    check(refused('root@a'), 'root cannot log in over ssh')
    check(refused('-o', 'PubkeyAuthentication=no', 'my@a'), 'my cannot log in without the key (no password or keyboard-interactive login)')
    const appUser = sh('docker', ['exec', c.container('a'), 'sh', '-c', 'stat -c %U /proc/1'], { capture: true })
    check(appUser === 'node', `strata itself still runs as node (pid 1: ${appUser})`)
  } catch (err) {
    c.logs()
    throw err
  } finally {
    c.down()
  }
}

// --- 4. DNS service discovery: --scale web=2 → 3 → 2 ----------------------------------------
const SCALE_RESOLVE_EVERY_MS = 1000 // config/scale.json
const SCALE_CHECK_MS = 1000 + 1000 // config/scale.json, balancer.healthCheck: intervalMs + timeoutMs

async function partScale() {
  const c = cluster(['docker-compose.scale.yml'])
  const A = 'http://127.0.0.1:2001'
  const ADMIN = 'http://127.0.0.1:4001'
  // Asynchronous: the load below runs in this process while compose works.
  const scale = (n) => c.composeAsync(['up', '-d', '--no-build', '--no-recreate', '--scale', `web=${n}`])
  const replicas = async () => (await c.composeAsync(['ps', '-q', 'web'])).split('\n').filter(Boolean)
  /** Container id → its X-Served-By, web-<container hostname>. */
  const names = async () => {
    const ids = await replicas()
    const hostnames = (await shAsync('docker', ['inspect', '-f', '{{.Config.Hostname}}', ...ids])).split('\n')
    return new Map(ids.map((id, i) => [id, `web-${hostnames[i]}`]))
  }
  const members = async () => {
    const res = await fetch(`${ADMIN}/upstreams`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(15_000) })
    return (await res.json()).upstreams.map((u) => u.id).sort()
  }
  try {
    await scale(2)
    await c.waitHealthy()
    await waitServing(A)
    const two = [...(await names()).values()]
    check((await members()).length === 2 && (await members()).every((m) => m.startsWith('web@')), `a, web×2 healthy; strata has two members ${JSON.stringify(await members())}`)

    // A bounded load: 4 clients, GETs back to back, until the scaling below is over (at most 3 minutes).
    const results = []
    let running = true
    const deadline = Date.now() + 180_000
    const worker = async () => {
      while (running && Date.now() < deadline) {
        const sentAt = Date.now()
        try {
          const r = await get(`${A}/api/whoami`)
          results.push({ status: r.status, servedBy: r.servedBy, at: Date.now(), sentAt })
        } catch (err) {
          results.push({ status: 0, error: String(err?.cause?.code ?? err), at: Date.now(), sentAt })
        }
      }
    }
    const load = Promise.all([0, 1, 2, 3].map(worker))
    try {
      while (results.length < 50) await sleep(10)

      // 2 → 3: no config change; the new replica is a member once Docker's DNS names it.
      await scale(3)
      const added = [...(await names())].filter(([, n]) => !two.includes(n))
      check(added.length === 1, `--scale web=3 starts one more replica (${added.map(([, n]) => n)})`)
      const [newId, newName] = added[0]
      let firstAt
      while (firstAt === undefined && Date.now() < deadline) {
        firstAt = results.find((r) => r.servedBy === newName)?.sentAt
        if (firstAt === undefined) await sleep(50)
      }
      check(firstAt !== undefined, `the new replica ${newName} gets traffic`)
      // When it could first answer: its own "ready" log line (same kernel clock as this host).
      const ready = (await shAsync('docker', ['logs', newId]))
        .split('\n')
        .map((l) => {
          try {
            return JSON.parse(l)
          } catch {
            return undefined
          }
        })
        .find((l) => l?.msg === 'demo webserver ready')
      // Docker's DNS names it from its start, before it listens: discovery adds it within
      // resolveEveryMs, and its first good health check (one interval, plus the check itself)
      // after it listens brings it up.
      const lag = firstAt - ready.time
      check(
        lag <= SCALE_RESOLVE_EVERY_MS + SCALE_CHECK_MS,
        `its first request came ${lag} ms after it listened (bound: resolveEveryMs ${SCALE_RESOLVE_EVERY_MS} + a health check ${SCALE_CHECK_MS})`,
      )
      const three = new Set(results.filter((r) => r.at >= firstAt).map((r) => r.servedBy))
      for (let i = 0; i < 400 && three.size < 3; i++) {
        await sleep(10)
        for (const r of results) if (r.at >= firstAt) three.add(r.servedBy)
      }
      check(three.size === 3, `traffic spreads over the three replicas (${[...three].sort()})`)

      // 3 → 2: the removed replica's requests finish or are retried elsewhere; it is dropped.
      const before = await names()
      const downAt = Date.now()
      await scale(2)
      const left = await replicas()
      const gone = [...before].filter(([id]) => !left.includes(id)).map(([, n]) => n)
      check(gone.length === 1, `--scale web=2 stops one replica (${gone}) in ${secs(Date.now() - downAt)}`)
      const doneAt = Date.now()
      const memberDeadline = Date.now() + 30_000
      while ((await members()).length !== 2 && Date.now() < memberDeadline) await sleep(100)
      check((await members()).length === 2, `strata is back to two members ${JSON.stringify(await members())}`)
      const after = results.length
      while (results.length < after + 100) await sleep(10)
      const late = results.filter((r) => r.at > doneAt + SCALE_RESOLVE_EVERY_MS && r.servedBy === gone[0]).length
      check(late === 0, `no answer from ${gone[0]} once it was gone`)
    } finally {
      running = false
      await load
    }
    const failed = results.filter((r) => r.status !== 200)
    check(failed.length === 0, `${results.length} GETs while scaling 2 → 3 → 2: none failed${failed.length ? ` (${JSON.stringify(failed.slice(0, 5))})` : ''}`)
  } catch (err) {
    c.logs()
    // strata's own account of the members (its access lines left out).
    const lines = (await shAsync('docker', ['logs', c.container('a')]).catch(() => '')).split('\n')
    console.log(lines.filter((l) => !l.includes('"msg":"request"')).slice(-40).join('\n'))
    throw err
  } finally {
    c.down()
  }
}

let status = 0
try {
  log(`building the images (${COMPOSE.join(' ')}; ${buildEnv.DOCKER_BUILDKIT === '0' ? 'classic builder' : 'BuildKit'})`)
  const only = process.env['STRATA_DOCKER_PARTS']?.split(',') // e.g. "ab,scale-out,ssh,scale" while developing
  // Only the images the chosen parts use (the ssh image needs apt inside the build: slow).
  sh('docker', ['build', '-q', '--target', 'runtime', '-t', 'strata:runtime', '.'], { env: buildEnv })
  if (!only || only.includes('ssh')) sh('docker', ['build', '-q', '--target', 'ssh', '-t', 'strata:ssh', '.'], { env: buildEnv })
  if (!only || only.includes('scale-out')) sh('docker', ['build', '-q', '-f', 'docker/redis.Dockerfile', '-t', 'strata:redis', '.'], { env: buildEnv })
  log('images built')
  if (!only || only.includes('ab')) await partAB()
  if (!only || only.includes('scale-out')) await partScaleOut()
  if (!only || only.includes('ssh')) await partSsh()
  if (!only || only.includes('scale')) await partScale()
  log('all checks passed')
} catch (err) {
  status = 1
  console.error(`\n[test:docker] FAILED: ${err?.stack ?? err}`)
} finally {
  // Whatever happened: nothing of this project left behind.
  for (const files of [['docker-compose.yml', 'docker-compose.redis.yml'], ['docker-compose.yml', 'docker-compose.ssh.yml'], ['docker-compose.scale.yml']]) {
    cluster(files, ['scale-out']).down()
  }
  sh('docker', ['network', 'rm', 'myNet'], { capture: true, allowFail: true })
  log(`total ${secs(Date.now() - t0)} (${status === 0 ? 'passed' : 'FAILED'})`)
}
process.exit(status)
