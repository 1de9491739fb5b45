import { Readable } from 'node:stream'
import type { EsiConfig } from '../config/schema.js'
import { StrataError } from '../core/errors.js'
import type { Headers } from '../core/headers.js'
import { silentLogger, type Logger } from '../observability/logger.js'
import { CacheControlFold } from './cache-control.js'
import { Cancel, IncludeTimeout, Semaphore } from './concurrency.js'
import { evaluate } from './expression.js'
import type { EsiInclude, EsiNode, EsiProgram } from './program.js'
import { credentialsAllowed, credentialTable, resolveIncludeSrc } from './resolve-src.js'
import { escapeHtml, RequestVars } from './variables.js'

/**
 * Program + request + fetcher → bytes, in document order, streamed.
 *
 * Assembly first walks the program once, synchronously: static chunks are taken as they are,
 * `choose` is decided, variables are resolved (once per request), and every include the page
 * needs is started at that moment (bounded by `esi.maxConcurrentIncludes`). The walk yields a
 * list of slots: ready Buffers and pending includes. Output walks the slots in order and writes
 * each as soon as it and everything before it are ready. Nothing is parsed here.
 */

/** What the fetcher returns for one include (body decoded: no Content-Encoding). */
export interface FragmentResponse {
  readonly statusCode: number
  readonly headers: Record<string, string | string[]>
  readonly body: Buffer
  /** Set when the fragment is itself an ESI template: it is assembled recursively. */
  readonly program?: EsiProgram
}

/**
 * Sends one include through strata's pipeline. `headers` holds only the `esi.forwardHeaders` of
 * the client request, without Cookie and Authorization unless the include is on the page's origin
 * or on a host in `esi.credentialHosts`; `signal` aborts on timeout, on a fatal failure and when the client leaves;
 * `depth` is 1 for the page's own includes.
 */
export type FragmentFetcher = (
  url: URL,
  init: { readonly headers: Record<string, string>; readonly signal: AbortSignal; readonly depth: number },
) => Promise<FragmentResponse>

export type FragmentLookup = (url: URL, init: { readonly headers: Record<string, string>; readonly depth: number }) => FragmentResponse | undefined

export type AssembleConfig = Pick<
  EsiConfig,
  'allowedHosts' | 'credentialHosts' | 'maxDepth' | 'maxConcurrentIncludes' | 'maxIncludes' | 'fragmentTimeoutMs' | 'onError' | 'forwardHeaders'
>

/** Client headers that carry the visitor's identity: sent only where `credentialsAllowed` says. */
const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['cookie', 'authorization'])

/**
 * The client headers an include carries (`esi.forwardHeaders`, lists joined): `forward` for the
 * page's origin and `esi.credentialHosts`, `anonymous` (no Cookie, no Authorization) for any
 * other host; `credentials` says whether the two differ. The one place this is decided, so a
 * caller that checks a fragment lookup again (AssembledPages) asks with the same headers.
 */
export function forwardedHeaders(headers: Headers, names: readonly string[]): { forward: Readonly<Record<string, string>>; anonymous: Readonly<Record<string, string>>; credentials: boolean } {
  const forward: Record<string, string> = {}
  const anonymous: Record<string, string> = {}
  let credentials = false
  for (const name of names) {
    const n = name.toLowerCase()
    const v = headers[n]
    if (v === undefined) continue
    const joined = Array.isArray(v) ? v.join(n === 'cookie' ? '; ' : ', ') : v
    forward[n] = joined
    if (!CREDENTIAL_HEADERS.has(n)) anonymous[n] = joined
    else credentials = true
  }
  // Objects shared by every fetch of the page: frozen so a fetcher cannot leak changes.
  return { forward: Object.freeze(forward), anonymous: Object.freeze(anonymous), credentials }
}

export interface AssembleContext {
  /** The URL the client asked for (relative `src` resolve against it; QUERY_STRING reads it). */
  readonly pageUrl: URL
  /** The client request headers, names lower-case. */
  readonly headers: Headers
  readonly fetch: FragmentFetcher
  /**
   * Answers an include from memory, synchronously, when it can (a fresh cached fragment): the
   * include then costs no promise, timer or abort signal. Undefined sends it to `fetch`.
   */
  readonly lookup?: FragmentLookup
  /**
   * Only what `lookup` answers: an include it cannot answer (or an `esi:try`, which needs a
   * settle step) fetches nothing and marks the assembly incomplete; see `completeSync`.
   */
  readonly memoryOnly?: boolean
  readonly config: AssembleConfig
  readonly logger?: Logger
  /** The template response's Cache-Control (folded into the client's Cache-Control). */
  readonly cacheControl?: string | string[]
  /** Aborts every pending include (the client went away). */
  readonly signal?: AbortSignal
  /** Depth of this program (0 for a page). */
  readonly depth?: number
  /** URLs already being assembled above this one (cycle detection); defaults to [pageUrl]. */
  readonly chain?: readonly string[]
}

export const FAILURE_REASONS = ['refused', 'cycle', 'depth', 'limit', 'timeout', 'status', 'error', 'nested'] as const
export type FailureReason = (typeof FAILURE_REASONS)[number]
/** How a failed include was handled: its `alt`, `onerror="continue"`, the enclosing try's except, `esi.onError`. */
export type FailureHandling = 'alt' | 'continue' | 'except' | 'ignored' | 'fatal' | 'nested'

export interface EsiIncludeFailure {
  /** The src (or alt) as rendered. */
  readonly src: string
  readonly reason: FailureReason
  readonly detail: string
  readonly depth: number
  handledBy: FailureHandling
}

export interface EsiResult {
  /** The client Cache-Control computed from the template and every fetched fragment. */
  readonly cacheControl: string
  readonly failed: readonly EsiIncludeFailure[]
  readonly anyFailed: boolean
  /** Set when an include failed with `esi.onError: "fail"` and nothing recovered it. */
  readonly fatal: StrataError | undefined
  /** Fetches started (src and alt, all depths). */
  readonly fetches: number
  /** True when `abort()` or `ctx.signal` ended the assembly early. */
  readonly aborted: boolean
}

export interface EsiHead {
  /** Set when the page failed fatally before its first byte: answer 502, send nothing. */
  readonly error?: StrataError
}

class Pending {
  value: Slot[] | undefined
  readonly promise: Promise<Slot[]>
  constructor(work: Promise<Slot[]>, state: State) {
    state.pendingCount++
    this.promise = work.then((v) => {
      this.value = v
      if (--state.pendingCount === 0) state.onSettled()
      return v
    })
  }
}
type Slot = Buffer | Pending

/** Resolves when every pending slot (recursively) has settled. */
async function settleAll(slots: readonly Slot[]): Promise<void> {
  for (const s of slots) {
    if (s instanceof Pending) await settleAll(s.value ?? (await s.promise))
  }
}

/** Where an include failure goes when neither alt nor onerror="continue" recovered it. */
interface Scope {
  readonly cancel: Cancel
  fail(f: EsiIncludeFailure): FailureHandling
}

/** Page level (and fragments under onError "continue"): `esi.onError` decides. */
class PageScope implements Scope {
  readonly cancel: Cancel
  readonly #state: State
  constructor(cancel: Cancel, state: State) {
    this.cancel = cancel
    this.#state = state
  }
  fail(f: EsiIncludeFailure): FailureHandling {
    if (this.#state.config.onError !== 'fail') return 'ignored'
    this.#state.setFatal(new StrataError('STRATA_ESI_FRAGMENT_FAILED', `ESI include ${f.src} failed (${f.reason}: ${f.detail})`))
    return 'fatal'
  }
}

/**
 * A scope whose first unrecovered failure cancels what still runs in it: inside `<esi:attempt>`
 * the except branch is then used; in a nested fragment under onError "fail" its include fails.
 */
class TrippingScope implements Scope {
  readonly cancel: Cancel
  readonly failedPromise: Promise<void>
  readonly #handling: FailureHandling
  #failed = false
  #onFail!: () => void

  constructor(parent: Cancel, handling: FailureHandling) {
    this.cancel = new Cancel(parent)
    this.#handling = handling
    this.failedPromise = new Promise((resolve) => (this.#onFail = resolve))
  }
  get failed(): boolean {
    return this.#failed
  }
  fail(): FailureHandling {
    if (!this.#failed) {
      this.#failed = true
      this.cancel.abort(new Error(`ESI scope failed (${this.#handling})`))
      this.#onFail()
    }
    return this.#handling
  }
}

interface Frag {
  readonly baseUrl: URL
  readonly depth: number
  readonly chain: readonly string[]
}

type FetchOutcome = { ok: true; slots: Slot[] } | { ok: false; failure: EsiIncludeFailure }

class State {
  readonly root = new Cancel()
  pendingCount = 0
  onSettled: () => void = () => {}
  readonly config: AssembleConfig
  readonly vars: RequestVars
  readonly log: Logger
  readonly cc = new CacheControlFold()
  readonly failures: EsiIncludeFailure[] = []
  readonly sem: Semaphore
  readonly fetch: FragmentFetcher
  readonly lookup: FragmentLookup | undefined
  readonly memoryOnly: boolean
  /** memoryOnly and something was not in memory: the output is not the page. */
  incomplete = false
  readonly pageUrl: URL
  /** The forwarded client headers, for the page's origin and `esi.credentialHosts`. */
  readonly forward: Readonly<Record<string, string>>
  /** The same without Cookie and Authorization, for every other (allowlisted) host. */
  readonly forwardAnonymous: Readonly<Record<string, string>>
  /** The request carries no credentials to withhold: every include gets `forward`. */
  readonly #noCredentials: boolean
  #credTable: WeakMap<URL, boolean> | undefined
  fetches = 0
  aborted = false
  fatal: StrataError | undefined
  #onFatal: ((e: StrataError) => void) | undefined
  #fatalPromise: Promise<StrataError> | undefined

  constructor(ctx: AssembleContext) {
    this.config = ctx.config
    this.vars = new RequestVars(ctx.headers, ctx.pageUrl)
    // The caller's logger is used as is (a child per page would cost more than the page).
    this.log = ctx.logger ?? silentLogger
    this.sem = new Semaphore(ctx.config.maxConcurrentIncludes)
    this.fetch = ctx.fetch
    this.lookup = ctx.lookup
    this.memoryOnly = ctx.memoryOnly === true
    this.pageUrl = ctx.pageUrl
    const f = forwardedHeaders(ctx.headers, ctx.config.forwardHeaders)
    this.forward = f.forward
    this.forwardAnonymous = f.anonymous
    this.#noCredentials = !f.credentials
  }

  /** The headers an include of `url` carries: credentials only to the page's origin and `esi.credentialHosts`. */
  headersFor(url: URL): Readonly<Record<string, string>> {
    if (this.#noCredentials) return this.forward
    const cfg = this.config
    this.#credTable ??= credentialTable(this.pageUrl, cfg.credentialHosts)
    return credentialsAllowed(url, this.pageUrl, cfg.credentialHosts, this.#credTable) ? this.forward : this.forwardAnonymous
  }

  /** Resolves with the fatal error, if one happens. Created on first use: a page assembled from memory never waits on it. */
  get fatalPromise(): Promise<StrataError> {
    if (this.#fatalPromise === undefined) {
      const fatal = this.fatal
      this.#fatalPromise = fatal !== undefined ? Promise.resolve(fatal) : new Promise((resolve) => (this.#onFatal = resolve))
    }
    return this.#fatalPromise
  }

  setFatal(err: StrataError): void {
    if (this.fatal) return
    this.fatal = err
    this.root.abort(err)
    this.#onFatal?.(err)
  }

  /** The program walk: static chunks as they are, choose decided, includes started. */
  plan(nodes: readonly EsiNode[], scope: Scope, frag: Frag, out: Slot[]): void {
    for (const node of nodes) {
      switch (node.type) {
        case 'text':
          out.push(node.bytes)
          break
        case 'var': {
          const v = this.vars.get(node.ref)
          const s = v === undefined || v === '' ? node.ref.fallback ?? '' : escapeHtml(String(v))
          if (s) out.push(Buffer.from(s))
          break
        }
        case 'include':
          if (this.lookup !== undefined && this.#fromMemory(node, scope, frag, out)) break
          if (this.memoryOnly) {
            this.incomplete = true
            return
          }
          out.push(new Pending(this.#include(node, scope, frag), this))
          break
        case 'choose': {
          // ESI 1.0 §3.3: the first when whose test is true, else otherwise. Branches not taken
          // are never walked, so their includes are never fetched.
          let body = node.otherwise
          for (const w of node.whens) {
            if (w.test !== null && evaluate(w.test, this.vars)) {
              body = w.body
              break
            }
          }
          if (body) this.plan(body, scope, frag, out)
          break
        }
        case 'try':
          if (this.memoryOnly) {
            this.incomplete = true
            return
          }
          out.push(new Pending(this.#try(node.attempt, node.except, scope, frag), this))
          break
      }
    }
  }

  /**
   * ESI 1.0 §3.4: the attempt's includes start at once; the first unrecovered failure abandons the
   * attempt (its other fetches are aborted) and only then are the except branch's includes started.
   */
  async #try(attempt: readonly EsiNode[], except: readonly EsiNode[], scope: Scope, frag: Frag): Promise<Slot[]> {
    try {
      const tryScope = new TrippingScope(scope.cancel, 'except')
      const slots: Slot[] = []
      this.plan(attempt, tryScope, frag, slots)
      await Promise.race([settleAll(slots), tryScope.failedPromise])
      if (!tryScope.failed) return slots
      if (scope.cancel.aborted) return []
      const out: Slot[] = []
      this.plan(except, scope, frag, out)
      return out
    } catch (err) {
      this.log.error({ err }, 'ESI try crashed')
      return []
    }
  }

  /**
   * The synchronous path for an include whose fragment is in memory and fresh: spliced in during
   * the walk. Returns false (and changes nothing) when the include must go through `fetch`.
   */
  #fromMemory(node: EsiInclude, scope: Scope, frag: Frag, out: Slot[]): boolean {
    const depth = frag.depth + 1
    if (depth > this.config.maxDepth || this.fetches >= this.config.maxIncludes || scope.cancel.aborted) return false
    const url = resolveIncludeSrc(this.vars.render(node.src, encodeURIComponent), frag.baseUrl, this.config.allowedHosts)
    if (!(url instanceof URL) || frag.chain.includes(url.href)) return false
    const res = this.lookup!(url, { headers: this.headersFor(url), depth })
    if (res === undefined || res.statusCode < 200 || res.statusCode > 299) return false
    // A nested template under onError "fail" must settle before it counts: the async path does that.
    if (res.program?.hasEsi && this.config.onError === 'fail') return false
    this.fetches++
    this.cc.add(res.headers['cache-control'])
    if (!res.program?.hasEsi) {
      if (res.body.length) out.push(res.body)
      return true
    }
    this.plan(res.program.nodes, new PageScope(scope.cancel, this), { baseUrl: url, depth, chain: [...frag.chain, url.href] }, out)
    return true
  }

  async #include(node: EsiInclude, scope: Scope, frag: Frag): Promise<Slot[]> {
    try {
      const src = this.vars.render(node.src, encodeURIComponent)
      const first = await this.#fetchOne(src, node, scope, frag)
      if (first.ok) return first.slots
      const failures = [first.failure]
      if (node.alt !== null && !scope.cancel.aborted) {
        const second = await this.#fetchOne(this.vars.render(node.alt, encodeURIComponent), node, scope, frag)
        if (second.ok) {
          this.#record(first.failure, 'alt')
          return second.slots
        }
        failures.push(second.failure)
      }
      if (scope.cancel.aborted) return []
      const handledBy: FailureHandling = node.continueOnError ? 'continue' : scope.fail(first.failure)
      for (const f of failures) this.#record(f, handledBy)
      return []
    } catch (err) {
      // Defensive: a bug here must not take the page down.
      this.log.error({ err }, 'ESI include crashed')
      return []
    }
  }

  #record(f: EsiIncludeFailure, handledBy: FailureHandling): void {
    f.handledBy = handledBy
    this.failures.push(f)
    this.log.warn({ src: f.src, reason: f.reason, detail: f.detail, depth: f.depth, handledBy }, 'ESI include failed')
  }

  async #fetchOne(src: string, node: EsiInclude, scope: Scope, frag: Frag): Promise<FetchOutcome> {
    const depth = frag.depth + 1
    const fail = (reason: FailureReason, detail: string): FetchOutcome => ({ ok: false, failure: { src, reason, detail, depth, handledBy: 'ignored' } })
    const url = resolveIncludeSrc(src, frag.baseUrl, this.config.allowedHosts)
    if (!(url instanceof URL)) return fail('refused', url.error)
    if (depth > this.config.maxDepth) return fail('depth', `deeper than esi.maxDepth (${this.config.maxDepth})`)
    if (frag.chain.includes(url.href)) return fail('cycle', `${url.href} includes itself`)
    if (this.fetches >= this.config.maxIncludes) return fail('limit', `more than esi.maxIncludes (${this.config.maxIncludes}) fetches`)
    this.fetches++

    const wait = this.sem.acquire()
    if (wait) await wait
    let res: FragmentResponse
    let timer: NodeJS.Timeout | undefined
    let onAbort: ((reason: unknown) => void) | undefined
    try {
      if (scope.cancel.aborted) return fail('error', 'aborted')
      const ms = node.maxwaitMs ?? this.config.fragmentTimeoutMs
      const ctl = new AbortController()
      // Rejecting here, not only aborting the signal, also covers a fetcher that ignores it.
      res = await new Promise<FragmentResponse>((resolve, reject) => {
        onAbort = (reason) => {
          ctl.abort(reason)
          reject(reason)
        }
        scope.cancel.on(onAbort)
        timer = setTimeout(() => {
          const e = new IncludeTimeout(ms)
          ctl.abort(e)
          reject(e)
        }, ms)
        this.fetch(url, { headers: this.headersFor(url), signal: ctl.signal, depth }).then(resolve, reject)
      })
    } catch (err) {
      if (err instanceof IncludeTimeout) return fail('timeout', err.message)
      return fail('error', err instanceof Error ? err.message : String(err))
    } finally {
      clearTimeout(timer)
      if (onAbort) scope.cancel.off(onAbort)
      this.sem.release()
    }

    // Non-2xx is a failed include (ESI 1.0 §3.1 leaves "failure" to the processor; a redirect or
    // error page is never spliced into the page).
    if (res.statusCode < 200 || res.statusCode > 299) return fail('status', `status ${res.statusCode}`)
    this.cc.add(res.headers['cache-control'])
    if (!res.program?.hasEsi) return { ok: true, slots: res.body.length ? [res.body] : [] }

    const child: Frag = { baseUrl: url, depth, chain: [...frag.chain, url.href] }
    if (this.config.onError !== 'fail') {
      // Streamed: the fragment's own includes are already running; its slots join the page's.
      const slots: Slot[] = []
      this.plan(res.program.nodes, new PageScope(scope.cancel, this), child, slots)
      return { ok: true, slots }
    }
    // Under "fail" a broken nested fragment fails this include (so this level's alt, try or
    // onerror can still recover it): wait for the fragment to settle before deciding.
    const fragScope = new TrippingScope(scope.cancel, 'nested')
    const slots: Slot[] = []
    this.plan(res.program.nodes, fragScope, child, slots)
    await Promise.race([settleAll(slots), fragScope.failedPromise])
    if (fragScope.failed) return fail('nested', `an include inside ${url.href} failed`)
    return { ok: true, slots }
  }
}

/**
 * One assembly of a page: an async iterable of Buffers in document order, plus `head` (resolves
 * when the first byte is ready, or with `error` when the page failed before it) and `result`
 * (resolves when every include settled). Includes run whether or not anyone iterates, so awaiting
 * `result` first and iterating afterwards gives a fully buffered page with exact headers.
 */
export class EsiAssembly implements AsyncIterable<Buffer> {
  readonly #state: State
  readonly #slots: Slot[]
  #head: Promise<EsiHead> | undefined
  #result: Promise<EsiResult> | undefined

  constructor(program: EsiProgram, ctx: AssembleContext) {
    const state = (this.#state = new State(ctx))
    if (ctx.signal) {
      const sig = ctx.signal
      if (sig.aborted) this.abort(sig.reason)
      else sig.addEventListener('abort', () => this.abort(sig.reason), { once: true })
    }
    state.cc.add(ctx.cacheControl)
    let chain = ctx.chain
    if (chain === undefined) {
      let href = ctx.pageUrl.href
      const hash = href.indexOf('#')
      if (hash !== -1) href = href.slice(0, hash)
      chain = [href]
    }
    const frag: Frag = { baseUrl: ctx.pageUrl, depth: ctx.depth ?? 0, chain }
    this.#slots = []
    state.plan(program.nodes, new PageScope(state.root, state), frag, this.#slots)
  }

  /**
   * Resolves when every include settled, with the client Cache-Control and the failures.
   * Created on first use: a page answered by `completeSync` never pays for it.
   */
  get result(): Promise<EsiResult> {
    if (this.#result === undefined) {
      const state = this.#state
      const done = state.pendingCount === 0 ? Promise.resolve() : new Promise<void>((resolve) => (state.onSettled = resolve))
      this.#result = done.then(
        (): EsiResult => ({
          cacheControl: state.cc.toString(),
          failed: state.failures,
          anyFailed: state.failures.length > 0,
          fatal: state.fatal,
          fetches: state.fetches,
          aborted: state.aborted,
        }),
      )
    }
    return this.#result
  }

  /** Resolves when the first byte is ready, or with `error` when the page failed before it. */
  get head(): Promise<EsiHead> {
    this.#head ??= Promise.race([firstByte(this.#slots, this.#state), this.#state.fatalPromise.then((error) => ({ error }))])
    return this.#head
  }

  /**
   * The whole page, synchronously, when nothing is pending (every include was answered from
   * memory during the walk), with the client Cache-Control; undefined otherwise.
   */
  completeSync(): { page: Buffer; cacheControl: string } | undefined {
    const state = this.#state
    if (state.incomplete || state.pendingCount !== 0 || state.fatal) return undefined
    return { page: Buffer.concat(this.#slots as Buffer[]), cacheControl: state.cc.toString() }
  }

  /** Stops every pending include (the client went away). Output then ends early. */
  abort(reason?: unknown): void {
    if (this.#state.root.aborted) return
    this.#state.aborted = true
    this.#state.root.abort(reason ?? new Error('ESI assembly aborted'))
  }

  /**
   * Yields the page in document order. Throws the StrataError (STRATA_ESI_FRAGMENT_FAILED) when the
   * page fails fatally; a caller that already sent bytes can only cut the response.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const state = this.#state
    const walk = walkSlots(this.#slots)
    let finished = false
    try {
      for (let step = walk.next(); !step.done; ) {
        if (state.fatal) throw state.fatal
        const s = step.value
        if (s instanceof Pending) {
          step = walk.next(await this.#settled(s))
        } else {
          yield s
          step = walk.next()
        }
      }
      if (state.fatal) throw state.fatal
      finished = true
    } finally {
      // The consumer stopped early (break, destroyed stream): stop fetching for nobody.
      if (!finished && !state.fatal) this.abort()
    }
  }

  /**
   * Writes the page to `write` in document order: ready chunks are written synchronously one after
   * another (no microtask per chunk, unlike the async iterator); only pending includes are awaited.
   * `write` may return a promise to apply backpressure, e.g.
   * `(c) => (res.write(c) ? undefined : once(res, 'drain'))`. Rejects like the iterator throws.
   */
  async writeTo(write: (chunk: Buffer) => void | Promise<unknown>): Promise<void> {
    const state = this.#state
    const walk = walkSlots(this.#slots)
    let finished = false
    try {
      for (let step = walk.next(); !step.done; ) {
        if (state.fatal) throw state.fatal
        const s = step.value
        if (s instanceof Pending) {
          step = walk.next(await this.#settled(s))
        } else {
          const w = write(s)
          if (w) await w
          step = walk.next()
        }
      }
      if (state.fatal) throw state.fatal
      finished = true
    } finally {
      if (!finished && !state.fatal) this.abort()
    }
  }

  /** The slots of a pending include once it settles; throws the page's fatal error if that comes first. */
  async #settled(p: Pending): Promise<Slot[]> {
    if (p.value !== undefined) return p.value
    const r = await Promise.race([p.promise, this.#state.fatalPromise])
    if (r instanceof StrataError) throw r
    return r
  }

  /** A byte stream of the page (errors with the StrataError on a fatal failure). */
  toReadable(): Readable {
    return Readable.from(this, { objectMode: false })
  }

  /** The whole page (waits for every include); for tests and buffered callers. */
  async toBuffer(): Promise<Buffer> {
    const chunks: Buffer[] = []
    await this.writeTo((c) => void chunks.push(c))
    return Buffer.concat(chunks)
  }
}

/**
 * The page's slots in document order, depth first: ready Buffers as they are; a pending include is
 * yielded once, and the caller resumes the walk with its settled slots (`next(slots)`).
 */
function* walkSlots(slots: readonly Slot[]): Generator<Buffer | Pending, void, Slot[] | undefined> {
  const stack: { slots: readonly Slot[]; i: number }[] = [{ slots, i: 0 }]
  while (stack.length) {
    const top = stack[stack.length - 1]!
    if (top.i >= top.slots.length) {
      stack.pop()
      continue
    }
    const s = top.slots[top.i++]!
    if (!(s instanceof Pending)) {
      yield s
      continue
    }
    const settled = s.value ?? (yield s)
    if (settled !== undefined) stack.push({ slots: settled, i: 0 })
  }
}

async function firstByte(slots: readonly Slot[], state: State): Promise<EsiHead> {
  const walk = walkSlots(slots)
  for (let step = walk.next(); !step.done; ) {
    if (state.fatal) return { error: state.fatal }
    const s = step.value
    if (s instanceof Pending) step = walk.next(s.value ?? (await s.promise))
    else if (s.length) return {}
    else step = walk.next()
  }
  return state.fatal ? { error: state.fatal } : {}
}

/**
 * Assembles a compiled page for one request. Never throws; see EsiAssembly for the output side.
 * A program with `hasEsi: false` yields nothing: such pages are served as stored.
 */
export function assemble(program: EsiProgram, ctx: AssembleContext): EsiAssembly {
  return new EsiAssembly(program, ctx)
}
