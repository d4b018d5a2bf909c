import { describe, expect, it } from 'vitest'
import { compile } from '../../src/compiler/compile.ts'
import { matchRoute } from '../../src/engine/match.ts'
import { Scheme } from '../../src/compiler/snapshot.ts'
import type { ListenerPlan } from '../../src/compiler/snapshot.ts'
import { parseConfigText } from '../../src/model/parse.ts'

const HTTP = Scheme.Http as 1
const HTTPS = Scheme.Https as 2

function listenerOf(text: string): ListenerPlan {
  const snap = compile(parseConfigText(text), 1)
  const l = [...snap.listeners.values()][0]
  if (l === undefined) throw new Error('no listener')
  return l
}

const l = listenerOf(`{
  "address": ":80",
  "filter": { "Hosts": ["WWW.Example.com"] },
  "routes": [
    { "name": "api", "filter": { "Hosts": ["www.example.com"], "PathPrefix": "/api/" } },
    { "name": "tenants", "filter": { "Hosts": ["*.example.com"] } },
    { "name": "eu", "filter": { "Hosts": ["*.eu.example.com"] } },
    { "name": "eu-static", "filter": { "Hosts": ["*.eu.example.com"], "PathPrefix": "/static" } },
    { "name": "secure", "filter": { "Schemes": ["https"], "PathPrefix": "/secure" } },
    { "name": "catchall", "filter": { "Schemes": ["http", "https"], "PathPrefix": "/" } },
    { "name": "v6", "filter": { "Hosts": ["::1"] } },
    { "name": "ip", "filter": { "Hosts": ["10.0.0.1"], "PathPrefix": "/only" } }
  ]
}`)

const name = (host: string, path: string, scheme: 1 | 2 = HTTP): string | null => matchRoute(l, host, path, scheme)?.name ?? null

describe('matchRoute', () => {
  it('exact host; config hosts were lower-cased so a lower-cased Host matches', () => {
    expect(name('www.example.com', '/')).toBe('default')
    expect(name('www.example.com', '/api/users')).toBe('api')
  })

  it('host case: the caller lower-cases; an upper-case host is not an exact match', () => {
    expect(name('WWW.EXAMPLE.COM', '/')).toBe('catchall')
  })

  it('wildcards match one or more labels, never the bare domain', () => {
    expect(name('a.example.com', '/')).toBe('tenants')
    expect(name('a.b.example.com', '/')).toBe('tenants')
    expect(name('example.com', '/')).toBe('catchall')
    expect(name('notexample.com', '/')).toBe('catchall')
  })

  it('the longest matching wildcard wins, then the longer PathPrefix', () => {
    expect(name('x.eu.example.com', '/')).toBe('eu')
    expect(name('x.eu.example.com', '/static/a.css')).toBe('eu-static')
    expect(name('eu.example.com', '/static')).toBe('tenants')
  })

  it('falls through to the next class when path or scheme do not fit', () => {
    expect(name('10.0.0.1', '/only/x')).toBe('ip')
    expect(name('10.0.0.1', '/other')).toBe('catchall')
  })

  it('PathPrefix is a string prefix; scheme masks apply', () => {
    expect(name('other.org', '/secure/x', HTTPS)).toBe('secure')
    expect(name('other.org', '/secure/x', HTTP)).toBe('catchall')
    expect(name('other.org', '/securex', HTTPS)).toBe('secure')
  })

  it('matches a bracketed IPv6 host (port already stripped by the caller)', () => {
    expect(name('[::1]', '/')).toBe('v6')
  })

  it('returns null when no route takes the request', () => {
    expect(name('other.org', '')).toBeNull()
    const https = listenerOf('{"address":":443","filter":{"Hosts":["a.com"],"Schemes":["https"]}}')
    expect(matchRoute(https, 'a.com', '/', HTTP)).toBeNull()
    expect(matchRoute(https, 'a.com', '/', HTTPS)?.name).toBe('default')
    expect(matchRoute(https, 'b.com', '/', HTTPS)).toBeNull()
  })

  it('a route with exact hosts and wildcards does not shadow a more specific wildcard route', () => {
    const mixed = listenerOf(`{"address":":80","filter":{"Hosts":["a.com","*.example.com"]},
      "routes":[{"name":"api","filter":{"Hosts":["*.api.example.com"]}}]}`)
    expect(matchRoute(mixed, 'x.api.example.com', '/', HTTP)?.name).toBe('api')
    expect(matchRoute(mixed, 'x.example.com', '/', HTTP)?.name).toBe('default')
    expect(matchRoute(mixed, 'a.com', '/', HTTP)?.name).toBe('default')
  })

  it('equal wildcard suffixes prefer the longer PathPrefix regardless of route class', () => {
    const tie = listenerOf(`{"address":":80","filter":{"Hosts":["a.com","*.example.com"]},
      "routes":[{"name":"deep","filter":{"Hosts":["*.example.com"],"PathPrefix":"/deep"}}]}`)
    expect(matchRoute(tie, 'x.example.com', '/deep/1', HTTP)?.name).toBe('deep')
    expect(matchRoute(tie, 'x.example.com', '/', HTTP)?.name).toBe('default')
  })
})
