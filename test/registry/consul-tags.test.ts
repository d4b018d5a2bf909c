// Consul tag-driven servers: a service whose instances carry the tag
// balancer.enable=true is published as a server/route, like a labelled
// container, through the real data path (sources -> Desired -> Reloader ->
// Engine), against the Consul stand-in.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConsulStandIn } from '../support/consul-standin.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { httpGet } from '../support/client.ts'
import { until } from '../support/poll.ts'
import { freePort } from '../e2e/harness.ts'
import { startRig } from '../sources/rig.ts'
import type { Rig } from '../sources/rig.ts'
import { labelsOf, taggedServers } from '../../src/sources/consul/translate.ts'

let consul: ConsulStandIn
let rig: Rig
let a: HttpUpstream
let b: HttpUpstream

beforeAll(async () => {
  consul = new ConsulStandIn()
  await consul.start()
  a = await httpUpstream(undefined, { name: 'shop-a' })
  b = await httpUpstream(undefined, { name: 'shop-b' })
  rig = await startRig({ docker: null, swarm: false, dockerResyncMs: 30_000, registries: [`consul://127.0.0.1:${consul.port}`] })
})
afterAll(async () => {
  await rig?.stop()
  await Promise.all([a?.close(), b?.close(), consul?.close()])
})

describe('Consul tag-driven servers', () => {
  it('tags balancer.enable/address/hosts publish a route; Meta balancer_weight weighs; deregistering removes it', async () => {
    const port = await freePort()
    const tags = ['balancer.enable=true', `balancer.address=127.0.0.1:${port}`, 'balancer.hosts=shop.example.com']
    consul.register({ Node: 'n1', Address: '127.0.0.1', Service: { ID: 'shop-a', Service: 'shop', Port: a.port, Tags: tags, Meta: { balancer_weight: '3' } } })
    consul.register({ Node: 'n2', Address: '127.0.0.1', Service: { ID: 'shop-b', Service: 'shop', Port: b.port, Tags: tags } })
    await until(async () => (await httpGet(port, '/', { host: 'shop.example.com' }).catch(() => ({ status: 0 }))).status === 200, 5000, 'the route to answer')
    const seen: Record<string, number> = {}
    for (let i = 0; i < 40; i++) {
      const r = await httpGet(port, '/', { host: 'shop.example.com' })
      seen[r.text] = (seen[r.text] ?? 0) + 1
    }
    // Weight 3 to 1, smooth weighted round robin: exactly 30 and 10 over 40.
    expect(seen).toEqual({ 'shop-a': 30, 'shop-b': 10 })
    expect((await httpGet(port, '/', { host: 'other.example.com' })).status).toBe(404)
    consul.deregister({ Node: 'n1' })
    consul.deregister({ Node: 'n2' })
    await until(async () => (await httpGet(port, '/', { host: 'shop.example.com' }).catch(() => ({ status: 0 }))).status !== 200, 5000, 'the route to go')
  })

  it('instances without balancer.enable=true are not published; bad settings are reported with the instance', () => {
    const inst = (id: string, tags: string[], meta: Record<string, string> = {}) => ({ id, Target: '10.0.0.1', Port: 80, tags, meta })
    const out = taggedServers(
      'consul',
      new Map([
        ['web', [inst('n/web-1', ['balancer.enable=true', 'balancer.weight=heavy']), inst('n/web-2', ['v2']), inst('n/web-3', ['balancer.enable=true'], { balancer_pathprefix: '/api' })]],
      ]),
    )
    expect(out.names).toEqual(['web/n/web-3'])
    expect(out.servers[0]).toMatchObject({ address: ':80', filter: { PathPrefix: '/api' }, upstreams: [{ Target: '10.0.0.1', Port: 80, Priority: 1, Weight: 1 }] })
    expect(out.problems).toEqual([{ path: 'consul:web/n/web-1', message: 'balancer.weight: must be an integer 1-1000, got "heavy"' }])
  })

  it('a tag wins over Meta; Meta keys spell dots as underscores', () => {
    expect(labelsOf({ id: 'x', Target: 'h', Port: 1, tags: ['balancer.weight=2', 'other'], meta: { balancer_weight: '5', balancer_health_path: '/hz', version: '1' } })).toEqual({
      'balancer.weight': '2',
      'balancer.health.path': '/hz',
    })
  })
})
