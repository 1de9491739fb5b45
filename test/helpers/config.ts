import { expect } from 'vitest'
import { resolveConfig, ConfigError } from '../../src/config/load.js'

/** The smallest config the loader accepts. */
export const validConfig = { upstreams: [{ id: 'b1', url: 'http://127.0.0.1:3001' }] }

/** The problems the loader lists for `input` (which it must refuse with a ConfigError). */
export function configProblems(input: unknown): string[] {
  try {
    resolveConfig(input)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return [...(err as ConfigError).problems]
  }
  throw new Error('expected the config to be rejected')
}
