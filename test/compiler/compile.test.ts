import { describe, expect, it } from 'vitest'
import { compile } from '../../src/compiler/compile.ts'
import { Scheme } from '../../src/compiler/snapshot.ts'
import type { ListenerPlan, RoutePlan } from '../../src/compiler/snapshot.ts'
import { BalancerError, ErrorCode } from '../../src/model/errors.ts'
import { EMPTY_CONFIG, parseConfig, parseConfigText, validByConstruction } from '../../src/model/parse.ts'
import type { Config, ValidConfig } from '../../src/model/types.ts'

function listener(cfg: ValidConfig, key: string): ListenerPlan {
  const l = compile(cfg, 1).listeners.get(key)
  if (l === undefined) throw new Error(`no listener ${key}`)
  return l
}

const cfg = (text: string): ValidConfig => parseConfigText(text)

describe('compile: listeners and targets', () => {
  it('builds one listener per address key, with the version given', () => {
    const snap = compile(cfg('[{"address":":8080"},{"address":"127.0.0.1:9000"},{"address":"[::1]:9000"}]'), 7)
    expect(snap.version).toBe(7)
    expect([...snap.listeners.keys()]).toEqual(['*:8080', '127.0.0.1:9000', '[::1]:9000'])
    expect(snap.listeners.get('[::1]:9000')?.listen).toEqual({ key: '[::1]:9000', host: '::1', port: 9000 })
    expect(snap.listeners.get('*:8080')?.listen).toEqual({ key: '*:8080', host: '', port: 8080 })
  })

  it('compiles the seed quick start: one default route, any host, any scheme', () => {
    const snap = compile(cfg('{"address":":8080","upstreams":[{"Target":"www.google.com","Port":80}]}'), 1)
    const routes = snap.listeners.get('*:8080')?.routes ?? []
    expect(routes).toHaveLength(1)
    const r = routes[0] as RoutePlan
    expect(r.id).toBe(':8080#default')
    expect(r.server).toBe(':8080')
    expect(r.name).toBe('default')
    expect(r.anyHost).toBe(true)
    expect(r.hostsExact.size).toBe(0)
    expect(r.schemes).toBe(Scheme.Any)
    expect(r.pathPrefix).toBe('')
    expect(r.tiers).toEqual([{ priority: 1, targets: [{ key: 'www.google.com:80', host: 'www.google.com', port: 80, weight: 1 }] }])
    expect(r.fallbacks).toEqual([])
    expect([...snap.targets]).toEqual([['www.google.com:80', { host: 'www.google.com', port: 80 }]])
  })

  it('groups upstreams and fallbacks into tiers by Priority ascending, config order inside a tier', () => {
    const r = listener(
      cfg(`{"address":":80",
        "upstreams":[{"Target":"c","Port":1,"Priority":2},{"Target":"a","Port":1,"Priority":0,"Weight":3},{"Target":"b","Port":1,"Priority":2,"Weight":5},{"Target":"d","Port":1}],
        "fallbacks":{"f2-1":{"Priority":9},"f1-1":{"Priority":3}}}`),
      '*:80',
    ).routes[0] as RoutePlan
    expect(r.tiers.map((t) => [t.priority, t.targets.map((x) => `${x.key}/${x.weight}`)])).toEqual([
      [0, ['a:1/3']],
      [1, ['d:1/1']],
      [2, ['c:1/1', 'b:1/5']],
    ])
    expect(r.fallbacks.map((t) => [t.priority, t.targets.map((x) => x.key)])).toEqual([
      [3, ['f1:1']],
      [9, ['f2:1']],
    ])
  })

  it('keys targets lower-cased, IPv6 in brackets, shared across routes and servers', () => {
    const snap = compile(
      cfg(`[{"address":":80","upstreams":[{"Target":"App.Example","Port":8080},{"Target":"::1","Port":8080}],
             "routes":[{"name":"r","filter":{"PathPrefix":"/r"},"fallbacks":[{"Target":"app.example","Port":8080}]}]},
            {"address":":81","upstreams":[{"Target":"[::1]","Port":8080}]}]`),
      1,
    )
    const def = snap.listeners.get('*:80')?.routes.find((r) => r.name === 'default')
    expect(def?.tiers[0]?.targets.map((t) => [t.key, t.host])).toEqual([
      ['app.example:8080', 'App.Example'],
      ['[::1]:8080', '::1'],
    ])
    expect([...snap.targets.keys()]).toEqual(['app.example:8080', '[::1]:8080'])
    expect(snap.targets.get('[::1]:8080')).toEqual({ host: '::1', port: 8080 })
  })

  it('compiles hosts into exact names and wildcard suffixes, and schemes into a mask', () => {
    const r = listener(cfg('{"address":":80","filter":{"Hosts":["A.com","*.x.io","*.deep.x.io"],"Schemes":["https"],"PathPrefix":"/p"}}'), '*:80').routes[0] as RoutePlan
    expect([...r.hostsExact]).toEqual(['a.com'])
    expect(r.hostSuffixes).toEqual(['.deep.x.io', '.x.io'])
    expect(r.anyHost).toBe(false)
    expect(r.schemes).toBe(Scheme.Https)
    expect(r.pathPrefix).toBe('/p')
  })

  it('takes only what the parser accepted; its guards throw before building anything if an invalid config gets through', () => {
    const server = (address: string): Config['servers'][number] => ({
      address,
      filter: { Hosts: [], Schemes: [], PathPrefix: '' },
      upstreams: [],
      fallbacks: [],
      routes: [],
    })
    // The parser refuses both with the model's codes, so neither can reach compile() as a ValidConfig ...
    expect(() => parseConfig({ servers: [server(':80'), server('127.0.0.1:80')] })).toThrow(
      expect.objectContaining({ code: ErrorCode.Conflict, problems: [expect.objectContaining({ path: 'servers[1].address' })] }),
    )
    expect(() => parseConfig({ servers: [server('nope')] })).toThrow(expect.objectContaining({ code: ErrorCode.Validation }))
    // ... and compile() checks nothing again, but does not build half a snapshot from a forged one.
    expect(() => compile(validByConstruction({ servers: [server('nope')] }), 1)).toThrow(BalancerError)
    expect(() => compile(validByConstruction({ servers: [server(':80'), server('80')] }), 1)).toThrow(expect.objectContaining({ code: ErrorCode.Conflict }))
  })
})

describe('compile: route order', () => {
  it('exact hosts, then wildcards by longer suffix, then any host; longer PathPrefix first; stable otherwise', () => {
    const l = listener(
      cfg(`{"address":":80","routes":[
        {"name":"any-long","filter":{"PathPrefix":"/long/"}},
        {"name":"wild-short","filter":{"Hosts":["*.b.com"]}},
        {"name":"wild-long","filter":{"Hosts":["*.a.b.com"]}},
        {"name":"wild-short-path","filter":{"Hosts":["*.c.com"],"PathPrefix":"/x"}},
        {"name":"exact","filter":{"Hosts":["a.com"]}},
        {"name":"exact-path","filter":{"Hosts":["b.com"],"PathPrefix":"/api"}},
        {"name":"any-1","filter":{"PathPrefix":"/a"}},
        {"name":"any-2","filter":{"PathPrefix":"/b"}}
      ]}`),
      '*:80',
    )
    expect(l.routes.map((r) => r.name)).toEqual(['exact-path', 'exact', 'wild-long', 'wild-short-path', 'wild-short', 'any-long', 'any-1', 'any-2', 'default'])
  })
})

describe('compile: purity', () => {
  const text = `{"address":":80","filter":{"Hosts":["a.com"]},"upstreams":[{"Target":"x","Port":1},{"Target":"y","Port":2,"Priority":2}],
    "routes":[{"name":"w","filter":{"Hosts":["*.a.com"]},"fallbacks":[{"Target":"z","Port":3}]}]}`

  it('same input -> deep-equal output', () => {
    expect(compile(cfg(text), 3)).toEqual(compile(cfg(text), 3))
  })

  it('does not mutate its input and returns frozen plans', () => {
    const input = cfg(text)
    const before = JSON.stringify(input)
    const snap = compile(input, 1)
    expect(JSON.stringify(input)).toBe(before)
    const l = snap.listeners.get('*:80') as ListenerPlan
    expect(Object.isFrozen(snap)).toBe(true)
    expect(Object.isFrozen(l)).toBe(true)
    expect(Object.isFrozen(l.routes)).toBe(true)
    expect(Object.isFrozen(l.routes[0])).toBe(true)
    expect(Object.isFrozen(l.routes[0]?.tiers[0]?.targets)).toBe(true)
  })

  it('the empty config compiles to no listeners', () => {
    const snap = compile(EMPTY_CONFIG, 1)
    expect(snap.listeners.size).toBe(0)
    expect(snap.targets.size).toBe(0)
  })
})
