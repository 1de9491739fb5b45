import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

/**
 * Keeps the layering true: cli → cluster → app → proxy/admin → page-cache, esi, balancer, data-cache →
 * observability → core. The tiers never import each other, and only proxy/ and admin/ import
 * fastify, so every tier is testable without a server.
 */
const SRC = join(import.meta.dirname, '../src')

function filesIn(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? filesIn(p) : p.endsWith('.ts') ? [p] : []
  })
}
const importsOf = (file: string) =>
  [...readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm)].map((m) => (m[1] ?? m[2])!)

/** The src/ folder an import inside `file` lands in, or undefined for packages and builtins. */
function targetFolder(file: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined
  const abs = join(file, '..', spec)
  return relative(SRC, abs).split('/')[0]
}

const TIERS = ['page-cache', 'esi', 'balancer', 'data-cache']
const ALLOWED: Record<string, readonly string[]> = {
  core: ['core'],
  config: ['config', 'core'],
  observability: ['observability', 'core'],
  'page-cache': ['page-cache', 'core', 'config', 'observability'],
  esi: ['esi', 'core', 'config', 'observability'],
  balancer: ['balancer', 'core', 'config', 'observability'],
  'data-cache': ['data-cache', 'core', 'config', 'observability'],
  // Routes and pools: what the request path asks before the cache and the balancer.
  routing: ['routing', 'balancer', 'core', 'config', 'observability'],
  proxy: ['proxy', 'routing', ...TIERS, 'core', 'config', 'observability'],
  admin: ['admin', 'routing', ...TIERS, 'core', 'config', 'observability'],
  demo: ['demo', 'data-cache', 'core', 'config', 'observability', 'app.js'],
  // Between cli and app: the primary and worker processes of `"workers": N`.
  cluster: ['cluster', 'admin', 'core', 'config', 'observability', 'app.js'],
  // `strata load`: a client of strata over HTTP, so it needs none of strata's own modules.
  load: ['load', 'core'],
}

describe('architecture', () => {
  for (const [folder, allowed] of Object.entries(ALLOWED)) {
    it(`src/${folder} imports only ${allowed.join(', ')}`, () => {
      for (const file of filesIn(join(SRC, folder))) {
        for (const spec of importsOf(file)) {
          const target = targetFolder(file, spec)
          if (target === undefined) continue
          expect(allowed.includes(target) || target === 'version.js', `${relative(SRC, file)} imports ${spec}`).toBe(true)
        }
      }
    })
  }

  it('only proxy/, admin/ and app.ts import fastify', () => {
    for (const file of filesIn(SRC)) {
      const rel = relative(SRC, file)
      if (rel.startsWith('proxy/') || rel.startsWith('admin/') || rel === 'app.ts') continue
      for (const spec of importsOf(file)) expect(spec.startsWith('fastify') || spec.startsWith('@fastify/'), `${rel} imports ${spec}`).toBe(false)
    }
  })

  it('library code never logs through console', () => {
    for (const file of filesIn(SRC)) {
      if (file.endsWith('cli.ts')) continue
      expect(readFileSync(file, 'utf8'), relative(SRC, file)).not.toMatch(/\bconsole\.(log|error|warn|info)\(/)
    }
  })
})
