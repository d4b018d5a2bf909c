// Policy labels (balancer.health.*, .passive.*, .retry.*, .limits.*) through
// both translators and the merge, without a daemon: real inspect output from
// the golden files with labels added.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { ContainerInspect, SwarmService, SwarmTask } from '../../src/docker-api/types.ts'
import { readLabels } from '../../src/model/labels.ts'
import { mergeDiscovered, parseDiscovered } from '../../src/control/merge.ts'
import { validateConfig } from '../../src/model/validate.ts'
import { translateContainer } from '../../src/sources/docker/translate.ts'
import { translateService } from '../../src/sources/swarm/translate.ts'

const GOLDEN = resolve(import.meta.dirname, '../golden')

function container(name: string, ip: string, labels: Record<string, string>): ContainerInspect {
  const c = (JSON.parse(readFileSync(`${GOLDEN}/docker/health.in.json`, 'utf8')) as { containers: ContainerInspect[] }).containers[2] as ContainerInspect
  const copy = structuredClone(c) as ContainerInspect & { Name: string; Config: { Labels: Record<string, string> }; NetworkSettings: { Networks: Record<string, { IPAddress: string }> } }
  copy.Name = `/${name}`
  copy.Id = name.padEnd(64, '0')
  copy.Config.Labels = { 'balancer.enable': 'true', ...labels }
  const bridge = copy.NetworkSettings.Networks['bridge']
  if (bridge !== undefined) bridge.IPAddress = ip
  return copy
}

describe('policy labels', () => {
  it('a group is present only when one of its labels is, completed with defaults', () => {
    const r = readLabels({ 'balancer.enable': 'true', 'balancer.retry.attempts': '1', 'balancer.limits.maxpending': '' })
    expect(r.enabled && r.settings?.policy).toEqual({ retry: { Statuses: [502, 503, 504], Attempts: 1, Budget: 20 }, limits: { MaxConnections: 0, MaxPending: 0 } })
    const none = readLabels({ 'balancer.enable': 'true' })
    expect(none.enabled && none.settings?.policy).toEqual({})
  })

  it('swarm: service labels give the server its groups', () => {
    const c = JSON.parse(readFileSync(`${GOLDEN}/swarm/tasks.in.json`, 'utf8')) as { services: Array<{ service: SwarmService; tasks: SwarmTask[] }> }
    const first = c.services[0]
    if (first === undefined) throw new Error('golden case has no service')
    const svc = structuredClone(first.service) as SwarmService & { Spec: { Labels: Record<string, string> } }
    Object.assign(svc.Spec.Labels, { 'balancer.health.path': '/healthz', 'balancer.health.interval': '10s', 'balancer.passive.failures': '0' })
    const out = translateService(svc, first.tasks, null, new Set())
    expect(out?.problems).toEqual([])
    expect(out?.server?.health).toMatchObject({ Type: 'http', Path: '/healthz', Interval: '10s', Timeout: '2s' })
    expect(out?.server?.passive).toEqual({ Failures: 0, Ejection: '1s', MaxEjection: '30s', EjectOn5xx: false })
    expect(out?.server?.upstreams.length).toBeGreaterThan(0)
  })

  it('swarm: a bad value keeps the service out and names the label', () => {
    const c = JSON.parse(readFileSync(`${GOLDEN}/swarm/tasks.in.json`, 'utf8')) as { services: Array<{ service: SwarmService; tasks: SwarmTask[] }> }
    const first = c.services[0]
    if (first === undefined) throw new Error('golden case has no service')
    const svc = structuredClone(first.service) as SwarmService & { Spec: { Labels: Record<string, string> } }
    Object.assign(svc.Spec.Labels, { 'balancer.health.timeout': '10s', 'balancer.health.interval': '1s' })
    const out = translateService(svc, first.tasks, null, new Set())
    expect(out?.server).toBeNull()
    expect(out?.problems).toEqual([{ path: 'balancer.health.timeout', message: 'must not be longer than Interval (1s), got "10s"' }])
  })

  it('containers of one upstream set that disagree on a group: all join, the first decides, the other is reported', () => {
    const labels = { 'balancer.hosts': 'shop.example.com', 'balancer.address': ':80' }
    const a = translateContainer(container('web-1', '172.17.0.21', { ...labels, 'balancer.health.path': '/healthz' }), null)
    const b = translateContainer(container('web-2', '172.17.0.22', { ...labels, 'balancer.health.path': '/healthz' }), null)
    const c = translateContainer(container('web-3', '172.17.0.23', { ...labels, 'balancer.health.path': '/other' }), null)
    const d = translateContainer(container('web-4', '172.17.0.24', labels), null)
    const all = [a, b, c, d]
    const servers = all.flatMap((t) => (t?.server ? [t.server] : []))
    expect(servers).toHaveLength(4)
    const merged = mergeDiscovered({ servers: [] }, [parseDiscovered({ origin: 'docker', servers, names: all.map((t) => t?.name ?? '') })])
    expect(validateConfig(merged.config)).toEqual([])
    const s = merged.config.servers[0]
    expect(s?.health?.Path).toBe('/healthz')
    expect(s?.upstreams.map((u) => u.Target)).toEqual(['172.17.0.21', '172.17.0.22', '172.17.0.23', '172.17.0.24'])
    expect(merged.problems).toEqual([
      { path: 'docker:web-3', message: 'docker "web-3": its balancer.health.* labels differ from those of docker "web-1", which shares its address and filter; those of docker "web-1" apply' },
    ])
  })
})
