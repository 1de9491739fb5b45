/// <reference lib="dom" />
import { describe, expect, it, onTestFinished } from 'vitest'
import { existsSync, mkdirSync } from 'node:fs'
import { request } from 'undici'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { chromium, type Page } from 'playwright-core'
import { pino } from 'pino'
import { startBehind, TEST_TOKEN } from '../helpers/strata.js'
import { Balancer } from '../../src/balancer/index.js'
import { resolveConfig } from '../../src/config/load.js'
import { PageCache } from '../../src/page-cache/index.js'
import { StrataMetrics } from '../../src/observability/metrics.js'
import { createAdminServer } from '../../src/admin/server.js'
import { upstreamRoutes } from '../../src/admin/upstream-routes.js'
import { cacheRoutes } from '../../src/admin/cache-routes.js'
import { dashboardRoutes } from '../../src/admin/dashboard.js'
import { poolsOf } from '../../src/admin/pools-view.js'

/**
 * The admin dashboard end to end in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core): log in with the token, watch the request chart move under a small bounded
 * load, purge a page from the form and see it miss, drain an upstream from the table and see its
 * traffic stop. Leaves a screenshot in test/artifacts/ (git-ignored).
 */

const CHROMIUM = '/usr/bin/chromium'
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname

const haveChromium = existsSync(CHROMIUM)
if (!haveChromium) console.warn(`dashboard browser test skipped: ${CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)`)

const site = (req: IncomingMessage, res: ServerResponse) => {
  if (req.url === '/page') {
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'public, max-age=300' })
    return res.end('<p>cached page</p>')
  }
  // Everything else is uncacheable, so it reaches an upstream every time.
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end('{"ok":true}')
}

async function get(url: string): Promise<{ status: number; xCache: string | undefined }> {
  const res = await request(url)
  await res.body.dump()
  return { status: res.statusCode, xCache: res.headers['x-cache'] as string | undefined }
}

/** A small bounded load: `concurrency` loops of GETs until stopped (or `max` requests). */
function load(url: string, opts: { concurrency: number; max: number }): { sent: () => number; stop: () => Promise<void> } {
  let sent = 0
  let stopped = false
  const loops = Array.from({ length: opts.concurrency }, async () => {
    while (!stopped && sent < opts.max) {
      sent++
      await get(url)
    }
  })
  return {
    sent: () => sent,
    stop: async () => {
      stopped = true
      await Promise.all(loops)
    },
  }
}

const text = (page: Page, selector: string) => page.locator(selector).innerText()

describe.skipIf(!haveChromium)('admin dashboard in headless Chromium', () => {
  it('logs in, charts live traffic, purges a page and drains an upstream', { timeout: 120_000 }, async () => {
    const { s, origins, close } = await startBehind([site, site], { log: { level: 'warn', access: false } })
    onTestFinished(close)
    const [b1, b2] = origins as [(typeof origins)[0], (typeof origins)[0]]

    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS })
    onTestFinished(() => browser.close())
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
    const pageErrors: string[] = []
    page.on('pageerror', (err) => pageErrors.push(err.message))

    // The page itself is served without the token and contains none.
    const html = await (await request(`${s.adminUrl}/`)).body.text()
    expect(html).toContain('<title>strata</title>')
    expect(html).not.toContain(TEST_TOKEN)

    await page.goto(`${s.adminUrl}/`)
    await page.locator('#login').waitFor({ state: 'visible' })
    // A wrong token is refused and the login form stays.
    await page.fill('#token', 'not-the-token')
    await page.click('#login-form button[type=submit]')
    await page.waitForFunction(() => document.getElementById('login-msg')!.textContent !== '')
    expect(await page.locator('#dash').isHidden()).toBe(true)

    await page.fill('#token', TEST_TOKEN)
    await page.click('#login-form button[type=submit]')
    await page.locator('#dash').waitFor({ state: 'visible' })
    expect(await page.evaluate(() => sessionStorage.getItem('strata-admin-token'))).toBe(TEST_TOKEN)
    // Both upstreams are listed with their drain buttons.
    await page.locator('#upstreams tr[data-upstream="b2"]').waitFor()
    // One pool: no pool headings, the table as it always was.
    expect(await page.locator('#upstreams tr.pool').count()).toBe(0)
    const before = await page.locator('#rps-chart').evaluate((c) => (c as HTMLCanvasElement).toDataURL())

    // The request chart moves while a bounded load runs.
    const traffic = load(`${s.url}/api`, { concurrency: 4, max: 20_000 })
    try {
      await page.waitForFunction(() => Number(document.getElementById('rps')!.textContent) > 0, undefined, { timeout: 30_000 })
      await page.waitForFunction((prev) => (document.getElementById('rps-chart') as HTMLCanvasElement).toDataURL() !== prev, before, { timeout: 30_000 })
      expect(b1.hits('/api')).toBeGreaterThan(0)
      expect(b2.hits('/api')).toBeGreaterThan(0)

      // Drain b2 from the table: its traffic stops while b1 keeps serving.
      await page.click('#upstreams tr[data-upstream="b2"] button')
      await page.waitForFunction(() => document.querySelector('#upstreams tr[data-upstream="b2"] td:nth-child(3)')?.textContent === 'draining')
      const b2AtDrain = b2.hits('/api')
      const b1AtDrain = b1.hits('/api')
      // The table's req/s for b2 falls to zero (a full second with no attempt on it).
      await page.waitForFunction(() => document.querySelector('#upstreams tr[data-upstream="b2"] .rate')?.textContent === '0.0', undefined, { timeout: 30_000 })
      await page.waitForFunction(() => Number(document.querySelector('#upstreams tr[data-upstream="b1"] .rate')?.textContent) > 0, undefined, { timeout: 30_000 })
      expect(b1.hits('/api')).toBeGreaterThan(b1AtDrain)
      // At most the requests already in flight when the drain landed (one per load loop).
      expect(b2.hits('/api') - b2AtDrain).toBeLessThanOrEqual(4)
    } finally {
      await traffic.stop()
    }
    expect(traffic.sent()).toBeLessThan(20_000)

    // Purge a page from the form: the next request is a miss.
    expect((await get(`${s.url}/page`)).xCache).toBe('MISS')
    expect((await get(`${s.url}/page`)).xCache).toBe('HIT')
    await page.selectOption('#purge-kind', 'urls')
    await page.fill('#purge-value', '/page')
    await page.click('#purge-form button[type=submit]')
    await page.waitForFunction(() => document.getElementById('purge-msg')!.textContent === 'purged 1')
    await page.waitForFunction(() => document.querySelector('#purges .cmd')?.textContent === '{"urls":["/page"]}')
    expect((await get(`${s.url}/page`)).xCache).toBe('MISS')

    // Numbers the page shows come from /stats.
    await page.waitForFunction(() => document.getElementById('l1-entries')!.textContent === '1')
    expect(await text(page, '#p50')).not.toBe('–')

    // Enable b2 again from the same button.
    await page.click('#upstreams tr[data-upstream="b2"] button')
    await page.waitForFunction(() => document.querySelector('#upstreams tr[data-upstream="b2"] td:nth-child(3)')?.textContent !== 'draining')

    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true })
    expect(pageErrors).toEqual([])

    // Log out: the token leaves sessionStorage and the form is back.
    await page.click('#logout')
    await page.locator('#login').waitFor({ state: 'visible' })
    expect(await page.evaluate(() => sessionStorage.getItem('strata-admin-token'))).toBeNull()
  })

  it('groups the upstream table by pool when there are several, and drains in the right pool', { timeout: 60_000 }, async () => {
    // The admin server over two real balancers (no proxy traffic: the table is what is tested).
    const silent = pino({ level: 'silent' })
    const config = resolveConfig({ admin: { host: '127.0.0.1', port: 0, token: TEST_TOKEN }, upstreams: [{ id: 'b1', url: 'http://127.0.0.1:1' }], log: { level: 'silent' } })
    const apiPool = resolveConfig({ upstreams: [{ id: 'api1', url: 'http://127.0.0.1:2' }, { id: 'api2', url: 'http://127.0.0.1:3' }], balancer: { algorithm: 'least-connections', sticky: { mode: 'insert' } } })
    const main = new Balancer({ upstreams: config.upstreams, config: config.balancer, logger: silent })
    const api = new Balancer({ upstreams: apiPool.upstreams, config: apiPool.balancer, logger: silent })
    const pools = poolsOf([{ name: 'default', balancer: main, config: config.balancer }, { name: 'api', balancer: api, config: apiPool.balancer }])
    const cache = new PageCache({ config: config.cache, logger: silent })
    const metrics = new StrataMetrics({ defaultMetrics: false })
    metrics.upstreamAttempt('api', 'api1', { ok: true, statusCode: 200, durationMs: 1 })
    const admin = createAdminServer({ config, logger: silent, version: 'test', metrics, routes: [upstreamRoutes(pools), cacheRoutes(cache, pools, metrics), dashboardRoutes()] })
    await admin.listen({ host: '127.0.0.1', port: 0 })
    onTestFinished(async () => {
      await admin.close()
      await Promise.all([main.close(), api.close(), cache.close()])
    })
    const address = admin.server.address() as { port: number }

    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS })
    onTestFinished(() => browser.close())
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
    const pageErrors: string[] = []
    page.on('pageerror', (err) => pageErrors.push(err.message))
    await page.goto(`http://127.0.0.1:${address.port}/`)
    await page.fill('#token', TEST_TOKEN)
    await page.click('#login-form button[type=submit]')
    await page.locator('#upstreams tr[data-upstream="api2"]').waitFor()

    // A heading per pool, each followed by its own upstreams, default first.
    const rows = await page.locator('#upstreams tr').evaluateAll((trs) => trs.map((tr) => (tr.classList.contains('pool') ? `pool:${(tr as HTMLElement).dataset.pool}` : (tr as HTMLElement).dataset.upstream)))
    expect(rows).toEqual(['pool:default', 'b1', 'pool:api', 'api1', 'api2'])
    const heading = await text(page, '#upstreams tr.pool[data-pool="api"]')
    expect(heading).toContain('least-connections')
    expect(heading).toContain('sticky insert')
    expect(heading).toContain('1 upstream requests')

    // The drain button of a row in the api pool drains it there.
    await page.click('#upstreams tr[data-upstream="api2"] button')
    await page.waitForFunction(() => document.querySelector('#upstreams tr[data-upstream="api2"] td:nth-child(3)')?.textContent === 'draining')
    expect(api.list().find((u) => u.id === 'api2')?.state).toBe('draining')
    expect(main.list()[0]?.state).not.toBe('draining')
    expect(pageErrors).toEqual([])
  })
})
