/** The ESI engine: compile a template once, assemble it per request with an injected fetcher. */
export { isEsiResponse, parseSurrogateControl, surrogateWantsEsi, SURROGATE_CAPABILITY, SURROGATE_DEVICE } from './activation.js'
export type { SurrogateDirective } from './activation.js'
export { compile } from './compile.js'
export { prepareEsi } from './prepare.js'
export type { CompileOptions } from './compile.js'
export { NO_ESI } from './program.js'
export type { EsiProgram, EsiNode, EsiInclude, EsiWarning } from './program.js'
export { assemble, EsiAssembly, FAILURE_REASONS, forwardedHeaders } from './assemble.js'
export type {
  AssembleConfig,
  AssembleContext,
  EsiHead,
  EsiIncludeFailure,
  EsiResult,
  FailureHandling,
  FailureReason,
  FragmentFetcher,
  FragmentLookup,
  FragmentResponse,
} from './assemble.js'
export { resolveIncludeSrc, isForbiddenAddress, credentialsAllowed, credentialTable } from './resolve-src.js'
export { CacheControlFold, parsePartLifetime } from './cache-control.js'
export { parseExpression, evaluate } from './expression.js'
export { RequestVars, escapeHtml, parseUserAgent, VARIABLE_NAMES } from './variables.js'
export { AssembledPages, keepable, varyKeepable } from './assembled-pages.js'
export type { AssembledPage, AssembledPagesOptions, KeepVerdict } from './assembled-pages.js'
