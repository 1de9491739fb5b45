import { afterAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LineWriter, PIPE_BUF } from '../../src/observability/line-writer.js'

const dir = mkdtempSync(join(tmpdir(), 'strata-lines-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

/** A non-blocking FIFO: the write end for a LineWriter, the read end as a paused socket. */
function fifo(): { path: string; writeFd: number; reader: Socket; read: () => Promise<string> } {
  const path = join(dir, `f${n++}`)
  execFileSync('mkfifo', [path])
  const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  const writeFd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK)
  const reader = new Socket({ fd: readFd, readable: true, writable: false })
  reader.pause()
  let out = ''
  reader.on('data', (d: Buffer) => (out += d.toString()))
  const ended = new Promise<void>((resolve) => reader.once('end', resolve))
  return {
    path,
    writeFd,
    reader,
    read: async () => {
      reader.resume()
      await ended
      return out
    },
  }
}

const line = (i: number, pad = 100) => `{"i":${i},"pad":"${'x'.repeat(pad)}"}\n`

describe('LineWriter', () => {
  it('close() with nothing queued resolves at once, and the file gets every line in order', async () => {
    const file = join(dir, 'plain.log')
    const fd = openSync(file, 'w')
    const w = new LineWriter(fd, { batchChars: 1000 })
    await w.close()
    const w2 = new LineWriter(openSync(file, 'w'), { batchChars: 1000 })
    for (let i = 0; i < 500; i++) w2.write(line(i))
    w2.writeNow(line(500))
    await w2.close()
    const got = readFileSync(file, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { i: number }).i)
    expect(got).toEqual(Array.from({ length: 501 }, (_, i) => i))
    expect(w2.dropped).toBe(0)
  })

  it('past maxChars drops new lines, counts them and says so in a warning line once the reader catches up', async () => {
    const f = fifo()
    const w = new LineWriter(f.writeFd, { batchChars: 1000, maxChars: 20_000 })
    // ≈ 110 chars a line: 64 KiB of pipe + 20 000 chars of queue hold about 780 of 3000.
    for (let i = 0; i < 3000; i++) {
      w.write(line(i))
      if (i % 50 === 0) await new Promise((r) => setImmediate(r))
    }
    expect(w.dropped).toBeGreaterThan(0)
    const dropped = w.dropped
    const closed = w.close()
    // close() closes the descriptor it was given (sonic-boom's end), so the reader sees EOF.
    const text = await Promise.all([f.read(), closed]).then(([t]) => t)
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as { i?: number; dropped?: number; level?: number })
    const kept = lines.filter((l) => l.i !== undefined).map((l) => l.i!)
    // Whole lines, in order, none twice; the missing ones are exactly the counted ones.
    expect(kept).toEqual([...kept].sort((a, b) => a - b))
    expect(new Set(kept).size).toBe(kept.length)
    expect(kept.length + dropped).toBe(3000)
    const reports = lines.filter((l) => l.dropped !== undefined)
    expect(reports.reduce((s, l) => s + l.dropped!, 0)).toBe(dropped)
    expect(reports.every((l) => l.level === 40)).toBe(true)
  })

  it('a reader that goes away (EPIPE) drops lines without throwing', async () => {
    const f = fifo()
    f.reader.destroy()
    const w = new LineWriter(f.writeFd, { batchChars: 100 })
    for (let i = 0; i < 100; i++) w.writeNow(line(i))
    await w.close(1000)
    expect(w.dropped).toBeGreaterThan(0)
    w.write(line(101))
    try {
      closeSync(f.writeFd)
    } catch {
      // already closed by the writer
    }
  })

  it('with atomicBytes, two writers on one pipe (the workers on one stdout) never cut into each other\'s lines', async () => {
    const f = fifo()
    // A second write end on the same FIFO: another process's stdout.
    const second = openSync(f.path, constants.O_WRONLY | constants.O_NONBLOCK)
    const writers = [new LineWriter(f.writeFd, { atomicBytes: PIPE_BUF }), new LineWriter(second, { atomicBytes: PIPE_BUF })]
    const mark = ['a', 'b']
    // Both fill the paused pipe, then race for it as the reader drains it.
    for (let i = 0; i < 3000; i++) {
      writers.forEach((w, k) => w.write(`{"w":"${mark[k]}","i":${i},"pad":"${mark[k]!.repeat(300)}"}\n`))
      if (i % 100 === 0) await new Promise((r) => setImmediate(r))
    }
    const text = f.read()
    await Promise.all(writers.map((w) => w.close()))
    const lines = (await text).trim().split('\n')
    expect(lines).toHaveLength(6000)
    for (const l of lines) {
      const o = JSON.parse(l) as { w: string; pad: string }
      expect(o.pad).toBe(o.w.repeat(300))
    }
  })
})

