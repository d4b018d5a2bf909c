// The `tls` group of a server as the model reads and writes it: the loose
// forms accepted, every problem with its path, the canonical place.

import { describe, expect, it } from 'vitest'
import { BalancerError } from '../../src/model/errors.ts'
import { serializeConfig } from '../../src/model/canonical.ts'
import { normalizeServer, parseConfigText } from '../../src/model/parse.ts'
import { labelServer, readLabels } from '../../src/model/labels.ts'
import { mergeDiscovered } from '../../src/control/merge.ts'
import { wantedFrom } from '../../src/tls/acme/manager.ts'

function problems(fn: () => unknown): Array<{ path: string; message: string }> {
  try {
    fn()
  } catch (err) {
    if (err instanceof BalancerError) return err.problems
    throw err
  }
  return []
}

const pair = { CertFile: '/c.pem', KeyFile: '/c.key' }

describe('the tls group', () => {
  it('reads {} , true, a list and a single object; null and false mean no TLS', () => {
    expect(normalizeServer({ address: ':443', tls: {} }).tls).toEqual({ Certificates: [] })
    expect(normalizeServer({ address: ':443', tls: true }).tls).toEqual({ Certificates: [] })
    expect(normalizeServer({ address: ':443', tls: { certificates: [{ certfile: ' /c.pem ', keyfile: '/c.key' }] } }).tls).toEqual({ Certificates: [pair] })
    expect(normalizeServer({ address: ':443', tls: { Certificates: pair } }).tls).toEqual({ Certificates: [pair] })
    expect('tls' in normalizeServer({ address: ':443', tls: null })).toBe(false)
    expect('tls' in normalizeServer({ address: ':443', tls: false })).toBe(false)
    expect('tls' in normalizeServer({ address: ':80' })).toBe(false)
  })

  it('reports every problem with its path', () => {
    expect(
      problems(() =>
        normalizeServer({
          address: ':443',
          tls: { Certificates: [{ CertFile: '/a.pem' }, { CertFile: '', KeyFile: 3 }, pair, pair, { CertFile: 'x\ny', KeyFile: 'k', Chain: 'c' }] },
        }),
      ),
    ).toEqual([
      { path: 'body.tls.Certificates[0].KeyFile', message: 'required' },
      { path: 'body.tls.Certificates[1].CertFile', message: 'must be a file path, got ""' },
      { path: 'body.tls.Certificates[1].KeyFile', message: 'must be a string, got 3' },
      { path: 'body.tls.Certificates[3]', message: 'same CertFile and KeyFile as body.tls.Certificates[2]' },
      { path: 'body.tls.Certificates[4].Chain', message: 'unknown field (expected one of CertFile, KeyFile)' },
      { path: 'body.tls.Certificates[4].CertFile', message: 'must be a file path without control characters, got "x\\ny"' },
    ])
    expect(problems(() => normalizeServer({ address: ':443', tls: 'yes' }))).toEqual([{ path: 'body.tls', message: 'must be an object, got "yes"' }])
    expect(problems(() => normalizeServer({ address: ':443', tls: { Certificates: 'a' } }))).toEqual([{ path: 'body.tls.Certificates', message: 'must be a list of {"CertFile", "KeyFile"}, got "a"' }])
  })

  it('is written right after the address; a server without it is written as before', () => {
    const text = serializeConfig(parseConfigText(JSON.stringify({ servers: [{ upstreams: [], address: ':443', TLS: { Certificates: [pair] } }, { address: ':80' }] })))
    const cfg = JSON.parse(text) as { servers: Array<Record<string, unknown>> }
    expect(Object.keys(cfg.servers[0] ?? {})).toEqual(['address', 'tls', 'filter', 'upstreams', 'fallbacks', 'routes'])
    expect(cfg.servers[0]?.tls).toEqual({ Certificates: [pair] })
    expect(Object.keys(cfg.servers[1] ?? {})).toEqual(['address', 'filter', 'upstreams', 'fallbacks', 'routes'])
    expect(serializeConfig(parseConfigText(text))).toBe(text)
  })
})

describe('the hsts group', () => {
  it('reads a number as MaxAge, durations in whole seconds, defaults the rest; a route may say null', () => {
    expect(normalizeServer({ address: ':443', hsts: 600 }).hsts).toEqual({ MaxAge: 600, IncludeSubDomains: false, Preload: false })
    expect(normalizeServer({ address: ':443', hsts: {} }).hsts).toEqual({ MaxAge: 31536000, IncludeSubDomains: false, Preload: false })
    expect(normalizeServer({ address: ':443', hsts: { maxage: '8760h', includesubdomains: 'true', preload: true } }).hsts).toEqual({ MaxAge: 31536000, IncludeSubDomains: true, Preload: true })
    expect('hsts' in normalizeServer({ address: ':443', hsts: null })).toBe(false)
    const route = normalizeServer({ address: ':443', hsts: 60, routes: [{ name: 'r', filter: { Hosts: ['r.test'] }, hsts: null }] }).routes[0]
    expect(route?.hsts).toBeNull()
  })

  it('reports every problem with its path', () => {
    expect(problems(() => normalizeServer({ address: ':443', hsts: { MaxAge: -1, IncludeSubDomains: 'yes' } }))).toEqual([
      { path: 'body.hsts.MaxAge', message: 'must be seconds 0-63072000 (or a duration like 8760h), got -1' },
      { path: 'body.hsts.IncludeSubDomains', message: 'must be true or false, got "yes"' },
    ])
    expect(problems(() => normalizeServer({ address: ':443', hsts: { MaxAge: 600, Preload: true } }))).toEqual([
      { path: 'body.hsts.Preload', message: 'needs IncludeSubDomains: true and a MaxAge of at least a year (31536000)' },
    ])
    expect(problems(() => normalizeServer({ address: ':443', hsts: '1.5s' }))).toEqual([{ path: 'body.hsts', message: 'must be seconds 0-63072000 (or a duration like 8760h), got "1.5s"' }])
  })
})

describe('upstreams over TLS', () => {
  it('reads Scheme https (any case) and writes it back; http is the default, written as nothing', () => {
    const s = normalizeServer({
      address: ':80',
      upstreams: [
        { Target: 'a', Port: 443, scheme: 'HTTPS' },
        { Target: 'b', Port: 80, Scheme: 'http' },
      ],
    })
    expect(s.upstreams).toEqual([
      { Target: 'a', Port: 443, Priority: 1, Weight: 1, Scheme: 'https' },
      { Target: 'b', Port: 80, Priority: 1, Weight: 1 },
    ])
    const text = serializeConfig({ servers: [s] })
    expect(text).toContain('"Scheme": "https"')
    expect(serializeConfig(parseConfigText(text))).toBe(text)
    expect(problems(() => normalizeServer({ address: ':80', upstreams: [{ Target: 'a', Port: 1, Scheme: 'ftp' }] }))).toEqual([
      { path: 'body.upstreams[0].Scheme', message: 'must be "http" or "https", got "ftp"' },
    ])
  })

  it('the label balancer.scheme=https makes a discovered target an https upstream', () => {
    const r = readLabels({ 'balancer.enable': 'true', 'balancer.scheme': 'https', 'balancer.port': '8443' })
    if (!r.enabled || r.settings === null) throw new Error('labels refused')
    expect(labelServer(r.settings, [{ Target: '10.0.0.5', Port: 8443 }]).upstreams).toEqual([{ Target: '10.0.0.5', Port: 8443, Priority: 1, Weight: 1, Scheme: 'https' }])
    const bad = readLabels({ 'balancer.enable': 'true', 'balancer.scheme': 'tls' })
    expect(bad.enabled && bad.problems).toEqual([{ path: 'balancer.scheme', message: 'must be "http" or "https", got "tls"' }])
  })
})

describe('the Acme group', () => {
  it('reads Hosts (lower-cased, once each), Email and Challenge; http-01 by default', () => {
    expect(normalizeServer({ address: ':443', tls: { acme: { hosts: ['WWW.Example.com', 'www.example.com', 'api.example.com'] } } }).tls).toEqual({
      Certificates: [],
      Acme: { Hosts: ['www.example.com', 'api.example.com'], Email: '', Challenge: 'http-01' },
    })
    expect(normalizeServer({ address: ':443', tls: { Acme: { Hosts: ['a.test'], Email: ' ops@a.test ', Challenge: 'TLS-ALPN-01' } } }).tls?.Acme).toEqual({
      Hosts: ['a.test'],
      Email: 'ops@a.test',
      Challenge: 'tls-alpn-01',
    })
  })

  it('refuses what neither challenge can prove, and reports every problem with its path', () => {
    expect(problems(() => normalizeServer({ address: ':443', tls: { Acme: { Hosts: ['*.a.test', '10.0.0.1', 'ok.test', 3], Email: 'nobody', Challenge: 'dns-01' } } }))).toEqual([
      { path: 'body.tls.Acme.Hosts[0]', message: 'a wildcard cannot be proved by http-01 or tls-alpn-01, got "*.a.test"; list the names, or upload a wildcard certificate' },
      { path: 'body.tls.Acme.Hosts[1]', message: 'must be a DNS name, not an IP address, got "10.0.0.1"' },
      { path: 'body.tls.Acme.Hosts[3]', message: 'must be a host name, got 3' },
      { path: 'body.tls.Acme.Email', message: 'must be an e-mail address, got "nobody"' },
      { path: 'body.tls.Acme.Challenge', message: 'must be "http-01" or "tls-alpn-01", got "dns-01"' },
    ])
    expect(problems(() => normalizeServer({ address: ':443', tls: { Acme: {} } }))).toEqual([{ path: 'body.tls.Acme.Hosts', message: 'required: the host names to order a certificate for' }])
    expect(problems(() => normalizeServer({ address: ':443', tls: { Acme: { Hosts: [] } } }))).toEqual([{ path: 'body.tls.Acme.Hosts', message: 'must list at least one host name' }])
  })

  it('is written back in its canonical form', () => {
    const text = serializeConfig(parseConfigText(JSON.stringify({ servers: [{ address: ':443', tls: { acme: { challenge: 'tls-alpn-01', hosts: ['a.test'] }, certificates: [pair] } }] })))
    const cfg = JSON.parse(text) as { servers: Array<{ tls: Record<string, unknown> }> }
    expect(cfg.servers[0]?.tls).toEqual({ Certificates: [pair], Acme: { Hosts: ['a.test'], Email: '', Challenge: 'tls-alpn-01' } })
    expect(Object.keys(cfg.servers[0]?.tls ?? {})).toEqual(['Certificates', 'Acme'])
    expect(serializeConfig(parseConfigText(text))).toBe(text)
  })
})

describe('the balancer.tls labels', () => {
  const settingsOf = (labels: Record<string, string>) => {
    const r = readLabels({ 'balancer.enable': 'true', ...labels })
    if (!r.enabled || r.settings === null) throw new Error(`labels refused: ${JSON.stringify(r.enabled && r.problems)}`)
    return r.settings
  }

  it('balancer.tls=true serves the hosts over TLS on :443 unless balancer.address says otherwise, with an ACME certificate for the exact names', () => {
    const s = labelServer(settingsOf({ 'balancer.tls': 'true', 'balancer.hosts': 'a.test, *.b.test', 'balancer.tls.email': 'ops@a.test' }), [{ Target: '10.0.0.5', Port: 80 }])
    expect(s.address).toBe(':443')
    expect(s.tls).toEqual({ Certificates: [], Acme: { Hosts: ['a.test'], Email: 'ops@a.test', Challenge: 'http-01' } })
    expect(labelServer(settingsOf({ 'balancer.tls': 'true', 'balancer.hosts': 'a.test', 'balancer.address': ':8443', 'balancer.tls.challenge': 'tls-alpn-01' }), []).tls?.Acme?.Challenge).toBe(
      'tls-alpn-01',
    )
    expect(labelServer(settingsOf({ 'balancer.tls': 'true', 'balancer.hosts': 'a.test', 'balancer.address': ':8443' }), []).address).toBe(':8443')
  })

  it('balancer.tls.acme=false never orders (stored certificates serve); balancer.tls=false or absent is plain HTTP on :80', () => {
    expect(labelServer(settingsOf({ 'balancer.tls': 'true', 'balancer.tls.acme': 'false', 'balancer.hosts': 'a.test' }), []).tls).toEqual({ Certificates: [] })
    const plain = labelServer(settingsOf({ 'balancer.tls': 'false', 'balancer.hosts': 'a.test' }), [])
    expect(plain.address).toBe(':80')
    expect('tls' in plain).toBe(false)
  })

  it('reports bad values with the label named', () => {
    const r = readLabels({ 'balancer.enable': 'true', 'balancer.tls': 'yes' })
    expect(r.enabled && r.problems).toEqual([{ path: 'balancer.tls', message: 'must be "true" or "false", got "yes"' }])
    const r2 = readLabels({ 'balancer.enable': 'true', 'balancer.tls': 'true', 'balancer.tls.acme': 'maybe', 'balancer.tls.email': 'x', 'balancer.tls.challenge': 'dns-01' })
    expect(r2.enabled && r2.problems).toEqual([
      { path: 'balancer.tls.acme', message: 'must be "true" or "false", got "maybe"' },
      { path: 'balancer.tls.email', message: 'must be an e-mail address, got "x"' },
      { path: 'balancer.tls.challenge', message: 'must be "http-01" or "tls-alpn-01", got "dns-01"' },
    ])
  })

  it('discovered TLS servers on one address each keep their own ACME certificate; TLS asked of a plain address is reported', () => {
    const labelled = (): ReturnType<typeof labelServer> => labelServer(settingsOf({ 'balancer.tls': 'true', 'balancer.hosts': 'a.test' }), [{ Target: '10.0.0.5', Port: 80 }])
    const one = labelled()
    const two = labelServer(settingsOf({ 'balancer.tls': 'true', 'balancer.hosts': 'b.test' }), [{ Target: '10.0.0.6', Port: 80 }])
    const merged = mergeDiscovered({ servers: [] }, [{ origin: 'docker', servers: [one, two], names: ['a', 'b'], meta: [] }])
    expect(merged.problems).toEqual([])
    expect(merged.config.servers.map((s) => [s.address, s.tls])).toEqual([
      [
        ':443',
        {
          Certificates: [],
          Labelled: [
            { Hosts: ['a.test'], Email: '', Challenge: 'http-01' },
            { Hosts: ['b.test'], Email: '', Challenge: 'http-01' },
          ],
        },
      ],
    ])
    expect(wantedFrom(merged.config).map((w) => [w.name, w.hosts])).toEqual([
      ['a.test', ['a.test']],
      ['b.test', ['b.test']],
    ])
    // Merged again (the next change): the parsed fragments are not changed by a merge.
    const again = mergeDiscovered({ servers: [] }, [{ origin: 'docker', servers: [one, two], names: ['a', 'b'], meta: [] }])
    expect(again.config).toEqual(merged.config)
    expect(one.tls).toEqual({ Certificates: [], Acme: { Hosts: ['a.test'], Email: '', Challenge: 'http-01' } })
    // Replicas asking for the same hosts make one certificate; balancer.tls.acme=false none.
    const replica = labelled()
    const never = labelServer(settingsOf({ 'balancer.tls': 'true', 'balancer.tls.acme': 'false', 'balancer.hosts': 'c.test' }), [{ Target: '10.0.0.7', Port: 80 }])
    const three = mergeDiscovered({ servers: [] }, [{ origin: 'docker', servers: [labelled(), replica, never], names: ['a', 'a2', 'c'], meta: [] }])
    expect(three.config.servers[0]?.tls?.Labelled).toEqual([{ Hosts: ['a.test'], Email: '', Challenge: 'http-01' }])
    const base = { servers: [normalizeServer({ address: ':443' })] }
    const plain = mergeDiscovered(base, [{ origin: 'docker', servers: [labelled()], names: ['a'], meta: [] }])
    expect(plain.config.servers[0]?.tls).toBeUndefined()
    expect(plain.problems.map((p) => p.message)).toEqual([expect.stringContaining('asks for TLS on ":443", which is served as plain HTTP')])
    // The base configuration is not changed by the merge.
    const stored = { servers: [normalizeServer({ address: ':443', tls: { Acme: { Hosts: ['s.test'] } } })] }
    const joined = mergeDiscovered(stored, [{ origin: 'docker', servers: [labelled()], names: ['a'], meta: [] }])
    expect(joined.config.servers[0]?.tls?.Acme?.Hosts).toEqual(['s.test'])
    expect(joined.config.servers[0]?.tls?.Labelled?.map((a) => a.Hosts)).toEqual([['a.test']])
    expect(wantedFrom(joined.config).map((w) => w.name)).toEqual(['s.test', 'a.test'])
    expect(stored.servers[0]?.tls?.Acme?.Hosts).toEqual(['s.test'])
    expect(stored.servers[0]?.tls?.Labelled).toBeUndefined()
  })

  it('a certificate whose hosts another wanted one names all is not ordered on its own', () => {
    const cfg = {
      servers: [
        normalizeServer({ address: ':443', tls: { Acme: { Hosts: ['a.test', 'b.test'] } } }),
        normalizeServer({ address: ':8443', tls: { Acme: { Hosts: ['b.test'] } } }),
        normalizeServer({ address: ':9443', tls: { Acme: { Hosts: ['b.test', 'a.test'] } } }),
        normalizeServer({ address: ':10443', tls: { Acme: { Hosts: ['c.test', 'b.test'] } } }),
      ],
    }
    expect(wantedFrom(cfg).map((w) => [w.name, w.hosts])).toEqual([
      ['a.test', ['a.test', 'b.test']],
      ['c.test', ['c.test', 'b.test']],
    ])
  })
})
