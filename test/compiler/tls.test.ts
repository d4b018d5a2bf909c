// What the compiler makes of TLS: a listener's certificate files and ALPN
// offer, its default host, a route's Strict-Transport-Security line and the
// https port a plain request is redirected to.

import { describe, expect, it } from 'vitest'
import { certFileId, compile } from '../../src/compiler/compile.ts'
import { parseConfigText } from '../../src/model/parse.ts'

const snap = (servers: unknown[]) => compile(parseConfigText(JSON.stringify({ servers })), 1)

describe('compile: TLS', () => {
  it('gives a TLS listener its files (in order), its ALPN offer and its first exact host; a plain one none', () => {
    const s = snap([
      {
        address: ':8443',
        tls: {
          Certificates: [
            { CertFile: '/a.pem', KeyFile: '/a.key' },
            { CertFile: '/b.pem', KeyFile: '/b.key' },
          ],
        },
        filter: { Hosts: ['*.x.test', 'www.x.test'] },
      },
      { address: ':8444', tls: {}, routes: [{ name: 'r', filter: { Hosts: ['api.test'] } }] },
      { address: ':8080' },
    ])
    expect(s.listeners.get('*:8443')?.tls).toEqual({
      files: [
        { id: certFileId('/a.pem', '/a.key'), certFile: '/a.pem', keyFile: '/a.key' },
        { id: certFileId('/b.pem', '/b.key'), certFile: '/b.pem', keyFile: '/b.key' },
      ],
      alpn: ['h2', 'http/1.1', 'acme-tls/1'],
      defaultHost: 'www.x.test',
    })
    expect(s.listeners.get('*:8444')?.tls).toEqual({ files: [], alpn: ['h2', 'http/1.1', 'acme-tls/1'], defaultHost: 'api.test' })
    expect(s.listeners.get('*:8080')?.tls).toBeNull()
  })

  it("renders hsts once per route: the server's for its routes, a route's own, none for null", () => {
    const s = snap([
      {
        address: ':8443',
        tls: {},
        hsts: { MaxAge: '8760h', IncludeSubDomains: true },
        routes: [
          { name: 'own', filter: { Hosts: ['own.test'] }, hsts: 600 },
          { name: 'none', filter: { Hosts: ['none.test'] }, hsts: null },
          { name: 'inherits', filter: { Hosts: ['inh.test'] } },
        ],
      },
    ])
    const byName = new Map((s.listeners.get('*:8443')?.routes ?? []).map((r) => [r.name, r.hsts]))
    expect(byName.get('default')).toBe('strict-transport-security: max-age=31536000; includeSubDomains\r\n')
    expect(byName.get('own')).toBe('strict-transport-security: max-age=600\r\n')
    expect(byName.get('none')).toBe('')
    expect(byName.get('inherits')).toBe('strict-transport-security: max-age=31536000; includeSubDomains\r\n')
  })

  it('points an https-only route at the port of the TLS server routing its host, else 443', () => {
    const s = snap([
      {
        address: ':8080',
        routes: [
          { name: 'shop', filter: { Hosts: ['shop.test'], Schemes: ['https'] } },
          { name: 'wild', filter: { Hosts: ['*.w.test'], Schemes: ['https'] } },
          { name: 'elsewhere', filter: { Hosts: ['other.test'], Schemes: ['https'] } },
          { name: 'both', filter: { Hosts: ['both.test'] } },
        ],
      },
      { address: ':8443', tls: {}, filter: { Hosts: ['shop.test', '*.w.test'] } },
    ])
    const byName = new Map((s.listeners.get('*:8080')?.routes ?? []).map((r) => [r.name, r.httpsPort]))
    expect(byName.get('shop')).toBe(8443)
    expect(byName.get('wild')).toBe(8443)
    expect(byName.get('elsewhere')).toBe(443)
    expect(byName.get('both')).toBe(0)
  })
})
