import { describe, expect, it } from 'vitest'
import { BalancerError, ErrorCode } from '../../src/model/errors.ts'
import type { Problem } from '../../src/model/errors.ts'
import { normalizeConfig, normalizeFilter, normalizeRoute, normalizeServer, normalizeUpstream, parseConfigText } from '../../src/model/parse.ts'

function problems(fn: () => unknown): Problem[] {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(BalancerError)
    const e = err as BalancerError
    expect(e.code).toBe(ErrorCode.Validation)
    expect(e.status).toBe(400)
    return e.problems
  }
  throw new Error('expected a validation error')
}

const paths = (ps: Problem[]): string[] => ps.map((p) => p.path)

describe('normalizeUpstream', () => {
  it('fills Priority and Weight with 1 and keeps the canonical field order', () => {
    const u = normalizeUpstream({ port: '8080', target: 'app' })
    expect(u).toEqual({ Target: 'app', Port: 8080, Priority: 1, Weight: 1 })
    expect(Object.keys(u)).toEqual(['Target', 'Port', 'Priority', 'Weight'])
  })

  it('accepts numeric strings (KV stores and labels carry strings) and null as missing', () => {
    expect(normalizeUpstream({ Target: 'a', Port: 1, Priority: '0', Weight: ' 1000 ' })).toEqual({ Target: 'a', Port: 1, Priority: 0, Weight: 1000 })
    expect(normalizeUpstream({ Target: 'a', Port: 1, Priority: null, Weight: null })).toEqual({ Target: 'a', Port: 1, Priority: 1, Weight: 1 })
  })

  it('stores IPv6 targets without brackets, compressed', () => {
    expect(normalizeUpstream({ Target: '[2001:DB8:0:0::1]', Port: 80 }).Target).toBe('2001:db8::1')
    expect(normalizeUpstream({ Target: '::1', Port: 80 }).Target).toBe('::1')
  })

  it('reports every problem with a body.* path', () => {
    const ps = problems(() => normalizeUpstream({ Target: 'http://x', Port: 'http', Priority: -1, Weight: 1.5, Extra: 1 }))
    expect(ps).toEqual([
      { path: 'body.Extra', message: 'unknown field (expected one of Target, Port, Priority, Weight, Protocol, Scheme)' },
      { path: 'body.Target', message: 'must be a host name or IP address without a scheme, got "http://x"; write "x"' },
      { path: 'body.Port', message: 'must be an integer 1-65535, got "http"' },
      { path: 'body.Priority', message: 'must be an integer 0-1000, got -1' },
      { path: 'body.Weight', message: 'must be an integer 1-1000, got 1.5' },
    ])
  })

  it.each([
    [{ Port: 80 }, 'body.Target', 'required'],
    [{ Target: 'a' }, 'body.Port', 'required: an integer 1-65535'],
    [{ Target: '', Port: 80 }, 'body.Target', 'must not be empty'],
    [{ Target: 'a b', Port: 80 }, 'body.Target', 'must not contain spaces'],
    [{ Target: 'a.com:80', Port: 80 }, 'body.Target', 'must not include a port'],
    [{ Target: '[::1]:80', Port: 80 }, 'body.Target', 'must not include a port'],
    [{ Target: 'a.com/x', Port: 80 }, 'body.Target', 'without a path'],
    [{ Target: '999.1.1.1', Port: 80 }, 'body.Target', 'not a valid IPv4'],
    [{ Target: 'bad!name', Port: 80 }, 'body.Target', 'must be a host name or IP address'],
    [{ Target: 7, Port: 80 }, 'body.Target', 'must be a string, got 7'],
    [{ Target: 'a', Port: 0 }, 'body.Port', 'must be an integer 1-65535, got 0'],
    [{ Target: 'a', Port: 65536 }, 'body.Port', 'got 65536'],
    [{ Target: 'a', Port: true }, 'body.Port', 'got true'],
    [{ Target: 'a', Port: [80] }, 'body.Port', 'got a list'],
    [{ Target: 'a', Port: 80, target: 'b' }, 'body.target', 'same field as "Target"'],
    ['a-80', 'body', 'must be an object, got "a-80"'],
  ])('%j -> %s: %s', (raw, path, message) => {
    const ps = problems(() => normalizeUpstream(raw))
    expect(ps).toHaveLength(1)
    expect(ps[0]?.path).toBe(path)
    expect(ps[0]?.message).toContain(message)
  })

  it('uses the path it is given', () => {
    expect(paths(problems(() => normalizeUpstream({}, 'servers[2].fallbacks[0]')))).toEqual(['servers[2].fallbacks[0].Target', 'servers[2].fallbacks[0].Port'])
  })

  it('accepts Docker and Swarm service names with underscores', () => {
    expect(normalizeUpstream({ Target: 'stack_web', Port: 80 }).Target).toBe('stack_web')
  })
})

describe('normalizeFilter', () => {
  it("reads the seed's filter body: null Hosts, empty-string Schemes", () => {
    expect(normalizeFilter({ Hosts: null, Schemes: ['', ''], PathPrefix: '' })).toEqual({ Hosts: [], Schemes: [], PathPrefix: '' })
  })

  it('missing or null filter is the empty filter', () => {
    expect(normalizeFilter(null)).toEqual({ Hosts: [], Schemes: [], PathPrefix: '' })
    expect(normalizeFilter(undefined)).toEqual({ Hosts: [], Schemes: [], PathPrefix: '' })
    expect(normalizeFilter({})).toEqual({ Hosts: [], Schemes: [], PathPrefix: '' })
  })

  it('lower-cases and de-duplicates hosts and schemes; accepts the key spellings', () => {
    expect(normalizeFilter({ hosts: [' WWW.A.com ', 'www.a.com', '*.B.com', '10.0.0.1', '[::1]', '::2'], schemes: ['HTTPS', 'http', 'https'], pathprefix: '/x' })).toEqual({
      Hosts: ['www.a.com', '*.b.com', '10.0.0.1', '[::1]', '[::2]'],
      Schemes: ['http', 'https'],
      PathPrefix: '/x',
    })
    expect(normalizeFilter({ pathPrefix: '/y' }).PathPrefix).toBe('/y')
  })

  it('reports every bad entry with its index', () => {
    const ps = problems(() => normalizeFilter({ Hosts: ['a.com:8080', '*', 'a.*.com', '', 5, '[::1]:80', '*.x.com:1'], Schemes: ['ftp', 'http'], PathPrefix: 'no-slash' }))
    expect(paths(ps)).toEqual(['body.Hosts[4]', 'body.Hosts[0]', 'body.Hosts[1]', 'body.Hosts[2]', 'body.Hosts[3]', 'body.Hosts[5]', 'body.Hosts[6]', 'body.Schemes[0]', 'body.PathPrefix'])
    expect(ps[1]?.message).toContain('must not include a port (the port is ignored in matching); remove it')
    expect(ps[2]?.message).toContain('use an empty Hosts list to match every host')
    expect(ps[3]?.message).toContain('only as a leading "*."')
    expect(ps[5]?.message).toContain('must not include a port')
    expect(ps[6]?.message).toContain('must not include a port')
  })

  it.each([
    ['/a b', 'visible ASCII only'],
    ['/a\u0001', 'visible ASCII only'],
    ['/a?b=1', 'without "?" or "#"'],
    ['api', 'must be empty or start with "/"'],
  ])('refuses PathPrefix %j', (p, message) => {
    expect(problems(() => normalizeFilter({ PathPrefix: p }))[0]?.message).toContain(message)
  })

  it('refuses non-list Hosts and Schemes', () => {
    expect(paths(problems(() => normalizeFilter({ Hosts: 'a.com', Schemes: {} })))).toEqual(['body.Hosts', 'body.Schemes'])
  })
})

describe('normalizeServer', () => {
  it("reads the seed's quick-start body", () => {
    expect(normalizeServer({ address: ':8080', upstreams: [{ Target: 'www.google.com', Port: 80 }] })).toEqual({
      address: ':8080',
      filter: { Hosts: [], Schemes: [], PathPrefix: '' },
      upstreams: [{ Target: 'www.google.com', Port: 80, Priority: 1, Weight: 1 }],
      fallbacks: [],
      routes: [],
    })
  })

  it('keeps the address as written, trimmed', () => {
    expect(normalizeServer({ address: ' 0.0.0.0:80 ' }).address).toBe('0.0.0.0:80')
  })

  it('reads upstream maps keyed target-port, splitting at the last dash', () => {
    const s = normalizeServer({
      address: ':80',
      fallbacks: { 'my-app-8080': {}, '::1-81': { Weight: 2 }, 'b-82': { Target: 'B', Port: '82' } },
    })
    expect(s.fallbacks).toEqual([
      { Target: 'my-app', Port: 8080, Priority: 1, Weight: 1 },
      { Target: '::1', Port: 81, Priority: 1, Weight: 2 },
      { Target: 'B', Port: 82, Priority: 1, Weight: 1 },
    ])
  })

  it('reports map keys that disagree with their value, bad keys and duplicates', () => {
    const ps = problems(() =>
      normalizeServer({
        address: ':80',
        upstreams: [
          { Target: 'a', Port: 1 },
          { Target: 'A', Port: '1', Weight: 2 },
        ],
        fallbacks: { 'a-1': { Port: 2 }, no_port: {}, 'b-0': {}, 'c-2': 'x' },
      }),
    )
    expect(ps).toEqual([
      { path: 'body.upstreams[1]', message: 'duplicate upstream A-1 (also body.upstreams[0])' },
      { path: 'body.fallbacks["a-1"]', message: 'key says a-1 but Target and Port say a-2' },
      { path: 'body.fallbacks.no_port', message: 'key must be "target-port", e.g. "127.0.0.1-80", got "no_port"' },
      { path: 'body.fallbacks["b-0"]', message: 'key must be "target-port", e.g. "127.0.0.1-80", got "b-0"' },
      { path: 'body.fallbacks["c-2"]', message: 'must be an object, got "x"' },
    ])
  })

  it('catches typos in field names instead of ignoring them', () => {
    expect(problems(() => normalizeServer({ address: ':80', upstream: [] }))).toEqual([
      {
        path: 'body.upstream',
        message:
          'unknown field (expected one of address, filter, upstreams, fallbacks, routes, health, passive, retry, limits, access, ratelimit, body, rewrite, headers, errors, compress, hsts, tls, discovery, Protocols)',
      },
    ])
  })

  it('requires an address that parses', () => {
    expect(problems(() => normalizeServer({}))).toEqual([{ path: 'body.address', message: 'required' }])
    expect(problems(() => normalizeServer({ address: 'example.com:80' }))[0]?.path).toBe('body.address')
  })

  it('refuses upstreams that are neither a list nor a map', () => {
    expect(problems(() => normalizeServer({ address: ':80', upstreams: 'a-80' }))[0]).toEqual({
      path: 'body.upstreams',
      message: 'must be a list of upstreams or an object keyed "target-port", got "a-80"',
    })
  })
})

describe('normalizeRoute', () => {
  it('reads a route and fills every field', () => {
    expect(normalizeRoute({ name: 'api', filter: { PathPrefix: '/api' } })).toEqual({
      name: 'api',
      filter: { Hosts: [], Schemes: [], PathPrefix: '/api' },
      upstreams: [],
      fallbacks: [],
    })
  })

  it.each([
    [{}, 'required'],
    [{ name: 'default' }, 'reserved'],
    [{ name: 'API' }, 'must match'],
    [{ name: '-a' }, 'must match'],
    [{ name: 'a'.repeat(64) }, 'must match'],
  ])('refuses %j', (raw, message) => {
    const ps = problems(() => normalizeRoute(raw))
    expect(ps[0]?.path).toBe('body.name')
    expect(ps[0]?.message).toContain(message)
  })

  it('reads routes keyed by name and refuses a disagreeing name', () => {
    const s = normalizeServer({ address: ':80', routes: { a: {}, b: { name: 'b' } } })
    expect(s.routes.map((r) => r.name)).toEqual(['a', 'b'])
    expect(problems(() => normalizeServer({ address: ':80', routes: { a: { name: 'b' } } }))).toEqual([{ path: 'body.routes.a.name', message: '"b" does not match its key "a"' }])
  })

  it('refuses duplicate route names on one server', () => {
    expect(problems(() => normalizeServer({ address: ':80', routes: [{ name: 'a' }, { name: 'a' }] }))).toEqual([
      { path: 'body.routes[1].name', message: 'duplicate route name "a" (also body.routes[0])' },
    ])
  })
})

describe('normalizeConfig and parseConfigText', () => {
  const server = { address: ':80', filter: { Hosts: [], Schemes: [], PathPrefix: '' }, upstreams: [], fallbacks: [], routes: [] }

  it('accepts a list, {servers}, or one server object', () => {
    expect(normalizeConfig([{ address: ':80' }])).toEqual({ servers: [server] })
    expect(normalizeConfig({ servers: [{ address: ':80' }] })).toEqual({ servers: [server] })
    expect(normalizeConfig({ address: ':80' })).toEqual({ servers: [server] })
    expect(normalizeConfig({ servers: null })).toEqual({ servers: [] })
    expect(normalizeConfig({})).toEqual({ servers: [] })
  })

  it('reports paths from servers[i] in every form', () => {
    expect(paths(problems(() => normalizeConfig({ address: ':80', upstreams: [{ Target: 'a', Port: 'x' }] })))).toEqual(['servers[0].upstreams[0].Port'])
    expect(paths(problems(() => normalizeConfig([{ address: ':80' }, { address: 'x' }])))).toEqual(['servers[1].address'])
    expect(paths(problems(() => normalizeConfig({ servers: [], extra: 1 })))).toEqual(['extra'])
    expect(paths(problems(() => normalizeConfig('x')))).toEqual(['servers'])
  })

  it('the brief example: many problems at once, with exact paths', () => {
    const text = '{"servers":[{"address":":8080","upstreams":[{"Target":"a","Port":80},{"Target":"b","Port":"http"}],"fallbacks":[{"Port":1}]}]}'
    const ps = problems(() => parseConfigText(text))
    expect(ps).toEqual([
      { path: 'servers[0].upstreams[1].Port', message: 'must be an integer 1-65535, got "http"' },
      { path: 'servers[0].fallbacks[0].Target', message: 'required' },
    ])
  })

  it('empty or whitespace-only text is the empty config', () => {
    expect(parseConfigText('')).toEqual({ servers: [] })
    expect(parseConfigText(' \n\t ')).toEqual({ servers: [] })
  })

  it('syntax errors are E_BAD_JSON, not E_VALIDATION', () => {
    try {
      parseConfigText('{"address": ":80",\n  "upstreams": [}')
      expect.unreachable()
    } catch (err) {
      expect((err as BalancerError).code).toBe(ErrorCode.BadJson)
      expect((err as BalancerError).message).toContain('2:17')
    }
  })
})
