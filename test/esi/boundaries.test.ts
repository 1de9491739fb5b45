import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const dir = join(import.meta.dirname, '../../src/esi')
const files = readdirSync(dir).filter((f) => f.endsWith('.ts'))
const importsOf = (f: string) => [...readFileSync(join(dir, f), 'utf8').matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!)

describe('src/esi boundaries', () => {
  it('imports only node builtins, src/core, src/config, src/observability and itself (no fastify, no proxy/page-cache)', () => {
    for (const f of files) {
      for (const spec of importsOf(f)) {
        const ok = spec.startsWith('node:') || spec.startsWith('./') || /^\.\.\/(core|config|observability)\//.test(spec)
        expect(ok, `${f} imports ${spec}`).toBe(true)
      }
    }
  })

  it('the assembler (hot path) never parses: it does not import the compiler or the parsers', () => {
    const src = readFileSync(join(dir, 'assemble.ts'), 'utf8')
    expect(importsOf('assemble.ts')).not.toContain('./compile.js')
    for (const fn of ['parseExpression', 'parseInterpolated', 'parseVarRef', 'compile(']) expect(src.includes(fn), fn).toBe(false)
  })

  it('library code never logs through console', () => {
    for (const f of files) expect(readFileSync(join(dir, f), 'utf8')).not.toMatch(/console\./)
  })
})
