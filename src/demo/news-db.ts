/**
 * The demo site's "database": a handful of articles in memory behind a simulated 30 ms query,
 * so the data cache in front of it has something to save.
 */
export interface Article {
  id: number
  title: string
  body: string
  updatedAt: string
}

const SEED: Omit<Article, 'updatedAt'>[] = [
  { id: 1, title: 'strata ships a page cache', body: 'Full responses are now cached at the edge by RFC 9111 rules, with grace and request coalescing.' },
  { id: 2, title: 'Fragments assembled at the edge', body: 'Templates marked with ESI tags are assembled from fragments fetched in parallel, each cached with its own TTL.' },
  { id: 3, title: 'Sticky sessions without surprises', body: 'A signed cookie keeps each visitor on one webserver while it is healthy, and moves them when it is not.' },
  { id: 4, title: 'A data cache for the app tier', body: 'An in-process LRU in front of Redis, with cross-node invalidation and graceful degradation.' },
]

export class NewsDb {
  readonly #rows = new Map<number, Article>()
  readonly #queryMs: number
  queries = 0

  constructor(queryMs = 30) {
    this.#queryMs = queryMs
    const now = new Date().toISOString()
    for (const a of SEED) this.#rows.set(a.id, { ...a, updatedAt: now })
  }

  async #delay(): Promise<void> {
    this.queries++
    if (this.#queryMs > 0) await new Promise((r) => setTimeout(r, this.#queryMs))
  }

  async list(): Promise<Article[]> {
    await this.#delay()
    return [...this.#rows.values()].sort((a, b) => b.id - a.id)
  }

  async get(id: number): Promise<Article | undefined> {
    await this.#delay()
    return this.#rows.get(id)
  }

  async update(id: number, title: string): Promise<Article | undefined> {
    await this.#delay()
    const row = this.#rows.get(id)
    if (!row) return undefined
    const next = { ...row, title, updatedAt: new Date().toISOString() }
    this.#rows.set(id, next)
    return next
  }
}
