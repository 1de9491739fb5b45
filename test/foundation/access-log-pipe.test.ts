import { afterAll, describe, expect, it } from 'vitest'
import { execFileSync, spawn } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { startOrigin } from '../helpers/origin.js'

// `strata serve | tee log` with a reader that falls behind: stdout is a non-blocking pipe that
// fills up (64 KiB on Linux), so the access log's writes get EAGAIN and partial writes for a
// while. Every access line must still arrive, in full, once the reader catches up. Run on the
// compiled bin, as users run it (npm test builds first).
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), 'strata-pipe-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const REQUESTS = 600
// Long URLs make each line ≈ 450 bytes: 600 of them are ≈ 4× what the pipe holds.
const PAD = 'p'.repeat(300)

describe('access log on a pipe that fills', () => {
  it(`keeps all ${REQUESTS} access lines when stdout is a full non-blocking pipe for a while`, async () => {
    const origin = await startOrigin((_q, r) => {
      r.writeHead(200, { 'cache-control': 'public, max-age=60' })
      r.end('ok')
    })
    const cfg = join(dir, 'serve.json')
    writeFileSync(cfg, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, admin: { enabled: false }, upstreams: [{ id: 'b1', url: origin.url }] }))
    const fifo = join(dir, 'stdout.fifo')
    execFileSync('mkfifo', [fifo])
    // Both ends non-blocking (O_NONBLOCK lives on the shared open file description, so the child's
    // stdout is non-blocking too, as Node leaves a pipe it was handed).
    const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
    const writeFd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)
    const child = spawn(process.execPath, [CLI, 'serve', '--config', cfg], { stdio: ['ignore', writeFd, 'pipe'] })
    closeSync(writeFd)
    let stderr = ''
    child.stderr!.on('data', (d) => (stderr += d))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
    const reader = new Socket({ fd: readFd, readable: true, writable: false })
    let out = ''
    const eof = new Promise<void>((resolve) => reader.once('end', resolve))
    reader.on('data', (d: Buffer) => (out += d.toString()))
    try {
      const proxyUrl = await new Promise<string>((resolve, reject) => {
        const onData = () => {
          const line = out.split('\n').find((l) => l.includes('"listening"'))
          if (line === undefined) return
          reader.off('data', onData)
          resolve((JSON.parse(line) as { listening: { proxy: { url: string } } }).listening.proxy.url)
        }
        reader.on('data', onData)
        child.once('exit', () => reject(new Error(`strata exited: ${stderr}`)))
      })
      // Stop reading: the pipe fills and stays full while the requests run.
      reader.pause()
      let next = 0
      const statuses: number[] = []
      const worker = async () => {
        while (next < REQUESTS) {
          const i = next++
          const res = await request(`${proxyUrl}/page?i=${i}&pad=${PAD}`)
          await res.body.dump()
          statuses.push(res.statusCode)
        }
      }
      await Promise.all(Array.from({ length: 8 }, worker))
      expect(statuses.filter((s) => s === 200)).toHaveLength(REQUESTS)
      // The reader catches up; strata is told to stop and must write out what it still holds.
      reader.resume()
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
      await eof
      const lines = out.split('\n').filter((l) => l.includes('"msg":"request"'))
      const broken = lines.filter((l) => {
        try {
          JSON.parse(l)
          return false
        } catch {
          return true
        }
      })
      // (A second writer on fd 1 once cut a batch in half with its "shutting down" line.)
      expect(broken).toEqual([])
      // Every line whole and valid, each request exactly once.
      const seen = new Set(lines.map((l) => new URL((JSON.parse(l) as { url: string }).url, 'http://x').searchParams.get('i')))
      expect(lines).toHaveLength(REQUESTS)
      expect(seen.size).toBe(REQUESTS)
      expect(stderr).toBe('')
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
      reader.destroy()
      await origin.close()
    }
  }, 60_000)
})
