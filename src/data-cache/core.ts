import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Logger } from '../observability/logger.js'
import type { Clock } from '../core/clock.js'
import { StrataError } from '../core/errors.js'
import { parseDuration } from '../core/duration.js'
import type { ResolvedOptions, Duration } from './options.js'
import { L1Store } from './l1.js'
import { RedisTier } from './l2.js'
import { busCodec, type BusPayload } from './bus.js'
import { RedisBus } from '../core/redis-bus.js'
import { createClients } from '../core/redis.js'
import { encodeRecord, makeEntry, NO_TAGS, payloadSize, type Entry } from './entry.js'
import { channelOf, type ViewKeys } from './keys.js'
import type { DataCacheEventName, DataCacheEvents, DataCacheStats, GetOrSetOptions, Loader, SetOptions, Tier } from './types.js'

/**
 * One in-process load of a key, shared by every concurrent caller (single-flight). Callers first
 * await `l2` (the shared L2 read); if that had nothing fresh they wait for `result` as long as
 * their soft/hard timeouts allow. `result` keeps running after callers gave up: that is the
 * background refresh.
 */
interface Flight {
  stale: Entry | undefined
  l2: Promise<Entry | undefined>
  result: Promise<Entry>
  done: Entry | undefined
  /** Resolves when the flight passed its hard timeout and was given up. */
  expired: Promise<void>
}

const noop = () => {}
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
const MAX_TAG_LENGTH = 1024

function badOption(message: string): StrataError {
  return new StrataError('STRATA_DATA_CACHE_OPTIONS', message)
}

function durationOr(value: Duration | undefined, fallback: number, field: string): number {
  return value === undefined ? fallback : parseDuration(value, field)
}

function checkKey(key: unknown): void {
  if (typeof key !== 'string') throw badOption(`data-cache key must be a string (got ${typeof key})`)
}

function checkTags(tags: unknown): readonly string[] {
  if (tags === undefined) return NO_TAGS
  if (!Array.isArray(tags)) throw badOption('data-cache option tags: must be an array of strings')
  for (const t of tags) {
    if (typeof t !== 'string' || t === '' || t.length > MAX_TAG_LENGTH) {
      throw badOption(`data-cache option tags: ${JSON.stringify(t)} is not a non-empty string of at most ${MAX_TAG_LENGTH} chars`)
    }
  }
  return tags.length === 0 ? NO_TAGS : Object.freeze([...new Set(tags as string[])])
}

/**
 * The machinery every view of one cache shares: tiers, bus, single-flight table, counters.
 * Views (DataCache) only add their key prefixes.
 */
export class CacheCore {
  readonly opts: ResolvedOptions
  readonly clock: Clock
  readonly log: Logger
  readonly l1: L1Store | undefined
  readonly l2: RedisTier | undefined
  readonly bus: RedisBus<BusPayload> | undefined
  readonly nodeId: string
  readonly #ownsMain: boolean
  readonly #flights = new Map<string, Flight>()
  readonly #emitter = new EventEmitter()
  #closed = false
  /** Hit events are only built when someone listens: the L1 hit path stays allocation-free. */
  wantHits = false
  l1Hits = 0
  l2Hits = 0
  misses = 0
  loaderCalls = 0
  loaderErrors = 0
  /** Loads that found the cross-node lock held by another node and waited for it. */
  lockWaits = 0
  staleServed = 0

  constructor(opts: ResolvedOptions) {
    this.opts = opts
    this.clock = opts.clock
    this.log = opts.logger.child({ module: 'data-cache' })
    this.nodeId = opts.nodeId ?? randomUUID()
    this.l1 = opts.l1 === false ? undefined : new L1Store(opts.l1)
    this.#emitter.on('error', noop) // events are informational; never crash the process
    const syncWant = () => {
      this.wantHits = this.#emitter.listenerCount('hit') > 0
    }
    this.#emitter.on('newListener', (name: string) => {
      if (name === 'hit') this.wantHits = true
    })
    this.#emitter.on('removeListener', syncWant)

    if (opts.redis === undefined) {
      this.#ownsMain = false
      this.l2 = undefined
      this.bus = undefined
      return
    }
    const clients = createClients(opts.redis)
    this.#ownsMain = clients.ownsMain
    const l2 = new RedisTier(clients.main, {
      ...opts.l2,
      clock: opts.clock,
      serializer: opts.serializer,
      logger: this.log,
      onState: (state) => {
        if (state === 'ready') void this.bus?.flush()
        this.emit('redis:state', { state })
      },
      onBreaker: (state) => {
        if (state === 'closed') void this.bus?.flush()
        this.emit('breaker:state', { state })
      },
    })
    this.l2 = l2
    this.bus = opts.bus
      ? new RedisBus<BusPayload>({
          channel: channelOf(opts.namespace),
          nodeId: this.nodeId,
          codec: busCodec,
          publisher: l2,
          subscriber: clients.makeSubscriber(),
          logger: this.log,
          // Past the queue bound, one clear of the root replaces the queued invalidations.
          overflow: () => ({ type: 'clear', path: '', keys: [] }),
          onMessage: (m) => this.#apply(m),
          onResync: () => this.l1?.clear(),
        })
      : undefined
    if (this.bus !== undefined) l2.onAnswer(() => void this.bus?.flush())
  }

  // ---- events ---------------------------------------------------------------------------

  on<E extends DataCacheEventName>(event: E, listener: (payload: DataCacheEvents[E]) => void): void {
    this.#emitter.on(event, listener)
  }

  off<E extends DataCacheEventName>(event: E, listener: (payload: DataCacheEvents[E]) => void): void {
    this.#emitter.off(event, listener)
  }

  once<E extends DataCacheEventName>(event: E, listener: (payload: DataCacheEvents[E]) => void): void {
    this.#emitter.once(event, listener)
  }

  emit<E extends DataCacheEventName>(event: E, payload: DataCacheEvents[E]): void {
    try {
      this.#emitter.emit(event, payload)
    } catch (err) {
      // A throwing listener must not break a cache call.
      this.log.error({ err, event }, 'data-cache event listener threw')
    }
  }

  hit(key: string, namespace: string, tier: Tier): void {
    this.emit('hit', { key, namespace, tier })
  }

  // ---- reads ----------------------------------------------------------------------------

  /** The getOrSet slow path: L1 had nothing fresh. */
  async miss<T>(view: ViewKeys, l1Key: string, key: string, loader: Loader<T>, options: GetOrSetOptions | undefined, l1Entry: Entry | undefined): Promise<T> {
    checkKey(key)
    if (typeof loader !== 'function') throw badOption('data-cache getOrSet: the loader must be a function')
    let stale: Entry | undefined
    if (l1Entry !== undefined) {
      if (l1Entry.deleteAt > this.clock.now()) stale = l1Entry
      else this.l1?.delete(l1Key)
    }
    let f = this.#flights.get(l1Key)
    if (f === undefined) f = this.#startFlight(view, l1Key, key, loader as Loader<unknown>, options, stale)
    const fresh = await f.l2
    if (fresh !== undefined) {
      this.l2Hits++
      if (this.wantHits) this.hit(key, view.namespace, 'l2')
      return fresh.value as T
    }
    this.misses++
    this.emit('miss', { key, namespace: view.namespace })
    stale = f.stale ?? stale
    if (stale !== undefined) {
      const soft = durationOr(options?.timeouts?.soft, this.opts.softTimeout, 'timeouts.soft')
      return this.#withStale(f, stale, soft, key, view.namespace) as Promise<T>
    }
    const hard = durationOr(options?.timeouts?.hard, this.opts.hardTimeout, 'timeouts.hard')
    return this.#withHardTimeout(f, hard, key) as Promise<T>
  }

  /** get(): fresh value from L1 or L2 (filling L1), or a graced one if allowed. */
  async read(view: ViewKeys, key: string, allowStale: boolean): Promise<unknown> {
    checkKey(key)
    const l1Key = view.l1(key)
    let stale: Entry | undefined
    const e = this.l1?.get(l1Key)
    if (e !== undefined) {
      const now = this.clock.now()
      if (e.staleAt > now) {
        this.l1Hits++
        if (this.wantHits) this.hit(key, view.namespace, 'l1')
        return e.value
      }
      if (e.deleteAt > now) stale = e
      else this.l1?.delete(l1Key)
    }
    if (this.l2 !== undefined) {
      const r = await this.l2.get(view.data(key))
      if (r !== undefined) {
        const now = this.clock.now()
        if (r.staleAt > now) {
          this.l1?.set(l1Key, r)
          this.l2Hits++
          if (this.wantHits) this.hit(key, view.namespace, 'l2')
          return r.value
        }
        if (r.deleteAt > now && (stale === undefined || r.staleAt > stale.staleAt)) stale = r
      }
    }
    this.misses++
    this.emit('miss', { key, namespace: view.namespace })
    return allowStale ? stale?.value : undefined
  }

  async has(view: ViewKeys, key: string): Promise<boolean> {
    checkKey(key)
    const e = this.l1?.get(view.l1(key))
    if (e !== undefined && e.staleAt > this.clock.now()) return true
    if (this.l2 === undefined) return false
    const r = await this.l2.get(view.data(key))
    if (r === undefined || r.staleAt <= this.clock.now()) return false
    this.l1?.set(view.l1(key), r)
    return true
  }

  #startFlight(view: ViewKeys, l1Key: string, key: string, loader: Loader<unknown>, options: GetOrSetOptions | undefined, stale: Entry | undefined): Flight {
    let resolveL2!: (e: Entry | undefined) => void
    const f: Flight = { stale, l2: new Promise((r) => (resolveL2 = r)), result: undefined as unknown as Promise<Entry>, done: undefined, expired: undefined as unknown as Promise<void> }
    f.result = this.#fly(f, resolveL2, view, l1Key, key, loader, options)
    this.#flights.set(l1Key, f)
    const end = () => {
      if (this.#flights.get(l1Key) === f) this.#flights.delete(l1Key)
    }
    // A hung loader must not wedge its key: after the leader's hard timeout the flight leaves the
    // table (the next call starts a fresh load) and its waiters get stale data or
    // STRATA_DATA_CACHE_TIMEOUT. The abandoned load may still finish and be cached.
    const hard = this.#flightHard(options)
    let expire!: () => void
    f.expired = new Promise<void>((r) => (expire = r))
    // hard: 0 means callers never wait, not that every call starts a load: that flight runs on.
    const timer = hard <= 0 ? undefined : setTimeout(() => {
      this.log.warn({ key, namespace: view.namespace, hardMs: hard }, 'data-cache loader exceeded the hard timeout; the next call loads again')
      end()
      expire()
    }, hard)
    timer?.unref()
    const stop = () => clearTimeout(timer)
    // Both handlers: a rejected result is always observed here, so serving stale while the
    // loader fails never produces an unhandled rejection.
    f.result.then(
      (e) => {
        stop()
        f.done = e
        end()
      },
      () => {
        stop()
        end()
      },
    )
    return f
  }

  /** The hard timeout of a flight: its leader's (an invalid one fails the leader's call in #fly, not here). */
  #flightHard(options: GetOrSetOptions | undefined): number {
    try {
      return durationOr(options?.timeouts?.hard, this.opts.hardTimeout, 'timeouts.hard')
    } catch {
      return this.opts.hardTimeout
    }
  }

  async #fly(f: Flight, resolveL2: (e: Entry | undefined) => void, view: ViewKeys, l1Key: string, key: string, loader: Loader<unknown>, options: GetOrSetOptions | undefined): Promise<Entry> {
    try {
      // Validate per-call options before any I/O, so a bad call fails the same way every time.
      const ttl = durationOr(options?.ttl, this.opts.defaultTtl, 'ttl')
      const grace = durationOr(options?.grace, this.opts.grace, 'grace')
      const tags = checkTags(options?.tags)
      if (this.l2 !== undefined) {
        const e = await this.l2.get(view.data(key))
        if (e !== undefined) {
          const now = this.clock.now()
          if (e.staleAt > now) {
            this.l1?.set(l1Key, e)
            resolveL2(e)
            return e
          }
          if (e.deleteAt > now && (f.stale === undefined || e.staleAt > f.stale.staleAt)) f.stale = e
        }
      }
      resolveL2(undefined)
      const lockOn = (options?.lock ?? this.opts.lock.enabled) && this.l2 !== undefined
      if (!lockOn) return await this.#load(f, view, l1Key, key, loader, ttl, grace, tags)
      return await this.#loadLocked(f, view, l1Key, key, loader, ttl, grace, tags)
    } finally {
      resolveL2(undefined) // no-op when already resolved; unblocks callers if we threw early
    }
  }

  /**
   * Cross-node single-flight: SET NX PX on a lock key. The winner loads and writes L2 before
   * releasing; the others re-read L2 every pollInterval and retry the lock (so a crashed or
   * failed holder is replaced), and after `lock.wait` give up and load themselves.
   */
  async #loadLocked(f: Flight, view: ViewKeys, l1Key: string, key: string, loader: Loader<unknown>, ttl: number, grace: number, tags: readonly string[]): Promise<Entry> {
    const l2 = this.l2!
    const lock = this.opts.lock
    const lockKey = view.lock(key)
    const token = `${this.nodeId}:${randomUUID()}`
    const polls = Math.ceil(lock.wait / lock.pollInterval)
    for (let i = 0; ; i++) {
      const got = await l2.tryLock(lockKey, token, lock.ttl)
      if (got === true) {
        try {
          // The previous holder may have written between our L2 read and this lock.
          const e = await l2.get(view.data(key))
          if (e !== undefined && e.staleAt > this.clock.now()) {
            this.l1?.set(l1Key, e)
            return e
          }
          return await this.#load(f, view, l1Key, key, loader, ttl, grace, tags)
        } finally {
          void l2.unlock(lockKey, token)
        }
      }
      // Redis unreachable (undefined) or waited long enough: load without the lock.
      if (got === undefined || i >= polls) return this.#load(f, view, l1Key, key, loader, ttl, grace, tags)
      if (i === 0) this.lockWaits++
      await sleep(lock.pollInterval)
      const e = await l2.get(view.data(key))
      if (e !== undefined && e.staleAt > this.clock.now()) {
        this.l1?.set(l1Key, e)
        return e
      }
    }
  }

  async #load(f: Flight, view: ViewKeys, l1Key: string, key: string, loader: Loader<unknown>, ttl: number, grace: number, tags: readonly string[]): Promise<Entry> {
    this.loaderCalls++
    let value: unknown
    try {
      value = await loader({ key, namespace: view.namespace, stale: f.stale?.value })
    } catch (error) {
      this.loaderErrors++
      this.log.warn({ err: error, key, namespace: view.namespace }, 'data-cache loader failed')
      this.emit('loader:error', { key, namespace: view.namespace, error })
      const s = f.stale
      if (s !== undefined && this.l1 !== undefined) {
        // Grace backoff: serve the stale value as fresh for a while so a failing source is not
        // called again by every request.
        const staleAt = this.clock.now() + this.opts.graceBackoff
        this.l1.set(l1Key, makeEntry(s.value, staleAt, Math.max(s.deleteAt, staleAt), s.tags, s.size))
      }
      throw error
    }
    // `undefined` cannot be stored by every serializer and usually means "not found": not cached.
    if (value === undefined) return makeEntry(undefined, 0, 0, NO_TAGS, 0)
    try {
      return await this.write(view, l1Key, key, value, ttl, grace, tags)
    } catch (err) {
      // The value cannot be serialized: hand it to the callers but cache nothing.
      this.log.error({ err, key, namespace: view.namespace }, 'data-cache could not serialize a loaded value; not cached')
      return makeEntry(value, 0, 0, NO_TAGS, 0)
    }
  }

  #withStale(f: Flight, stale: Entry, soft: number, key: string, namespace: string): Promise<unknown> {
    if (f.done !== undefined) return Promise.resolve(f.done.value)
    if (soft === 0) {
      this.#servedStale(key, namespace, 'soft-timeout')
      return Promise.resolve(stale.value)
    }
    return new Promise((resolve) => {
      let settled = false
      const timer = setTimeout(() => {
        settled = true
        this.#servedStale(key, namespace, 'soft-timeout')
        resolve(stale.value)
      }, soft)
      f.result.then(
        (e) => {
          if (settled) return
          clearTimeout(timer)
          resolve(e.value)
        },
        () => {
          if (settled) return
          clearTimeout(timer)
          this.#servedStale(key, namespace, 'loader-error')
          resolve(stale.value)
        },
      )
      void f.expired.then(() => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        this.#servedStale(key, namespace, 'hard-timeout')
        resolve(stale.value)
      })
    })
  }

  #servedStale(key: string, namespace: string, reason: 'soft-timeout' | 'loader-error' | 'hard-timeout'): void {
    this.staleServed++
    this.emit('stale', { key, namespace, reason })
  }

  #withHardTimeout(f: Flight, hard: number, key: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timeout = () => reject(new StrataError('STRATA_DATA_CACHE_TIMEOUT', `data-cache loader for "${key}" did not finish within ${hard} ms and no stale value exists`))
      const timer = setTimeout(timeout, hard)
      // The flight was given up (its leader's hard timeout): nothing more will come from it.
      void f.expired.then(() => {
        clearTimeout(timer)
        timeout()
      })
      f.result.then(
        (e) => {
          clearTimeout(timer)
          resolve(e.value)
        },
        (err: unknown) => {
          clearTimeout(timer)
          reject(err)
        },
      )
    })
  }

  // ---- writes ---------------------------------------------------------------------------

  /** Writes L1, then L2 (value + tag sets), then tells the other nodes. Throws only if serialization does. */
  async write(view: ViewKeys, l1Key: string, key: string, value: unknown, ttl: number, grace: number, tags: readonly string[]): Promise<Entry> {
    const payload = this.opts.serializer.serialize(value)
    const now = this.clock.now()
    const staleAt = now + ttl
    const deleteAt = staleAt + grace
    const entry = makeEntry(value, staleAt, deleteAt, tags, payloadSize(payload))
    this.l1?.set(l1Key, entry)
    if (this.l2 !== undefined) {
      const tagKeys = tags.length === 0 ? NO_TAGS : tags.map((t) => view.tag(t))
      await this.l2.set(view.data(key), encodeRecord(staleAt, deleteAt, tags, payload), ttl + grace, tagKeys)
    }
    this.bus?.publish({ type: 'set', path: view.path, keys: [key] })
    return entry
  }

  async set(view: ViewKeys, key: string, value: unknown, options: SetOptions | undefined): Promise<void> {
    checkKey(key)
    const ttl = durationOr(options?.ttl, this.opts.defaultTtl, 'ttl')
    const grace = durationOr(options?.grace, this.opts.grace, 'grace')
    const tags = checkTags(options?.tags)
    if (value === undefined) throw badOption('data-cache set: undefined cannot be cached (use delete)')
    await this.write(view, view.l1(key), key, value, ttl, grace, tags)
  }

  async delete(view: ViewKeys, keys: readonly string[]): Promise<void> {
    for (const k of keys) checkKey(k)
    for (const k of keys) this.l1?.delete(view.l1(k))
    await this.l2?.delete(keys.map((k) => view.data(k)))
    this.bus?.publish({ type: 'delete', path: view.path, keys: [...keys] })
  }

  async deleteByTag(view: ViewKeys, tags: readonly string[]): Promise<void> {
    const list = checkTags(tags)
    for (const t of list) this.l1?.deleteTag(view.l1Prefix, t)
    if (this.l2 !== undefined) await Promise.all(list.map((t) => this.l2!.deleteTag(view.tag(t))))
    this.bus?.publish({ type: 'tag', path: view.path, keys: [...list] })
  }

  async clear(view: ViewKeys): Promise<void> {
    this.l1?.deleteView(view.path)
    await this.l2?.clear(view.pattern)
    this.bus?.publish({ type: 'clear', path: view.path, keys: [] })
  }

  /** Applies another node's change to our L1 only: L2 was already changed by the sender. */
  #apply(m: BusPayload): void {
    const l1 = this.l1
    if (l1 !== undefined) {
      const prefix = m.path === '' ? '' : `\0${m.path}\0`
      if (m.type === 'set' || m.type === 'delete') for (const k of m.keys) l1.delete(prefix + k)
      else if (m.type === 'tag') for (const t of m.keys) l1.deleteTag(prefix, t)
      else l1.deleteView(m.path)
    }
    this.emit('bus:received', { type: m.type, namespace: m.path === '' ? this.opts.namespace : `${this.opts.namespace}:${m.path}`, keys: m.keys })
  }

  // ---- lifecycle ------------------------------------------------------------------------

  async ready(): Promise<void> {
    if (this.l2 === undefined) return
    const wait = new Promise<void>((r) => setTimeout(r, this.opts.l2.connectWait).unref())
    await Promise.all([this.l2.whenStarted(), Promise.race([this.bus?.whenSubscribed(), wait])])
  }

  stats(): DataCacheStats {
    return {
      l1Hits: this.l1Hits,
      l2Hits: this.l2Hits,
      misses: this.misses,
      loaderCalls: this.loaderCalls,
      loaderErrors: this.loaderErrors,
      lockWaits: this.lockWaits,
      staleServed: this.staleServed,
      l2Errors: this.l2?.errors ?? 0,
      busPublished: this.bus?.published ?? 0,
      busReceived: this.bus?.received ?? 0,
      busQueued: this.bus?.queued ?? 0,
      busRejected: this.bus?.rejected ?? 0,
      redis: this.l2?.state ?? 'none',
      breaker: this.l2?.breakerState ?? 'closed',
      l1Entries: this.l1?.entries ?? 0,
      l1Bytes: this.l1?.bytes ?? 0,
      inFlight: this.#flights.size,
    }
  }

  async disconnect(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.all([this.bus?.close(), this.l2?.close(this.#ownsMain)])
  }
}
