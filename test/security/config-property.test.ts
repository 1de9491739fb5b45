import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfigFile, resolveConfig, resolveUpstream } from '../../src/config/index.js'

/**
 * Generated configs through the loader: each one either loads (defaulted and frozen) or is
 * refused with a ConfigError whose every problem names the field it is about. Nothing else is
 * thrown, whatever the shape: a config file is input from outside (STYLE.md habit 15).
 */

const valid = { upstreams: [{ id: 'b1', url: 'http://127.0.0.1:3001' }] }

/** Every key the schema knows, by section, so mutations hit real fields as often as junk ones. */
const KEYS: Record<string, string[]> = {
  listen: ['host', 'port'],
  admin: ['enabled', 'host', 'port', 'token'],
  timeouts: ['connectMs', 'responseMs', 'idleMs', 'shutdownMs'],
  balancer: ['algorithm', 'sticky', 'healthCheck', 'retry', 'hashOn'],
  cache: ['enabled', 'memory', 'redis', 'rules', 'key', 'coalesce', 'defaultTtl', 'maxObjectBytes'],
  esi: ['enabled', 'paths', 'allowedHosts', 'credentialHosts', 'maxDepth', 'maxConcurrentIncludes', 'maxIncludes', 'fragmentTimeoutMs', 'onError', 'forwardHeaders', 'compress'],
  log: ['level', 'access'],
}
const SECTIONS = [...Object.keys(KEYS), 'upstreams', '$schema']

/** Values of every JSON type, with the awkward ones (empty, huge, negative, wrong type) likely. */
const value: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 65536, 1e308, '', 'x', '1s', '-5m', 'http://evil', '__proto__', 'constructor'),
  fc.integer(),
  fc.string(),
  fc.string({ maxLength: 3 }).map((s) => s.repeat(2000)),
  fc.array(fc.oneof(fc.string(), fc.integer(), fc.constant(null)), { maxLength: 4 }),
  fc.jsonValue({ maxDepth: 3 }),
)

const keyName = fc.oneof(fc.constantFrom(...SECTIONS), fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'a.b', 'x[0]', ': '))

/** Changes that keep the config valid, so the generator reaches configs that load. */
type Mutation = { path: (string | number)[]; v: unknown }
const benign = fc.constantFrom<Mutation>(
  { path: ['esi', 'maxDepth'], v: 3 },
  { path: ['esi', 'credentialHosts'], v: ['cdn.test', '[::1]:8080'] },
  { path: ['esi', 'onError'], v: 'fail' },
  { path: ['log', 'level'], v: 'debug' },
  { path: ['cache', 'enabled'], v: false },
  { path: ['listen', 'port'], v: 0 },
  { path: ['admin', 'enabled'], v: false },
  { path: ['balancer', 'algorithm'], v: 'least-connections' },
  { path: ['upstreams', 1], v: { id: 'b2', url: 'https://[::1]:8443' } },
)

/** A mutation of the valid config: set one (section, key) or a top-level key to some value. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  benign,
  fc.tuple(fc.constantFrom(...Object.keys(KEYS)), fc.oneof(fc.constantFrom(...Object.values(KEYS).flat()), fc.string({ maxLength: 10 })), value).map(([s, k, v]) => ({ path: [s, k], v })),
  fc.tuple(keyName, value).map(([k, v]) => ({ path: [k], v })),
  fc.tuple(fc.nat({ max: 3 }), fc.constantFrom('id', 'url', 'weight', 'backup', 'maxConnections', 'junk'), value).map(([i, k, v]) => ({ path: ['upstreams', i, k], v })),
)

function applyMutations(muts: { path: (string | number)[]; v: unknown }[]): unknown {
  const cfg = JSON.parse(JSON.stringify(valid)) as Record<string, unknown>
  for (const { path, v } of muts) {
    let o: Record<string | number, unknown> = cfg
    for (const p of path.slice(0, -1)) {
      const cur = o[p]
      if (cur === null || typeof cur !== 'object') o[p] = typeof p === 'number' || p === 'upstreams' ? [] : {}
      o = o[p] as Record<string | number, unknown>
    }
    // JSON.parse makes "__proto__" an own key; do the same here.
    Object.defineProperty(o, path[path.length - 1]!, { value: v, enumerable: true, writable: true, configurable: true })
  }
  return cfg
}

const configs = fc.oneof(
  { weight: 4, arbitrary: fc.array(mutation, { maxLength: 6 }).map(applyMutations) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.dictionary(keyName, value, { maxKeys: 6 }) },
)

/** Each problem starts with the field it is about: `(root)` or a path beginning with a key of the input or the schema. */
function namesAField(problem: string, input: unknown): boolean {
  if (problem.startsWith('(root): ')) return true
  const keys = input !== null && typeof input === 'object' && !Array.isArray(input) ? Object.keys(input) : []
  return [...keys, ...SECTIONS].some((k) => problem.startsWith(`[${JSON.stringify(k)}]`) || (k !== '' && (problem.startsWith(`${k}: `) || problem.startsWith(`${k}.`) || problem.startsWith(`${k}[`))))
}

function outcome(load: () => unknown, input: unknown): 'loaded' | 'refused' {
  try {
    const cfg = load()
    expect(Object.isFrozen(cfg)).toBe(true)
    return 'loaded'
  } catch (err) {
    if (!(err instanceof ConfigError)) throw new Error(`not a ConfigError for ${JSON.stringify(input)?.slice(0, 500)}: ${String((err as Error)?.stack ?? err)}`)
    expect(err.problems.length).toBeGreaterThan(0)
    for (const p of err.problems) {
      if (!namesAField(p, input)) throw new Error(`problem does not name a field: ${JSON.stringify(p)} for ${JSON.stringify(input)?.slice(0, 500)}`)
    }
    return 'refused'
  }
}

describe('config loader: generated configs', () => {
  it('either load or list problems that each name a field; never anything else', () => {
    const seen = { loaded: 0, refused: 0 }
    fc.assert(
      fc.property(configs, (input) => {
        const before = JSON.stringify(input)
        seen[outcome(() => resolveConfig(input), input)]++
        // The caller's object is never changed.
        expect(JSON.stringify(input)).toBe(before)
      }),
      { numRuns: 1500 },
    )
    // The generator reaches both sides (a property that only ever sees refusals proves little).
    expect(seen.loaded).toBeGreaterThan(20)
    expect(seen.refused).toBeGreaterThan(20)
  })

  it('wrong types where the cross-field rules look (lists, sticky, admin host) are problems, not TypeErrors', () => {
    const cases: unknown[] = [
      { ...valid, esi: { allowedHosts: 'a.test' } },
      { ...valid, esi: { credentialHosts: 5 } },
      { ...valid, cache: { key: { ignoreQuery: 'utm_*' } } },
      { ...valid, cache: { key: 'x' } },
      { ...valid, balancer: { sticky: [] } },
      { ...valid, admin: { host: 5 } },
      { upstreams: 'http://a' },
      { upstreams: [null, 5, 'x'] },
    ]
    for (const c of cases) expect(outcome(() => resolveConfig(c), c)).toBe('refused')
  })

  it('upstream entries from the admin API: problems or an entry, never a throw', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.dictionary(fc.constantFrom('id', 'url', 'weight', 'backup', 'x'), value)), (input) => {
        const r = resolveUpstream(input)
        if ('problems' in r) {
          expect(r.problems.length).toBeGreaterThan(0)
          for (const p of r.problems) expect(p).toMatch(/^(\(body\)|\(root\)|[A-Za-z_$][\w$-]*|\["(?:[^"\\]|\\.)*"\])[.[:]/)
        } else expect(Object.isFrozen(r.upstream)).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  const dir = mkdtempSync(join(tmpdir(), 'strata-cfgprop-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  it('config files with any bytes: a ConfigError naming the file or the field, never a crash', () => {
    let n = 0
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a).toString('latin1')), configs.map((c) => JSON.stringify(c) ?? '')), (text) => {
        const file = join(dir, `c${n++}.json`)
        writeFileSync(file, text)
        let parsed: unknown = undefined
        try {
          parsed = JSON.parse(text)
        } catch {
          // not JSON: the error must name the file
        }
        try {
          loadConfigFile(file)
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err
          for (const p of err.problems) expect(p.startsWith(`${file}: `) || namesAField(p, parsed)).toBe(true)
        }
      }),
      { numRuns: 300 },
    )
  })
})
