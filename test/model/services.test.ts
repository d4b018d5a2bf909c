import { describe, expect, it } from 'vitest'
import { mergeDiscovered, originKey } from '../../src/control/merge.ts'
import { followedBy, referencedServices, resolveServices } from '../../src/model/services.ts'
import type { RegistryView, ServiceInstance } from '../../src/model/services.ts'
import { normalizeConfig } from '../../src/model/normalize.ts'
import { readLabels, labelServer } from '../../src/model/labels.ts'

const inst = (id: string, Target: string, Port: number, tags: string[] = [], meta: Record<string, string> = {}): ServiceInstance => ({ id, Target, Port, tags, meta })

const cfg = normalizeConfig({
  servers: [
    {
      address: ':80',
      upstreams: [
        { Target: '10.0.0.9', Port: 80 },
        { Service: 'web', Tags: ['v2'], Weight: 2 },
      ],
      fallbacks: [{ Service: 'sorry', Registry: 'apps' }],
      routes: [{ name: 'api', filter: { PathPrefix: '/api' }, upstreams: [{ Service: 'api', Registry: 'consul', Priority: 3 }] }],
    },
  ],
})

const view: RegistryView = new Map([
  [
    'consul',
    {
      web: [inst('n1/web-1', '10.0.0.1', 8080, ['v2']), inst('n2/web-2', '10.0.0.2', 8080, ['v1']), inst('n3/web-3', '10.0.0.9', 80, ['v2'])],
      api: [inst('n1/api', '10.0.0.1', 9000, [], { balancer_weight: '7', balancer_priority: 'high' })],
    },
  ],
  ['apps', { web: [inst('w', '10.0.1.1', 8080, ['v2', 'x'], { 'balancer.priority': '0' })], sorry: [inst('s', '10.0.2.1', 80)] }],
])

describe('service references', () => {
  it('are listed by registry, and each registry follows its own plus the unnamed ones', () => {
    expect(referencedServices(cfg)).toEqual(
      new Map([
        ['', new Set(['web'])],
        ['apps', new Set(['sorry'])],
        ['consul', new Set(['api'])],
      ]),
    )
    expect(followedBy(cfg, ['consul', 'apps', 'etcd'])).toEqual(
      new Map([
        ['consul', new Set(['web', 'api'])],
        ['apps', new Set(['web', 'sorry'])],
        ['etcd', new Set(['web'])],
      ]),
    )
  })

  it('resolve to the instances with every tag, from every registry when none is named; metadata overrides Priority and Weight; a written address wins', () => {
    const r = resolveServices(cfg, view)
    const s = r.config.servers[0]
    // The reference stays in its place (shown, stored back as is), its instances follow it; the compiler routes addresses only.
    expect(s?.upstreams).toEqual([
      { Target: '10.0.0.9', Port: 80, Priority: 1, Weight: 1 },
      { Service: 'web', Registry: '', Tags: ['v2'], Priority: 1, Weight: 2 },
      { Target: '10.0.0.1', Port: 8080, Priority: 1, Weight: 2 },
      { Target: '10.0.1.1', Port: 8080, Priority: 0, Weight: 2 },
    ])
    expect(s?.fallbacks).toEqual([
      { Service: 'sorry', Registry: 'apps', Tags: [], Priority: 1, Weight: 1 },
      { Target: '10.0.2.1', Port: 80, Priority: 1, Weight: 1 },
    ])
    expect(s?.routes[0]?.upstreams).toEqual([
      { Service: 'api', Registry: 'consul', Tags: [], Priority: 3, Weight: 1 },
      { Target: '10.0.0.1', Port: 9000, Priority: 3, Weight: 7 },
    ])
    expect(r.problems).toEqual([{ path: 'consul:api/n1/api', message: 'balancer.priority: must be an integer 0-1000, got "high"; the reference\'s Priority 3 applies' }])
    expect(r.members.map((m) => [m.route, m.list, `${m.member.Target}:${m.member.Port}`, m.registry, m.name])).toEqual([
      ['default', 'upstreams', '10.0.0.1:8080', 'consul', 'web/n1/web-1'],
      ['default', 'upstreams', '10.0.1.1:8080', 'apps', 'web/w'],
      ['default', 'fallbacks', '10.0.2.1:80', 'apps', 'sorry/s'],
      ['api', 'upstreams', '10.0.0.1:9000', 'consul', 'api/n1/api'],
    ])
  })

  it('a registry that is not configured resolves to nothing, with a problem naming the configured ones', () => {
    const r = resolveServices(cfg, new Map([['consul', {}]]))
    expect(r.config.servers[0]?.fallbacks).toEqual([{ Service: 'sorry', Registry: 'apps', Tags: [], Priority: 1, Weight: 1 }])
    expect(r.problems).toEqual([{ path: ':80#default.fallbacks[0]', message: 'service "sorry": no registry named "apps" is configured (--registry; configured: consul)' }])
  })

  it("instances speak the reference's Protocol; one whose address speaks another protocol elsewhere is left out, not the whole configuration", () => {
    const h2 = normalizeConfig({
      servers: [
        { address: ':80', upstreams: [{ Service: 'grpc', Protocol: 'h2c' }] },
        { address: ':81', upstreams: [{ Target: '10.0.0.2', Port: 50051 }] },
      ],
    })
    const r = resolveServices(h2, new Map([['consul', { grpc: [inst('a', '10.0.0.1', 50051), inst('b', '10.0.0.2', 50051)] }]]))
    expect(r.config.servers[0]?.upstreams).toEqual([
      { Service: 'grpc', Registry: '', Tags: [], Priority: 1, Weight: 1, Protocol: 'h2c' },
      { Target: '10.0.0.1', Port: 50051, Priority: 1, Weight: 1, Protocol: 'h2c' },
    ])
    expect(r.problems).toEqual([{ path: 'consul:grpc/b', message: '10.0.0.2-50051 speaks http/1.1 elsewhere in the configuration, the reference says h2c; left out' }])
    expect(() => normalizeConfig({ servers: [{ address: ':80', upstreams: [{ Service: 'grpc', Protocol: 'h3' }] }] })).toThrow(/servers\[0\]\.upstreams\[0\]\.Protocol/)
  })

  it('a reference with Protocol h2 resolves to instances reached over TLS (Scheme https)', () => {
    const tls = normalizeConfig({ servers: [{ address: ':80', upstreams: [{ Service: 'grpc', Protocol: 'H2' }] }] })
    const r = resolveServices(tls, new Map([['consul', { grpc: [inst('a', 'grpc.internal', 443)] }]]))
    expect(r.config.servers[0]?.upstreams).toEqual([
      { Service: 'grpc', Registry: '', Tags: [], Priority: 1, Weight: 1, Protocol: 'h2' },
      { Target: 'grpc.internal', Port: 443, Priority: 1, Weight: 1, Protocol: 'h2', Scheme: 'https' },
    ])
    expect(r.problems).toEqual([])
  })

  it('the merge resolves them last and records each instance with its registry as origin', () => {
    const m = mergeDiscovered(cfg, [], view)
    expect(m.config.servers[0]?.upstreams).toHaveLength(4)
    expect(m.origins.get(originKey(':80', 'default', 'upstreams', { Target: '10.0.1.1', Port: 8080 }))).toEqual({ origin: 'apps', name: 'web/w' })
    expect(m.origins.has(originKey(':80', 'default', 'upstreams', { Target: '10.0.0.9', Port: 80 }))).toBe(false)
    expect(m.services.get('')).toEqual(new Set(['web']))
  })

  it('labels balancer.service / registry / tags make the route go to that service', () => {
    const read = readLabels({
      'balancer.enable': 'true',
      'balancer.hosts': 'shop.example.com',
      'balancer.service': 'shop',
      'balancer.registry': 'Consul',
      'balancer.tags': 'v2,eu',
      'balancer.weight': '4',
    })
    expect(read).toMatchObject({ enabled: true, problems: [], notes: [] })
    const settings = read.enabled ? read.settings : null
    expect(settings?.service).toEqual({ Service: 'shop', Registry: 'consul', Tags: ['v2', 'eu'] })
    expect(labelServer(settings!, [{ Target: '172.17.0.5', Port: 80 }]).upstreams).toEqual([{ Service: 'shop', Registry: 'consul', Tags: ['v2', 'eu'], Priority: 1, Weight: 4 }])
    const grpc = readLabels({ 'balancer.enable': 'true', 'balancer.service': 'greeter', 'balancer.protocol': 'h2c' })
    const g = grpc.enabled ? grpc.settings : null
    expect(labelServer(g!, []).upstreams).toEqual([{ Service: 'greeter', Registry: '', Tags: [], Priority: 1, Weight: 1, Protocol: 'h2c' }])
    const bad = readLabels({ 'balancer.enable': 'true', 'balancer.service': 'a/b' })
    expect(bad.enabled && bad.problems).toEqual([{ path: 'balancer.service', message: 'must be a service name (1-128 characters, no "/" or whitespace), got "a/b"' }])
  })
})
