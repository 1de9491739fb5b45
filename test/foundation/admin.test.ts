import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { startStrata, TEST_TOKEN, type RunningStrata } from '../helpers/strata.js'

describe('admin API', () => {
  let origin: Origin
  let s: RunningStrata
  beforeAll(async () => {
    origin = await startOrigin((_q, r) => r.end('ok'))
    s = await startStrata([origin.url], { balancer: { sticky: { mode: 'insert', secret: 'a-very-secret-sticky-key' } } })
  })
  afterAll(async () => {
    await s.close()
    await origin.close()
  })

  it('binds to loopback', () => {
    expect(new URL(s.adminUrl).hostname).toBe('127.0.0.1')
  })

  it('serves /health without a token', async () => {
    const res = await request(`${s.adminUrl}/health`)
    expect(res.statusCode).toBe(200)
    expect(await res.body.json()).toEqual({ ok: true })
  })

  it.each([
    ['no header', undefined],
    ['a wrong token', `Bearer ${TEST_TOKEN}x`],
    ['a token prefix', `Bearer ${TEST_TOKEN.slice(0, 5)}`],
    ['another scheme', `Basic ${TEST_TOKEN}`],
    ['an empty bearer', 'Bearer '],
  ])('answers 401 with a JSON reason for %s', async (_name, auth) => {
    const res = await request(`${s.adminUrl}/status`, auth === undefined ? {} : { headers: { authorization: auth } })
    expect(res.statusCode).toBe(401)
    expect(res.headers['www-authenticate']).toContain('Bearer')
    expect(await res.body.json()).toMatchObject({ error: 'STRATA_ADMIN_UNAUTHORIZED' })
  })

  it('answers 401 before revealing whether a route exists', async () => {
    const res = await request(`${s.adminUrl}/no-such-route`)
    expect(res.statusCode).toBe(401)
    await res.body.text()
  })

  it('serves /status with version, uptime and a config summary without secrets', async () => {
    const res = await request(`${s.adminUrl}/status`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })
    expect(res.statusCode).toBe(200)
    const text = await res.body.text()
    const json = JSON.parse(text) as { version: string; uptimeSeconds: number; config: { upstreams: { id: string }[]; admin: Record<string, unknown> } }
    expect(json.version).toMatch(/^\d+\.\d+\.\d+/)
    expect(typeof json.uptimeSeconds).toBe('number')
    expect(json.config.upstreams[0]?.id).toBe('b1')
    expect(json.config.admin['token']).toBeUndefined()
    expect(text).not.toContain(TEST_TOKEN)
    expect(text).not.toContain('a-very-secret-sticky-key')
  })

  it('answers unknown routes with a JSON 404 once authorized', async () => {
    const res = await request(`${s.adminUrl}/nope`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })
    expect(res.statusCode).toBe(404)
    expect(await res.body.json()).toMatchObject({ error: 'STRATA_ADMIN_NOT_FOUND' })
  })
})
