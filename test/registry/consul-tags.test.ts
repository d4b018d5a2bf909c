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
import { normalizeConfig } from '../../src/model/parse.ts'

let consul: ConsulStandIn
let rig: Rig
let a: HttpUpstream
let b: HttpUpstream
let c: HttpUpstream

beforeAll(async () => {
  consul = new ConsulStandIn()
  await consul.start()
  a = await httpUpstream(undefined, { name: 'shop-a' })
  b = await httpUpstream(undefined, { name: 'shop-b' })
  c = await httpUpstream(undefined, { name: 'other' })
  rig = await startRig({ docker: null, swarm: false, dockerResyncMs: 30_000, registries: [`consul://127.0.0.1:${consul.port}`] })
})
afterAll(async () => {
  await rig?.stop()
  await Promise.all([a?.close(), b?.close(), c?.close(), consul?.close()])
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

  it("Meta balancer_enable=true alone publishes too (found through Consul's filter on the services list)", async () => {
    const port = await freePort()
    const meta = { balancer_enable: 'true', balancer_address: `127.0.0.1:${port}`, balancer_hosts: 'meta.example.com' }
    consul.register({ Node: 'n1', Address: '127.0.0.1', Service: { ID: 'meta-a', Service: 'meta-only', Port: a.port, Meta: meta } })
    await until(async () => (await httpGet(port, '/', { host: 'meta.example.com' }).catch(() => ({ text: '' }))).text === 'shop-a', 5000, 'the Meta-enabled route to answer')
    // Meta balancer_enable=false on the only instance: the service no longer matches the filter and leaves.
    consul.register({ Node: 'n1', Address: '127.0.0.1', Service: { ID: 'meta-a', Service: 'meta-only', Port: a.port, Meta: { ...meta, balancer_enable: 'false' } } })
    await until(async () => (await httpGet(port, '/', { host: 'meta.example.com' }).catch(() => ({ status: 0 }))).status !== 200, 5000, 'the route to go')
    consul.deregister({ Node: 'n1' })
  })

  it('the discovery rules apply to them: a stored constraint sees tags and Meta as labels; two services claiming one route: the first keeps it', async () => {
    const port = await freePort()
    const address = `127.0.0.1:${port}`
    await rig.control.write(() =>
      normalizeConfig({ servers: [{ address, routes: [{ name: 'shop', filter: { Hosts: ['shop.example.com'] }, discovery: { Constraint: 'label:team=shop && name:shop' } }] }] }),
    )
    const on = (host: string): string[] => ['balancer.enable=true', `balancer.address=${address}`, `balancer.hosts=${host}`]
    consul.register({ Node: 'n1', Address: '127.0.0.1', Service: { ID: 'shop-a', Service: 'shop', Port: a.port, Tags: [...on('shop.example.com'), 'team=shop'] } })
    consul.register({ Node: 'n2', Address: '127.0.0.1', Service: { ID: 'intruder', Service: 'intruder', Port: c.port, Tags: on('shop.example.com'), Meta: { team: 'shop' } } })
    consul.register({ Node: 'n3', Address: '127.0.0.1', Service: { ID: 'alpha', Service: 'alpha', Port: b.port, Tags: on('claim.example.com') } })
    consul.register({ Node: 'n4', Address: '127.0.0.1', Service: { ID: 'beta', Service: 'beta', Port: c.port, Tags: on('claim.example.com') } })
    const refused = (): string[] =>
      rig.control
        .served()
        .refused.map((r) => `${r.origin} ${r.name}: ${r.reason}`)
        .sort()
    await until(() => refused().length === 2, 5000, `two refusals (now ${JSON.stringify(refused())})`)
    expect(refused()).toEqual([
      `consul beta/n4/beta: ${address} claim.example.com is claimed by consul:alpha; consul:beta may not join it (give it another host or path, or let a stored route admit both with a discovery constraint)`,
      'consul intruder/n2/intruder: does not match the constraint "label:team=shop && name:shop" of route "shop" of server ' + JSON.stringify(address),
    ])
    await until(async () => (await httpGet(port, '/', { host: 'claim.example.com' }).catch(() => ({ text: '' }))).text === 'shop-b', 5000, 'alpha to serve its route')
    const seen = new Set<string>()
    for (let i = 0; i < 10; i++) {
      seen.add((await httpGet(port, '/', { host: 'shop.example.com' })).text)
      seen.add((await httpGet(port, '/', { host: 'claim.example.com' })).text)
    }
    expect([...seen].sort()).toEqual(['shop-a', 'shop-b'])
    for (const n of ['n1', 'n2', 'n3', 'n4']) consul.deregister({ Node: n })
    await until(() => refused().length === 0, 5000, 'the refusals to go with the services')
  })

  it('instances without balancer.enable=true are not published; bad settings are reported with the instance', () => {
    const inst = (id: string, tags: string[], meta: Record<string, string> = {}) => ({ id, Target: '10.0.0.1', Port: 80, tags, meta })
    const out = taggedServers(
      'consul',
      new Map([['web', [inst('n/web-1', ['balancer.enable=true', 'balancer.weight=heavy']), inst('n/web-2', ['v2']), inst('n/web-3', ['balancer.enable=true'], { balancer_pathprefix: '/api' })]]]),
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
