import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { parseAllDocuments } from 'yaml'
import { resolveConfig } from '../../src/config/load.js'

// deploy/kubernetes/strata.yaml is documentation that must stay true: each object has what
// `kubectl apply --dry-run=client` requires, the probes hit strata's admin /health, the Services
// reach the ports the container declares, and the ConfigMap holds a config strata accepts.
const file = new URL('../../deploy/kubernetes/strata.yaml', import.meta.url)
const docs = parseAllDocuments(readFileSync(file, 'utf8'))
const objects = docs.map((d) => {
  expect(d.errors).toEqual([])
  return d.toJS() as Record<string, any>
})
const ofKind = (kind: string) => objects.filter((o) => o['kind'] === kind)
const DNS_1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/

describe('the Kubernetes sketch', () => {
  it('holds a ConfigMap, a Deployment and Services, each well-formed', () => {
    expect(objects.map((o) => o['kind']).sort()).toEqual(['ConfigMap', 'Deployment', 'Service', 'Service'])
    const apiVersion: Record<string, string> = { ConfigMap: 'v1', Service: 'v1', Deployment: 'apps/v1' }
    for (const o of objects) {
      expect(o['apiVersion']).toBe(apiVersion[o['kind']])
      expect(o['metadata']?.name).toMatch(DNS_1123)
    }
    expect(new Set(objects.map((o) => `${o['kind']}/${o['metadata'].name}`)).size).toBe(objects.length)
  })

  it('the Deployment selects its pods and probes readiness and liveness on the admin /health', () => {
    const [dep] = ofKind('Deployment')
    const spec = dep!['spec']
    expect(spec.replicas).toBeGreaterThanOrEqual(2) // more than one edge: they share Redis
    expect(spec.template.metadata.labels).toMatchObject(spec.selector.matchLabels)
    const pod = spec.template.spec
    expect(pod.securityContext.runAsNonRoot).toBe(true)
    const [c] = pod.containers as Record<string, any>[]
    expect(c!['name']).toMatch(DNS_1123)
    expect(typeof c!['image']).toBe('string')
    const ports = new Map((c!['ports'] as { name: string; containerPort: number }[]).map((p) => [p.name, p.containerPort]))
    expect(ports).toEqual(new Map([['http', 2001], ['admin', 4001]]))
    for (const probe of [c!['readinessProbe'], c!['livenessProbe']]) {
      expect(probe.httpGet.path).toBe('/health')
      expect(ports.get(probe.httpGet.port) ?? probe.httpGet.port).toBe(4001)
    }
    // Room for strata's graceful shutdown (timeouts.shutdownMs) before the kubelet's SIGKILL.
    const config = configOf()
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.timeouts.shutdownMs)
  })

  it('the config file strata is started with comes from the ConfigMap, and strata accepts it', () => {
    const [dep] = ofKind('Deployment')
    const pod = dep!['spec'].template.spec
    const c = pod.containers[0]
    const configPath = c.args[c.args.indexOf('--config') + 1] as string
    expect(c.args[0]).toBe('serve')
    const mount = (c.volumeMounts as { name: string; mountPath: string }[]).find((m) => configPath.startsWith(`${m.mountPath}/`))
    expect(mount).toBeDefined()
    const volume = (pod.volumes as { name: string; configMap?: { name: string } }[]).find((v) => v.name === mount!.name)
    const [cm] = ofKind('ConfigMap')
    expect(volume?.configMap?.name).toBe(cm!['metadata'].name)
    expect(Object.keys(cm!['data'])).toContain(configPath.slice(mount!.mountPath.length + 1))
    const config = configOf()
    expect(config.listen.port).toBe(2001)
    expect(config.admin.port).toBe(4001)
    expect(config.cache.redis).toMatch(/^redis:\/\//) // the edges share L2, purges and sessions
    expect(config.balancer.sticky).not.toBeNull() // and one sticky secret
  })

  it('the Services reach ports the pods declare, with the pods\' labels', () => {
    const [dep] = ofKind('Deployment')
    const labels = dep!['spec'].template.metadata.labels
    const names = new Set((dep!['spec'].template.spec.containers[0].ports as { name: string }[]).map((p) => p.name))
    const targets: string[] = []
    for (const svc of ofKind('Service')) {
      expect(labels).toMatchObject(svc['spec'].selector)
      for (const p of svc['spec'].ports) {
        expect(names.has(p.targetPort)).toBe(true)
        targets.push(p.targetPort)
      }
    }
    expect(targets.sort()).toEqual(['admin', 'http'])
    // The admin API is not exposed outside the cluster.
    expect(ofKind('Service').find((s) => s['spec'].ports.some((p: { targetPort: string }) => p.targetPort === 'admin'))!['spec'].type).toBe('ClusterIP')
  })
})

function configOf() {
  const [cm] = ofKind('ConfigMap')
  return resolveConfig(JSON.parse(cm!['data']['config.json'] as string))
}
