import { gunzipSync } from 'node:zlib'
import type { EsiConfig } from '../config/schema.js'
import type { Headers } from '../core/headers.js'
import type { Logger } from '../observability/logger.js'
import { isEsiResponse } from './activation.js'
import { compile } from './compile.js'
import type { EsiProgram } from './program.js'

/**
 * The page cache's `prepare(entry)` hook: called once when a response enters memory. Returns the
 * compiled program to keep next to the stored body, or undefined when the response is not an ESI
 * template (not marked, ESI disabled, or marked but without any ESI markup): such entries keep
 * no program and are served as stored. `body` is as stored: a gzip body (`encoding: 'gzip'`) is
 * decoded only once the response is known to be a template, so other stored responses cost nothing.
 */
export function prepareEsi(
  entry: { readonly headers: Headers; readonly body: Buffer; readonly path: string; readonly encoding?: string },
  config: Pick<EsiConfig, 'enabled' | 'paths'>,
  logger?: Logger,
): EsiProgram | undefined {
  if (!isEsiResponse(entry.headers, entry.path, config)) return undefined
  const body = entry.encoding === 'gzip' ? gunzipSync(entry.body) : entry.body
  const program = compile(body, logger ? { logger } : {})
  return program.hasEsi ? program : undefined
}
