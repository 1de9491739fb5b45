import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runLoad, type LoadReport } from '../../src/load/run.js'
import { startBehind } from '../helpers/strata.js'
import type { Handler, Origin } from '../helpers/origin.js'
import type { RunningStrata } from '../helpers/strata.js'

// A real strata in front of two real origins, loaded by `strata load` for a second with a few
// connections. The numbers vary with the machine; what must hold is their consistency with each
// other and with what the origins counted.
const handler = (id: string): Handler => (req, res) => {
  const body = `page ${req.url} from ${id}`
  if (req.url === '/page') res.writeHead(200, { 'cache-control': 'public, max-age=3600', 'x-served-by': id, 'content-length': Buffer.byteLength(body) })
  else res.writeHead(200, { 'cache-control': 'no-store', 'x-served-by': id, 'server-timing': 'esi;dur=2.5', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

let origins: Origin[]
let s: RunningStrata
let close: () => Promise<void>
const dir = mkdtempSync(join(tmpdir(), 'strata-load-'))
beforeAll(async () => {
  ;({ origins, s, close } = await startBehind([handler('web1'), handler('web2')], { balancer: { algorithm: 'round-robin' } }))
})
afterAll(async () => {
  await close()
  rmSync(dir, { recursive: true, force: true })
})

const originHits = () => origins.reduce((a, o) => a + o.requests.length, 0)
const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0)

describe('strata load', () => {
  let report: LoadReport
  let hitsDuringRun: number
  beforeAll(async () => {
    const before = originHits()
    report = await runLoad({ url: `${s.url}/`, connections: 4, durationSeconds: 1, paths: ['/page', '/pass'], admin: { url: s.adminUrl, token: s.token } })
    hitsDuringRun = originHits() - before
  })

  it('counts every answered response once, in the status codes and in the cache outcomes', () => {
    expect(report.responses).toBeGreaterThan(10)
    expect(sum(report.statusCodes)).toBe(report.responses)
    expect(report.statusCodes['200']).toBe(report.responses)
    expect(sum(report.cache)).toBe(report.responses)
    expect(report.cache.NONE).toBe(0)
    expect(report.warnings.filter((w) => w.startsWith('cache fields'))).toEqual([])
  })

  it('sees the cacheable path hit and the no-store path go to the origin, and the hit ratio from them', () => {
    // Only /pass carries Server-Timing, so its count is the number of /pass responses. Each
    // connection alternates /page and /pass: about half, give or take one per connection.
    const passes = report.esi!.count
    expect(report.esi!.meanMs).toBe(2.5)
    expect(Math.abs(passes - report.responses / 2)).toBeLessThanOrEqual(4)
    // A no-store answer is a MISS (uncacheable) or a PASS; /page is one fill (concurrent misses
    // coalesce, at most one per connection) and then hits.
    expect(report.cache.HIT + report.cache.MISS + report.cache.PASS).toBe(report.responses)
    expect(report.cache.HIT).toBeLessThanOrEqual(report.responses - passes - 1)
    expect(report.cache.HIT).toBeGreaterThanOrEqual(report.responses - passes - 4)
    expect(report.hitRatio).toBeCloseTo(report.cache.HIT / report.responses, 10)
  })

  it('reads the spread over upstreams from the admin API, matching what the origins counted', () => {
    expect(report.upstreams?.source).toBe('admin')
    const counts = report.upstreams!.counts
    expect(Object.keys(counts).sort()).toEqual(['b1', 'b2'])
    // Every origin request is an upstream attempt; strata counts one when it completes, so the
    // few in flight when the load stopped (one per connection at most) may be missing.
    expect(sum(counts)).toBeLessThanOrEqual(hitsDuringRun)
    expect(sum(counts)).toBeGreaterThanOrEqual(hitsDuringRun - 4)
    expect(Math.abs(counts['b1']! - counts['b2']!)).toBeLessThanOrEqual(6)
  })

  it('reports its own CPU share and warns only when it passes the saturation mark', () => {
    expect(report.generator.cpuPercentOfOneCore).toBeGreaterThan(0)
    expect(report.generator.saturated).toBe(report.generator.cpuPercentOfOneCore >= 90)
    expect(report.warnings.some((w) => w.includes('the load generator used'))).toBe(report.generator.saturated)
  })

  it('takes the upstream from a named response header instead, over every response', async () => {
    const r = await runLoad({ url: `${s.url}/pass`, connections: 2, durationSeconds: 1, upstreamHeader: 'X-Served-By' })
    expect(r.upstreams?.source).toBe('header')
    expect(sum(r.upstreams!.counts)).toBe(r.responses)
    expect(Object.keys(r.upstreams!.counts).sort()).toEqual(['web1', 'web2'])
    expect(r.cache.PASS + r.cache.MISS).toBe(r.responses)
    expect(r.hitRatio).toBe(0)
  })

  it('fails clearly when nothing answers', async () => {
    const port = (await import('../helpers/ports.js')).freePort
    const url = `http://127.0.0.1:${await port()}/`
    await expect(runLoad({ url, connections: 1, durationSeconds: 1 })).rejects.toThrow(/no response from/)
  })
})

// The CLI as users run it: the compiled bin (npm test builds first).
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname
// Asynchronous: the strata under load runs in this process, so a blocking spawnSync would stall it.
const cli = async (...args: string[]) => {
  const child = spawn(process.execPath, [CLI, 'load', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d))
  child.stderr.on('data', (d: Buffer) => (stderr += d))
  const [status] = (await once(child, 'close')) as [number | null]
  return { status, stdout, stderr }
}

describe('strata load (CLI)', () => {
  it('prints the report as JSON with --json, reading paths from a file', async () => {
    const paths = join(dir, 'paths.txt')
    writeFileSync(paths, '# cacheable\n/page\n')
    const r = await cli(`${s.url}/`, '--connections', '2', '--duration', '1', '--paths', paths, '--json', '--admin', s.adminUrl, '--token', s.token)
    expect(r.status, r.stderr).toBe(0)
    const report = JSON.parse(r.stdout) as LoadReport
    expect(report.paths).toBe(1)
    expect(report.cache.HIT).toBe(report.responses)
    expect(report.hitRatio).toBe(1)
    // Hits reach no upstream.
    expect(sum(report.upstreams!.counts)).toBe(0)
  })

  it('prints a table by default', async () => {
    const r = await cli(`${s.url}/page`, '--connections', '1', '--duration', '1s')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/hit ratio\s+100\.0%/)
    expect(r.stdout).toMatch(/latency ms\s+p50/)
  })

  it('refuses bad arguments with exit 2 and a clear message', async () => {
    expect((await cli()).stderr).toContain('load needs a url')
    const bad = [
      [['ftp://x/'], 'not an http(s) URL'],
      [[`${s.url}/`, '--connections', '0'], '--connections takes'],
      [[`${s.url}/`, '--duration', 'soon'], 'is not a duration'],
      [[`${s.url}/`, '--admin', s.adminUrl], '--admin and --token go together'],
      [[`${s.url}/`, '--paths', join(dir, 'missing.txt')], 'missing.txt'],
    ] as const
    for (const [args, msg] of bad) {
      const r = await cli(...args)
      expect(r.status, args.join(' ')).toBe(2)
      expect(r.stderr).toContain(msg)
    }
  })

  it('exits 3 with the admin answer when the token is wrong', async () => {
    const r = await cli(`${s.url}/page`, '--duration', '1', '--admin', s.adminUrl, '--token', 'wrong')
    expect(r.status).toBe(3)
    expect(r.stderr).toContain('answered 401 (check --token)')
  })
})
