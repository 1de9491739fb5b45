import { l1PrefixOf } from './l1.js'

/**
 * Where a view's data lives. Redis layout for namespace `shop`, view `carts`:
 *
 *   shop:carts::<key>      the value record          (data)
 *   shop:carts:#t:<tag>    set of data keys          (tag index)
 *   shop:carts:#l:<key>    SET NX PX lock            (cross-node lock)
 *
 * Namespace names cannot contain ':' or '#', so `::` and `:#` mark where the namespace ends and
 * no view can collide with another's keys. Every key is a single Redis key in its own slot: no
 * command ever names two keys, so Redis Cluster needs no hash tags.
 */
export class ViewKeys {
  /** The path inside the root namespace ('' for the root, 'carts:eu' for nested views). */
  readonly path: string
  /** The full namespace, e.g. 'shop:carts'. */
  readonly namespace: string
  readonly l1Prefix: string
  readonly #data: string
  readonly #tag: string
  readonly #lock: string

  constructor(root: string, path: string) {
    this.path = path
    this.namespace = path === '' ? root : `${root}:${path}`
    this.l1Prefix = l1PrefixOf(path)
    this.#data = `${this.namespace}::`
    this.#tag = `${this.namespace}:#t:`
    this.#lock = `${this.namespace}:#l:`
  }

  data(key: string): string {
    return this.#data + key
  }

  tag(tag: string): string {
    return this.#tag + tag
  }

  lock(key: string): string {
    return this.#lock + key
  }

  l1(key: string): string {
    return this.l1Prefix === '' ? key : this.l1Prefix + key
  }

  /** SCAN pattern for this view and its sub-views (names hold no glob characters). */
  get pattern(): string {
    return `${this.namespace}:*`
  }

  child(name: string): string {
    return this.path === '' ? name : `${this.path}:${name}`
  }
}

/** The pub/sub channel shared by every node (and view) of one root namespace. */
export function channelOf(root: string): string {
  return `strata:data-cache:${root}`
}
