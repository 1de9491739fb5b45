import { describe, expect, it, onTestFinished } from 'vitest'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { startReplicas } from '../helpers/origin.js'
import { spawnStrata } from '../helpers/strata-process.js'
import { TEST_TOKEN } from '../helpers/strata.js'

/**
 * DNS discovery through the system resolver (the default, `dns.promises.lookup` with `all`), on a
 * name an /etc/hosts-style file maps to several loopback addresses: `strata serve` runs in a
 * private mount namespace where that file is /etc/hosts, as a container sees Docker's answers.
 */

/** Whether this machine lets a test give a process its own /etc/hosts (root and `unshare -m`). */
function canUnshare(): boolean {
  try {
    execFileSync('unshare', ['-m', 'sh', '-c', 'mount --bind /etc/hosts /etc/hosts'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

describe.skipIf(!canUnshare())('discovery through /etc/hosts', () => {
  it('turns every address of the name into a member that takes traffic', async () => {
    const replicas = await startReplicas(['127.0.0.2', '127.0.0.3', '127.0.0.4'])
    onTestFinished(() => replicas.close())
    const dir = mkdtempSync(join(tmpdir(), 'strata-hosts-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const hosts = join(dir, 'hosts')
    writeFileSync(hosts, '127.0.0.1 localhost\n127.0.0.2 web.strata.test\n127.0.0.3 web.strata.test\n127.0.0.4 web.strata.test\n')
    const s = await spawnStrata([], { upstreams: [{ id: 'web', url: `http://web.strata.test:${replicas.port}`, resolve: true }] }, {}, { hosts })
    onTestFinished(async () => {
      await s.stop()
    })
    const seen = new Set<string>()
    for (let i = 0; i < 30; i++) {
      const res = await request(`${s.url}/p${i}`)
      expect(res.statusCode).toBe(200)
      seen.add((await res.body.text()).split(' ')[0]!)
    }
    expect([...seen].sort()).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4'])
    const pool = (await (await request(`${s.adminUrl}/pools/default`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).body.json()) as { upstreams: { id: string }[] }
    expect(pool.upstreams.map((u) => u.id).sort()).toEqual(['web@127.0.0.2', 'web@127.0.0.3', 'web@127.0.0.4'])
  })
})
