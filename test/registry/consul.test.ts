// Consul as a service registry, against the Consul stand-in (no Consul server
// can be installed here; test/support/consul-standin*.ts implement its
// catalog and health endpoints as Consul documents them).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { blockingOn, ConsulStandIn } from '../support/consul-standin.ts'
import { until } from '../support/poll.ts'
import { openRegistry } from '../../src/sources/registry-open.ts'
import { parseRegistryUrl } from '../../src/kv/registry-url.ts'
import type { RegistryUrl } from '../../src/kv/registry-url.ts'
import type { Recorded } from './harness.ts'
import { record } from './harness.ts'

let consul: ConsulStandIn
let url: RegistryUrl
const running: Recorded[] = []

beforeAll(async () => {
  consul = new ConsulStandIn()
  await consul.start()
  url = parseRegistryUrl(`consul://127.0.0.1:${consul.port}`) as RegistryUrl
})
afterAll(async () => {
  await consul.close()
})
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()))
})

function start(services: string[], damping?: { halfLifeMs: number; suppressAt: number; reuseBelow: number }): Recorded {
  const source = openRegistry(url, {}, { waitMs: 10_000, ...(damping === undefined ? {} : { damping }) })
  source.follow(services)
  const r = record(source)
  running.push(r)
  return r
}

function register(node: string, address: string, service: Record<string, unknown>, checks: Array<Record<string, unknown>> = []): void {
  consul.register({ Node: node, Address: address, Service: service, Checks: checks })
}

describe('Consul registry: /v1/health/service/<name>?passing with blocking queries', () => {
  it('reads the healthy instances, the address falling back to the node address, with tags and Meta', async () => {
    register('n1', '127.0.0.11', { ID: 'web-1', Service: 'web', Port: 8081, Tags: ['v1'], Meta: { balancer_weight: '3' } })
    register('n2', '127.0.0.12', { ID: 'web-2', Service: 'web', Address: '127.0.0.22', Port: 8082, Tags: ['v2'] })
    const r = start(['web'])
    await r.waitFor('web', ['127.0.0.11:8081', '127.0.0.22:8082'])
    const byId = Object.fromEntries((r.instances('web') ?? []).map((i) => [i.id, i]))
    expect(byId['n1/web-1']).toEqual({ id: 'n1/web-1', Target: '127.0.0.11', Port: 8081, tags: ['v1'], meta: { balancer_weight: '3' } })
    expect(byId['n2/web-2']?.tags).toEqual(['v2'])
    // Follows with blocking queries on the index it was given, not by polling.
    await until(() => consul.requests.some((q) => blockingOn(q.url, '/v1/health/service/web', true)), 5000, 'a blocking query')
    consul.deregister({ Node: 'n1' })
    consul.deregister({ Node: 'n2' })
  })

  it('a check turning critical takes the instance out at once; passing again brings it back', async () => {
    register('c1', '127.0.0.31', { ID: 'api-1', Service: 'api', Port: 9001 }, [{ CheckID: 'api-1-http', Name: 'http', Status: 'passing', ServiceID: 'api-1' }])
    register('c2', '127.0.0.32', { ID: 'api-2', Service: 'api', Port: 9002 }, [{ CheckID: 'serfHealth', Name: 'Serf', Status: 'passing', ServiceID: '' }])
    const r = start(['api'])
    await r.waitFor('api', ['127.0.0.31:9001', '127.0.0.32:9002'])
    consul.setCheck('c1', 'api-1-http', 'critical', 'api-1')
    await r.waitFor('api', ['127.0.0.32:9002'])
    // A node-level check failing takes every instance of the node out.
    consul.setCheck('c2', 'serfHealth', 'critical')
    await r.waitFor('api', [])
    consul.setCheck('c1', 'api-1-http', 'passing', 'api-1')
    consul.setCheck('c2', 'serfHealth', 'passing')
    await r.waitFor('api', ['127.0.0.31:9001', '127.0.0.32:9002'])
    consul.deregister({ Node: 'c1' })
    consul.deregister({ Node: 'c2' })
  })

  it('a service registered after it is followed is seen; an unknown one is an empty set, not an error', async () => {
    const r = start(['late'])
    await r.waitFor('late', [])
    register('l1', '127.0.0.41', { Service: 'late', Port: 7000 })
    await r.waitFor('late', ['127.0.0.41:7000'])
    expect(r.reports.filter((e) => e !== null)).toEqual([])
    consul.deregister({ Node: 'l1' })
    await r.waitFor('late', [])
  })

  it('an index that goes backwards (snapshot restore) is read again from 0, and the restored state wins', async () => {
    register('s1', '127.0.0.51', { Service: 'snap', Port: 7001 })
    const snap = consul.snapshot()
    const r = start(['snap'])
    await r.waitFor('snap', ['127.0.0.51:7001'])
    register('s2', '127.0.0.52', { Service: 'snap', Port: 7002 })
    await r.waitFor('snap', ['127.0.0.51:7001', '127.0.0.52:7002'])
    consul.restore(snap)
    await r.waitFor('snap', ['127.0.0.51:7001'])
    consul.deregister({ Node: 's1' })
  })

  it('an instance with no usable port is left out and reported with its path; the others stay', async () => {
    register('p1', '127.0.0.61', { ID: 'bad', Service: 'ports', Port: 0 })
    register('p2', '127.0.0.62', { ID: 'good', Service: 'ports', Port: 7100 })
    const r = start(['ports'])
    await r.waitFor('ports', ['127.0.0.62:7100'])
    expect(r.publishes.at(-1)?.detail.problems).toEqual([{ path: 'consul:ports/p1/bad', message: 'port must be an integer 1-65535, got 0; left out' }])
    consul.deregister({ Node: 'p1' })
    consul.deregister({ Node: 'p2' })
  })

  it('the stand-in refuses Meta keys with dots, as Consul does (so settings in Meta use balancer_<name>)', () => {
    expect(() => consul.register({ Node: 'm1', Address: '127.0.0.1', Service: { Service: 'm', Port: 1, Meta: { 'balancer.weight': '2' } } })).toThrow(/Key contains invalid characters/)
  })

  it('an outage keeps the last known instances, is reported once and shows in health(); it recovers by itself', async () => {
    register('o1', '127.0.0.71', { Service: 'out', Port: 7200 })
    const r = start(['out'])
    await r.waitFor('out', ['127.0.0.71:7200'])
    await until(() => r.source.health().state === 'connected', 5000, 'connected')
    const published = r.publishes.length
    await consul.stop()
    await until(() => r.source.health().state === 'unreachable', 5000, 'unreachable')
    expect(r.source.health()).toMatchObject({ name: 'consul', kind: 'consul', state: 'unreachable', services: { out: 1 } })
    expect(r.reports.filter((e) => e !== null)).toHaveLength(1)
    expect(r.addresses('out')).toEqual(['127.0.0.71:7200'])
    expect(r.publishes.length).toBe(published)
    await consul.start()
    await until(() => r.source.health().state === 'connected', 10_000, 'connected again')
    expect(r.reports.at(-1)).toBeNull()
    register('o2', '127.0.0.72', { Service: 'out', Port: 7201 })
    await r.waitFor('out', ['127.0.0.71:7200', '127.0.0.72:7201'])
    consul.deregister({ Node: 'o1' })
    consul.deregister({ Node: 'o2' })
  })

  it('a flapping instance is damped: after repeated flaps it stays out until its penalty decays', async () => {
    register('f1', '127.0.0.81', { ID: 'flap', Service: 'flappy', Port: 7300 }, [{ CheckID: 'flap-c', Name: 'c', Status: 'passing', ServiceID: 'flap' }])
    register('f2', '127.0.0.82', { ID: 'steady', Service: 'flappy', Port: 7301 })
    const r = start(['flappy'], { halfLifeMs: 1500, suppressAt: 2.5, reuseBelow: 1 })
    const both = ['127.0.0.81:7300', '127.0.0.82:7301']
    await r.waitFor('flappy', both)
    for (let i = 0; i < 3; i++) {
      consul.setCheck('f1', 'flap-c', 'critical', 'flap')
      await r.waitFor('flappy', ['127.0.0.82:7301'])
      consul.setCheck('f1', 'flap-c', 'passing', 'flap')
      if (i < 2) await r.waitFor('flappy', both)
    }
    // Third flap: passing again, but held out.
    await until(() => r.source.health().damped.length === 1, 2000, 'damped')
    expect(r.source.health().damped).toEqual(['flappy/127.0.0.81:7300'])
    expect(r.addresses('flappy')).toEqual(['127.0.0.82:7301'])
    // Released once the penalty decays (about 1.5 half-lives here), without any registry change.
    await r.waitFor('flappy', both, 10_000)
    consul.deregister({ Node: 'f1' })
    consul.deregister({ Node: 'f2' })
  })
})
