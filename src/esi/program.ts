import type { Expr } from './expression.js'
import type { Interpolated, VarRef } from './variables.js'

/**
 * The compiled form of an ESI template (the Varnish habit: parse once when the template is
 * fetched; a hit only walks this list). Static text is pre-encoded Buffers; everything that
 * depends on the request is an instruction.
 */
export type EsiNode =
  /** Static bytes, written as they are. */
  | { readonly type: 'text'; readonly bytes: Buffer }
  /** A variable inside `<esi:vars>`, written HTML-escaped. */
  | { readonly type: 'var'; readonly ref: VarRef }
  | EsiInclude
  | {
      readonly type: 'choose'
      /** `test` is null when the expression did not parse (never true). */
      readonly whens: readonly { readonly test: Expr | null; readonly body: readonly EsiNode[] }[]
      readonly otherwise: readonly EsiNode[] | null
    }
  | { readonly type: 'try'; readonly attempt: readonly EsiNode[]; readonly except: readonly EsiNode[] }

export interface EsiInclude {
  readonly type: 'include'
  /** `src` as written, with its variables (URL-encoded when rendered). */
  readonly src: Interpolated | string
  readonly alt: Interpolated | string | null
  /** `onerror="continue"` (ESI 1.0 §3.1). */
  readonly continueOnError: boolean
  /** Akamai's `maxwait="ms"`: overrides `esi.fragmentTimeoutMs` for this include. */
  readonly maxwaitMs: number | null
  /** Byte offset of the tag in the template, for logs. */
  readonly offset: number
}

export interface EsiWarning {
  /** A stable short code, e.g. `unknown-element`, `unclosed-element`, `stray-close`. */
  readonly code: string
  readonly message: string
  /** Byte offset in the template. */
  readonly offset: number
}

export interface EsiProgram {
  /** False when the template has no ESI markup: serve it as stored, keep no program. */
  readonly hasEsi: boolean
  readonly nodes: readonly EsiNode[]
  readonly warnings: readonly EsiWarning[]
  /** Includes in the template, all branches counted (an upper bound of the fetches per view). */
  readonly includeCount: number
  /** True when output depends on request variables (vars, when, variables in src). */
  readonly usesVariables: boolean
}

/** The one program for templates without ESI (no allocation per template). */
export const NO_ESI: EsiProgram = Object.freeze({
  hasEsi: false,
  nodes: Object.freeze([]) as readonly EsiNode[],
  warnings: Object.freeze([]) as readonly EsiWarning[],
  includeCount: 0,
  usesVariables: false,
})
