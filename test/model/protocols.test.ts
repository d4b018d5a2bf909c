// What an address speaks, as the model reads and writes it: a plain
// server's Protocols (http/1.1, h2c) and a tls group's Alpn (h2, http/1.1),
// the forms accepted, every problem with its path, the canonical form, and
// what the compiler makes of them.

import { describe, expect, it } from 'vitest'
import { compile } from '../../src/compiler/compile.ts'
import { serializeConfig } from '../../src/model/canonical.ts'
import { BalancerError } from '../../src/model/errors.ts'
import { normalizeServer, parseConfigText } from '../../src/model/parse.ts'

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

describe('Protocols of a plain server', () => {
  it('is absent unless given; names are read in any case, a comma string too', () => {
    expect('Protocols' in normalizeServer({ address: ':80' })).toBe(false)
    expect(normalizeServer({ address: ':80', protocols: ['HTTP/1.1', ' H2C '] }).Protocols).toEqual(['http/1.1', 'h2c'])
    expect(normalizeServer({ address: ':80', Protocols: 'http/1.1,h2c' }).Protocols).toEqual(['http/1.1', 'h2c'])
    expect(normalizeServer({ address: ':80', Protocols: null }).Protocols).toBeUndefined()
  })

  it('refuses unknown names, duplicates, a list without http/1.1, h2c on a TLS server', () => {
    expect(problems(() => normalizeServer({ address: ':80', Protocols: ['http/1.1', 'h3'] }))).toEqual([{ path: 'body.Protocols[1]', message: 'must be one of "http/1.1", "h2c", got "h3"' }])
    expect(problems(() => normalizeServer({ address: ':80', Protocols: ['h2c', 'h2c'] }))).toEqual([{ path: 'body.Protocols[1]', message: '"h2c" is listed twice' }])
    expect(problems(() => normalizeServer({ address: ':80', Protocols: ['h2c'] }))).toEqual([{ path: 'body.Protocols', message: 'must include "http/1.1"' }])
    expect(problems(() => normalizeServer({ address: ':80', Protocols: [] }))).toEqual([{ path: 'body.Protocols', message: 'must name at least one of "http/1.1", "h2c"' }])
    expect(problems(() => normalizeServer({ address: ':80', Protocols: 2 }))).toEqual([{ path: 'body.Protocols', message: 'must be a list of "http/1.1", "h2c", got 2' }])
    expect(problems(() => normalizeServer({ address: ':443', tls: { Certificates: [pair] }, Protocols: ['http/1.1', 'h2c'] }))).toEqual([
      { path: 'body.Protocols', message: '"h2c" is for plain addresses; a TLS address offers HTTP/2 by ALPN (tls.Alpn, "h2" by default)' },
    ])
  })

  it('is written back after tls, before filter', () => {
    const text = serializeConfig(parseConfigText('[{"upstreams":[{"Target":"a","Port":1}],"protocols":["h2c","HTTP/1.1"],"address":":80"}]'))
    expect(JSON.parse(text).servers[0]).toEqual({
      address: ':80',
      Protocols: ['h2c', 'http/1.1'],
      filter: { Hosts: [], Schemes: [], PathPrefix: '' },
      upstreams: [{ Target: 'a', Port: 1, Priority: 1, Weight: 1 }],
      fallbacks: [],
      routes: [],
    })
    expect(Object.keys(JSON.parse(text).servers[0]).slice(0, 2)).toEqual(['address', 'Protocols'])
  })
})

describe('tls.Alpn', () => {
  it('narrows or orders the offer; absent means h2 then http/1.1', () => {
    expect(normalizeServer({ address: ':443', tls: { Certificates: [pair], alpn: ['HTTP/1.1'] } }).tls).toEqual({ Certificates: [pair], Alpn: ['http/1.1'] })
    expect(normalizeServer({ address: ':443', tls: { Certificates: [pair] } }).tls).toEqual({ Certificates: [pair] })
    expect(problems(() => normalizeServer({ address: ':443', tls: { Certificates: [pair], Alpn: ['h2c'] } }))).toEqual([
      { path: 'body.tls.Alpn[0]', message: 'must be one of "h2", "http/1.1", got "h2c"' },
    ])
  })

  it('compiles to the listener offer; Protocols to h2c', () => {
    const snap = compile(
      parseConfigText(
        JSON.stringify([
          { address: '127.0.0.1:8443', tls: { Certificates: [pair] }, upstreams: [{ Target: 'a', Port: 1 }] },
          { address: '127.0.0.1:8444', tls: { Certificates: [pair], Alpn: ['http/1.1'] }, upstreams: [{ Target: 'a', Port: 1 }] },
          { address: '127.0.0.1:8080', Protocols: ['http/1.1', 'h2c'], upstreams: [{ Target: 'a', Port: 1 }] },
          { address: '127.0.0.1:8081', upstreams: [{ Target: 'a', Port: 1 }] },
        ]),
      ),
      1,
    )
    // acme-tls/1 always last: only an ACME CA validating tls-alpn-01 offers it.
    expect(snap.listeners.get('127.0.0.1:8443')?.tls?.alpn).toEqual(['h2', 'http/1.1', 'acme-tls/1'])
    expect(snap.listeners.get('127.0.0.1:8444')?.tls?.alpn).toEqual(['http/1.1', 'acme-tls/1'])
    expect(snap.listeners.get('127.0.0.1:8080')?.h2c).toBe(true)
    expect(snap.listeners.get('127.0.0.1:8081')?.h2c).toBe(false)
  })
})

describe('an upstream Protocol', () => {
  it('h2c is kept and written back; http/1.1 (the default) is dropped; anything else refused', () => {
    const s = normalizeServer({
      address: ':80',
      upstreams: [
        { Target: 'grpc', Port: 50051, protocol: 'H2C' },
        { Target: 'web', Port: 80, Protocol: 'http/1.1' },
      ],
    })
    expect(s.upstreams).toEqual([
      { Target: 'grpc', Port: 50051, Priority: 1, Weight: 1, Protocol: 'h2c' },
      { Target: 'web', Port: 80, Priority: 1, Weight: 1 },
    ])
    expect(problems(() => normalizeServer({ address: ':80', upstreams: [{ Target: 'a', Port: 1, Protocol: 'h3' }] }))).toEqual([
      { path: 'body.upstreams[0].Protocol', message: 'must be "http/1.1", "h2c" (HTTP/2 with prior knowledge) or "h2" (HTTP/2 over TLS), got "h3"' },
    ])
    const text = serializeConfig(parseConfigText(JSON.stringify([{ address: ':80', upstreams: [{ Target: 'g', Port: 1, Protocol: 'h2c' }] }])))
    expect(JSON.parse(text).servers[0].upstreams).toEqual([{ Target: 'g', Port: 1, Priority: 1, Weight: 1, Protocol: 'h2c' }])
  })

  it('h2c (clear text) cannot be combined with Scheme https', () => {
    expect(problems(() => normalizeServer({ address: ':80', upstreams: [{ Target: 'a', Port: 1, Protocol: 'h2c', Scheme: 'https' }] }))).toEqual([
      { path: 'body.upstreams[0].Protocol', message: 'h2c is HTTP/2 without TLS; it cannot be combined with Scheme "https" (h2 is HTTP/2 over TLS)' },
    ])
  })

  it('h2 is HTTP/2 over TLS: Scheme https is implied and written back; Scheme http with it is refused', () => {
    const s = normalizeServer({
      address: ':80',
      upstreams: [
        { Target: 'grpc', Port: 443, Protocol: 'H2' },
        { Target: 'grpc2', Port: 443, Protocol: 'h2', Scheme: 'https' },
      ],
    })
    expect(s.upstreams).toEqual([
      { Target: 'grpc', Port: 443, Priority: 1, Weight: 1, Protocol: 'h2', Scheme: 'https' },
      { Target: 'grpc2', Port: 443, Priority: 1, Weight: 1, Protocol: 'h2', Scheme: 'https' },
    ])
    expect(problems(() => normalizeServer({ address: ':80', upstreams: [{ Target: 'a', Port: 1, Protocol: 'h2', Scheme: 'http' }] }))).toEqual([
      { path: 'body.upstreams[0].Protocol', message: 'h2 is HTTP/2 over TLS; it cannot be combined with Scheme "http" (h2c is HTTP/2 without TLS)' },
    ])
    const text = serializeConfig(parseConfigText(JSON.stringify([{ address: ':80', upstreams: [{ Target: 'g', Port: 1, Protocol: 'h2' }] }])))
    expect(JSON.parse(text).servers[0].upstreams).toEqual([{ Target: 'g', Port: 1, Priority: 1, Weight: 1, Protocol: 'h2', Scheme: 'https' }])
    const snap = compile(parseConfigText(JSON.stringify([{ address: '127.0.0.1:8080', upstreams: [{ Target: 'g', Port: 1, Protocol: 'h2' }] }])), 1)
    expect(snap.targets.get('https://g:1')).toEqual({ host: 'g', port: 1, protocol: 'h2', tls: true })
  })

  it('compiles into the snapshot target; one upstream with two protocols is refused', () => {
    const snap = compile(parseConfigText(JSON.stringify([{ address: '127.0.0.1:8080', upstreams: [{ Target: 'g', Port: 1, Protocol: 'h2c' }] }])), 1)
    expect(snap.targets.get('g:1')).toEqual({ host: 'g', port: 1, protocol: 'h2c' })
    expect(() =>
      compile(
        parseConfigText(
          JSON.stringify([
            { address: '127.0.0.1:8080', upstreams: [{ Target: 'g', Port: 1, Protocol: 'h2c' }], routes: [{ name: 'b', filter: { Hosts: ['b'] }, upstreams: [{ Target: 'g', Port: 1 }] }] },
          ]),
        ),
        1,
      ),
    ).toThrow(/two protocols/)
  })
})

describe('labels', () => {
  it('balancer.protocol=h2c makes the container an HTTP/2 upstream; balancer.protocols sets the server Protocols', async () => {
    const { readLabels, labelServer } = await import('../../src/model/labels.ts')
    const r = readLabels({ 'balancer.enable': 'true', 'balancer.address': ':50051', 'balancer.protocol': 'H2C', 'balancer.protocols': 'http/1.1,h2c' })
    expect(r.enabled && r.problems).toEqual([])
    if (!r.enabled || r.settings === null) throw new Error('labels refused')
    const s = labelServer(r.settings, [{ Target: '10.0.0.7', Port: 50051 }])
    expect(s.Protocols).toEqual(['http/1.1', 'h2c'])
    expect(s.upstreams).toEqual([{ Target: '10.0.0.7', Port: 50051, Priority: 1, Weight: 1, Protocol: 'h2c' }])
    const bad = readLabels({ 'balancer.enable': 'true', 'balancer.protocol': 'h3', 'balancer.protocols': 'h2c' })
    expect(bad.enabled && bad.problems).toEqual([
      { path: 'balancer.protocol', message: 'must be "http/1.1", "h2c" or "h2", got "h3"' },
      { path: 'balancer.protocols', message: 'must include "http/1.1"' },
    ])
  })

  it('balancer.protocol=h2 is HTTP/2 over TLS (scheme https implied); h2c with balancer.scheme=https is refused', async () => {
    const { readLabels, labelServer } = await import('../../src/model/labels.ts')
    const r = readLabels({ 'balancer.enable': 'true', 'balancer.address': ':443', 'balancer.protocol': 'h2' })
    if (!r.enabled || r.settings === null) throw new Error('labels refused')
    expect(labelServer(r.settings, [{ Target: '10.0.0.7', Port: 8443 }]).upstreams).toEqual([{ Target: '10.0.0.7', Port: 8443, Priority: 1, Weight: 1, Protocol: 'h2', Scheme: 'https' }])
    const bad = readLabels({ 'balancer.enable': 'true', 'balancer.protocol': 'h2c', 'balancer.scheme': 'https' })
    expect(bad.enabled && bad.problems).toEqual([{ path: 'balancer.protocol', message: 'h2c is HTTP/2 without TLS; it cannot be combined with balancer.scheme=https' }])
    const bad2 = readLabels({ 'balancer.enable': 'true', 'balancer.protocol': 'h2', 'balancer.scheme': 'http' })
    expect(bad2.enabled && bad2.problems).toEqual([{ path: 'balancer.protocol', message: 'h2 is HTTP/2 over TLS; it cannot be combined with balancer.scheme=http' }])
  })
})
