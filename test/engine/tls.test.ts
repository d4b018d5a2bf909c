// TLS listeners: the certificate each handshake gets (SNI: exact, wildcard,
// default, none), the request's scheme seen by routes and upstreams,
// ALPN, what a wrong-protocol client gets on either kind of port, the
// handshake deadline, certificates replaced while connections are open,
// the Mozilla intermediate profile as a client sees it, and session
// resumption: shared by engines with the same ticket secret, a new ticket
// on every resumed TLS 1.3 connection, old tickets refused after the hourly
// key rotation. Real sockets, certificates from openssl.

import { spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { connect as http2Connect } from 'node:http2'
import { connect as netConnect } from 'node:net'
import type { Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import type { ConnectionOptions, PeerCertificate } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient } from '../support/client.ts'
import { TestCa, certEntry } from '../support/certs.ts'
import type { IssuedCert } from '../support/certs.ts'
import { ROTATE_MS } from '../../src/engine/tls/tickets.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { listenKey, snapshotWith } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { until, within } from '../support/poll.ts'

let ca: TestCa
let main: IssuedCert
let other: IssuedCert
let wild: IssuedCert
let up: HttpUpstream
let plainOnly: HttpUpstream
let eng: StartedEngine
const TLS_KEY = listenKey('127.0.0.1', 0)
const PLAIN_KEY = listenKey('127.0.0.2', 0)

beforeAll(async () => {
  ca = new TestCa()
  main = ca.issue(['main.test', '127.0.0.1'])
  other = ca.issue(['other.test'])
  wild = ca.issue(['*.wild.test'])
  up = await httpUpstream((req, res) => {
    res.setHeader('x-seen-proto', String(req.headers['x-forwarded-proto']))
    res.end(`up ${req.url}`)
  })
  plainOnly = await httpUpstream()
  const to = [{ host: '127.0.0.1', port: up.port }]
  eng = await startEngine(
    snapshotWith(
      [
        {
          host: '127.0.0.1',
          tls: [main, other, wild].map((c) => ({ certFile: c.certFile, keyFile: c.keyFile })),
          routes: [
            { hosts: ['secure.test'], schemes: ['https'], upstreams: to },
            { hosts: ['plain-only.test'], schemes: ['http'], upstreams: [{ host: '127.0.0.1', port: plainOnly.port }] },
            { upstreams: to },
          ],
        },
        { host: '127.0.0.2', routes: [{ upstreams: to }] },
      ],
      1,
    ),
    { headersTimeoutMs: 400 },
    [main, other, wild].map(certEntry),
  )
})
afterAll(async () => {
  await eng?.stop()
  await up?.close()
  await plainOnly?.close()
  ca?.remove()
})

/** Runs a tool with `input` on stdin; its stdout and stderr together. */
function runTool(cmd: string, args: string[], input: string, ms: number): Promise<string> {
  return within(
    new Promise((resolve, reject) => {
      const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
      let out = ''
      p.stdout.on('data', (d: Buffer) => (out += d.toString()))
      p.stderr.on('data', (d: Buffer) => (out += d.toString()))
      p.once('error', reject)
      p.once('close', () => resolve(out))
      p.stdin.end(input)
    }),
    ms,
    cmd,
  )
}

function sslscan(port: number): Promise<string> {
  return runTool('sslscan', ['--no-colour', '--xml=-', '--no-heartbleed', `127.0.0.1:${port}`], '', 20_000)
}

function tlsPort(): number {
  return eng.portOf(TLS_KEY)
}

/** One handshake: the certificate served, the protocol agreed, then closed. */
function handshake(opts: ConnectionOptions): Promise<{ cert: PeerCertificate; alpn: string | false | null; protocol: string | null; reused: boolean; cipher: string }> {
  return within(
    new Promise((resolve, reject) => {
      const s = tlsConnect({ port: tlsPort(), host: '127.0.0.1', ca: ca.caPem, ...opts })
      s.once('error', reject)
      s.once('secureConnect', () => {
        const out = { cert: s.getPeerCertificate(), alpn: s.alpnProtocol, protocol: s.getProtocol(), reused: s.isSessionReused(), cipher: s.getCipher().name }
        s.destroy()
        resolve(out)
      })
    }),
    5000,
    'handshake',
  )
}

async function get(path: string, host: string, opts: ConnectionOptions = {}): Promise<{ status: number; body: string; headers: Record<string, string> }> {
  const c = await RawClient.connectTls(tlsPort(), { ca: ca.caPem, servername: 'main.test', ...opts })
  c.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
  const r = await c.read().finally(() => c.destroy())
  const headers: Record<string, string> = {}
  for (const [k, v] of r.headers) headers[k.toLowerCase()] = v
  return { status: r.status, body: r.body.toString(), headers }
}

describe('certificate selection', () => {
  it('serves the certificate naming the SNI server name exactly', async () => {
    expect((await handshake({ servername: 'other.test' })).cert.subjectaltname).toBe('DNS:other.test')
    expect((await handshake({ servername: 'main.test' })).cert.subjectaltname).toContain('DNS:main.test')
  })

  it('serves the wildcard one label up, whatever the case', async () => {
    expect((await handshake({ servername: 'a.wild.test' })).cert.subjectaltname).toBe('DNS:*.wild.test')
    expect((await handshake({ servername: 'B.Wild.Test' })).cert.subjectaltname).toBe('DNS:*.wild.test')
  })

  it('serves the default (first) certificate for an unknown name, a name two labels below a wildcard, and no SNI', async () => {
    await expect(handshake({ servername: 'unknown.test' })).rejects.toThrow(/altnames|does not match/i)
    const unknown = await handshake({ servername: 'unknown.test', checkServerIdentity: () => undefined })
    expect(unknown.cert.subjectaltname).toContain('DNS:main.test')
    const deep = await handshake({ servername: 'x.y.wild.test', checkServerIdentity: () => undefined })
    expect(deep.cert.subjectaltname).toContain('DNS:main.test')
    // An IP address sends no SNI.
    const none = await handshake({ servername: '' })
    expect(none.cert.subjectaltname).toContain('DNS:main.test')
  })
})

describe('what requests over TLS see', () => {
  it('routes see the scheme https, and the upstream gets X-Forwarded-Proto: https', async () => {
    const r = await get('/x', 'secure.test')
    expect(r.status).toBe(200)
    expect(r.body).toBe('up /x')
    expect(r.headers['x-seen-proto']).toBe('https')
    // Schemes ["http"] does not take it: the request falls through to the any-host route.
    const p = await get('/y', 'plain-only.test')
    expect(p.body).toBe('up /y')
    expect(plainOnly.requests).toHaveLength(0)
  })

  it('plain requests on the plain listener keep the scheme http', async () => {
    const c = await RawClient.connect(eng.portOf(PLAIN_KEY), '127.0.0.2')
    c.write('GET /p HTTP/1.1\r\nHost: any\r\n\r\n')
    const r = await c.read().finally(() => c.destroy())
    expect(r.status).toBe(200)
    expect(r.headers.find(([k]) => k === 'x-seen-proto')?.[1]).toBe('http')
  })

  it('negotiates h2 first, then http/1.1, by ALPN, and serves a client that offers no ALPN', async () => {
    expect((await handshake({ servername: 'main.test', ALPNProtocols: ['http/1.1', 'h2'] })).alpn).toBe('h2')
    expect((await handshake({ servername: 'main.test', ALPNProtocols: ['http/1.1'] })).alpn).toBe('http/1.1')
    expect((await handshake({ servername: 'main.test' })).alpn).toBe(false)
    expect((await get('/noalpn', 'any')).status).toBe(200)
    // Only protocols it does not speak: refused (no_application_protocol), not silently HTTP/1.1.
    await expect(handshake({ servername: 'main.test', ALPNProtocols: ['h3'] })).rejects.toThrow(/application protocol|alert/i)
  })

  it('keeps a connection alive across requests, with large bodies both ways', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 'x')
    const echo = await httpUpstream((req, res, body) => res.end(`${req.method} ${body.length}`))
    const local = await startEngine(snapshotWith([{ tls: [{ certFile: main.certFile, keyFile: main.keyFile }], routes: [{ upstreams: [{ host: '127.0.0.1', port: echo.port }] }] }], 1), {}, [
      certEntry(main),
    ])
    const c = await RawClient.connectTls(local.port, { ca: ca.caPem, servername: 'main.test' })
    try {
      for (let i = 0; i < 3; i++) {
        c.write(Buffer.concat([Buffer.from(`POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: ${big.length}\r\n\r\n`), big]))
        const r = await c.read({ timeoutMs: 20_000 })
        expect(r.status).toBe(200)
        expect(r.body.toString()).toBe(`POST ${big.length}`)
      }
    } finally {
      c.destroy()
      await local.stop()
      await echo.close()
    }
    const bigUp = await httpUpstream((_req, res) => res.end(big))
    const local2 = await startEngine(snapshotWith([{ tls: [{ certFile: main.certFile, keyFile: main.keyFile }], routes: [{ upstreams: [{ host: '127.0.0.1', port: bigUp.port }] }] }], 1), {}, [
      certEntry(main),
    ])
    const d = await RawClient.connectTls(local2.port, { ca: ca.caPem, servername: 'main.test' })
    try {
      d.write('GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n')
      const r1 = await d.read({ timeoutMs: 20_000 })
      const r2 = await d.read({ timeoutMs: 20_000 })
      expect(r1.body.length).toBe(big.length)
      expect(r2.body.length).toBe(big.length)
    } finally {
      d.destroy()
      await local2.stop()
      await bigUp.close()
    }
  })

  it('closes with close_notify after a response to Connection: close', async () => {
    const c = await RawClient.connectTls(tlsPort(), { ca: ca.caPem, servername: 'main.test' })
    c.write('GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    const r = await c.read()
    expect(r.status).toBe(200)
    expect(await c.whenClosed(3000)).toBe(true)
  })
})

describe('the wrong protocol', () => {
  it('answers plain HTTP on a TLS port with a clear 400 in clear text, and closes', async () => {
    const c = await RawClient.connect(tlsPort())
    c.write('GET / HTTP/1.1\r\nHost: main.test\r\n\r\n')
    const r = await c.read({ timeoutMs: 3000 })
    expect(r.status).toBe(400)
    expect(r.body.toString()).toMatch(/speaks HTTPS/)
    expect(await c.whenClosed(3000)).toBe(true)
  })

  it('answers a TLS ClientHello on a plain port with 400 and closes: the TLS client fails at once, it does not hang', async () => {
    const err = await within(
      new Promise<Error>((resolve) => {
        const s = tlsConnect({ port: eng.portOf(PLAIN_KEY), host: '127.0.0.2', servername: 'main.test', ca: ca.caPem })
        s.once('error', resolve)
        s.once('secureConnect', () => resolve(new Error('handshake completed on a plain port')))
      }),
      3000,
      'the TLS client to fail',
    )
    expect(err.message).toMatch(/wrong version number|packet length too long|ECONNRESET|socket disconnected|record/i)
  })

  it('closes a connection whose handshake does not finish within the header timeout', async () => {
    const start = Date.now()
    const s: Socket = netConnect({ port: tlsPort(), host: '127.0.0.1' })
    s.on('error', () => {})
    // The first bytes of a ClientHello, then nothing.
    s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]))
    await within(new Promise<void>((resolve) => s.once('close', () => resolve())), 3000, 'the stalled handshake to be closed')
    expect(Date.now() - start).toBeGreaterThanOrEqual(300)
    const idle: Socket = netConnect({ port: tlsPort(), host: '127.0.0.1' })
    idle.on('error', () => {})
    await within(new Promise<void>((resolve) => idle.once('close', () => resolve())), 3000, 'a silent connection to be closed')
  })
})

describe('the Mozilla intermediate profile', () => {
  it('refuses TLS 1.1 and TLS 1.0', async () => {
    await expect(handshake({ servername: 'main.test', minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' })).rejects.toThrow(/protocol|version|alert/i)
  })

  it('refuses a TLS 1.2 client that offers only CBC or RSA key exchange suites', async () => {
    await expect(handshake({ servername: 'main.test', maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA:ECDHE-ECDSA-AES128-SHA' })).rejects.toThrow(/handshake failure|no shared cipher|alert/i)
  })

  it('speaks TLS 1.2 with ECDHE and AES-GCM, and TLS 1.3', async () => {
    const t12 = await handshake({ servername: 'main.test', maxVersion: 'TLSv1.2' })
    expect(t12.protocol).toBe('TLSv1.2')
    expect((await handshake({ servername: 'main.test' })).protocol).toBe('TLSv1.3')
  })

  it("chooses AES-128-GCM in the profile's order, whatever AES suite the client lists first, but ChaCha20-Poly1305 for a client that lists it first", async () => {
    const aes256First = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256'
    expect((await handshake({ servername: 'main.test', ciphers: aes256First })).cipher).toBe('TLS_AES_128_GCM_SHA256')
    const chachaFirst = 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256'
    expect((await handshake({ servername: 'main.test', ciphers: chachaFirst })).cipher).toBe('TLS_CHACHA20_POLY1305_SHA256')
    const t12 = await handshake({ servername: 'main.test', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256' })
    expect(t12.cipher).toBe('ECDHE-ECDSA-AES128-GCM-SHA256')
    const t12chacha = await handshake({ servername: 'main.test', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256' })
    expect(t12chacha.cipher).toBe('ECDHE-ECDSA-CHACHA20-POLY1305')
  })

  it('sslscan finds nothing below TLS 1.2, no weak cipher, no renegotiation (ECDSA and RSA certificates)', async () => {
    const rsa = ca.issue(['rsa.test'], { rsa: true })
    const local = await startEngine(snapshotWith([{ tls: [{ certFile: rsa.certFile, keyFile: rsa.keyFile }], routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }], 1), {}, [
      certEntry(rsa),
    ])
    try {
      for (const port of [tlsPort(), local.port]) {
        const xml = await sslscan(port)
        const enabled = [...xml.matchAll(/<protocol type="(\w+)" version="([\d.]+)" enabled="1"/g)].map((m) => `${m[1]}${m[2]}`)
        expect(enabled.sort()).toEqual(['tls1.2', 'tls1.3'])
        expect(xml).toMatch(/<renegotiation supported="0"/)
        const ciphers = [...xml.matchAll(/<cipher status="\w+" sslversion="([^"]+)" bits="(\d+)" cipher="([^"]+)"[^>]* strength="(\w+)"/g)].map((m) => ({
          v: m[1],
          bits: Number(m[2]),
          name: m[3] ?? '',
          strength: m[4],
        }))
        expect(ciphers.length).toBeGreaterThanOrEqual(5)
        for (const c of ciphers) {
          expect(['strong', 'acceptable'], `${c.name}`).toContain(c.strength)
          expect(c.bits, c.name).toBeGreaterThanOrEqual(128)
          expect(c.name, `${c.v} ${c.name}`).toMatch(/^(TLS_(AES_128_GCM|AES_256_GCM|CHACHA20_POLY1305)_SHA(256|384)|ECDHE-(ECDSA|RSA)-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305))$/)
        }
      }
    } finally {
      await local.stop()
    }
  }, 30_000)

  it('a client-initiated renegotiation is refused (openssl s_client "R")', async () => {
    const out = await runTool('openssl', ['s_client', '-connect', `127.0.0.1:${tlsPort()}`, '-tls1_2', '-servername', 'main.test'], 'R\n', 5000)
    expect(out).toMatch(/RENEGOTIATING/)
    expect(out).toMatch(/no renegotiation/)
  })
})

describe('certificates replaced at run time', () => {
  it('new handshakes get the new certificate; an open connection keeps working', async () => {
    const c = await RawClient.connectTls(tlsPort(), { ca: ca.caPem, servername: 'main.test' })
    // One request first: the connection is then idle under the idle timeout, not the (short) first-request one.
    c.write('GET /first HTTP/1.1\r\nHost: a\r\n\r\n')
    expect((await c.read()).status).toBe(200)
    const renewed = ca.issue(['main.test', '127.0.0.1', 'renewed.test'])
    // The same files, new content (as a renewal rewrites them).
    eng.engine.setCertificates([{ ...certEntry(renewed), id: certEntry(main).id }, certEntry(other), certEntry(wild)])
    const after = await handshake({ servername: 'main.test' })
    expect(after.cert.subjectaltname).toContain('DNS:renewed.test')
    c.write('GET /still HTTP/1.1\r\nHost: a\r\n\r\n')
    const r = await c.read().finally(() => c.destroy())
    expect(r.status).toBe(200)
    eng.engine.setCertificates([main, other, wild].map(certEntry))
  })

  it('refuses a certificate whose key does not match, and keeps the last good set', () => {
    const bad = { ...certEntry(other), id: certEntry(main).id, key: main.key }
    expect(() => eng.engine.setCertificates([bad, certEntry(other), certEntry(wild)])).toThrow(expect.objectContaining({ code: 'E_TLS_CERT' }))
    expect(() => eng.engine.setCertificates([{ ...certEntry(main), cert: 'garbage' }, certEntry(other), certEntry(wild)])).toThrow(expect.objectContaining({ code: 'E_TLS_CERT' }))
  })

  it('refuses a set that lacks a certificate a listener serves', async () => {
    expect(() => eng.engine.setCertificates([certEntry(other)])).toThrow(/not loaded/)
    expect((await handshake({ servername: 'wild.test', checkServerIdentity: () => undefined })).cert.subjectaltname).toContain('DNS:main.test')
  })
})

describe('certificates kept in the store', () => {
  it('serve names the own files do not cover, the latest to expire first; without files the default covers the default host', async () => {
    const older = ca.issue(['shop.test', 'main.test'], { notAfter: new Date(Date.now() + 5 * 86_400_000) })
    const newer = ca.issue(['shop.test'], { notAfter: new Date(Date.now() + 9 * 86_400_000) })
    const api = ca.issue(['api.test'])
    const stored = (c: IssuedCert, name: string) => ({ ...certEntry(c), id: `store:${name}` })
    const spec = { tls: [{ certFile: main.certFile, keyFile: main.keyFile }], routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }
    const snap = snapshotWith([spec, { host: '127.0.0.3', tls: [], routes: [{ hosts: ['api.test'], upstreams: [{ host: '127.0.0.1', port: up.port }] }] }], 1)
    // The second listener names no files; its default is the stored certificate covering its first host.
    const withDefault = { ...snap, listeners: new Map([...snap.listeners].map(([k, l]) => [k, l.tls !== null && l.tls.files.length === 0 ? { ...l, tls: { ...l.tls, defaultHost: 'api.test' } } : l])) }
    const local = await startEngine(withDefault, {}, [certEntry(main), stored(older, 'older'), stored(newer, 'newer'), stored(api, 'api')])
    try {
      const at = (port: number, host: string, servername: string) =>
        within(
          new Promise<string>((resolve, reject) => {
            const s = tlsConnect({ port, host, ca: ca.caPem, servername, checkServerIdentity: () => undefined })
            s.once('error', reject)
            s.once('secureConnect', () => {
              resolve(s.getPeerCertificate().fingerprint256)
              s.destroy()
            })
          }),
          5000,
          'handshake',
        )
      const fp = (c: IssuedCert) => new X509Certificate(c.cert).fingerprint256
      const first = local.portOf(listenKey('127.0.0.1', 0))
      expect(await at(first, '127.0.0.1', 'shop.test')).toBe(fp(newer))
      expect(await at(first, '127.0.0.1', 'main.test')).toBe(fp(main)) // the listener's own file wins over the store
      expect(await at(first, '127.0.0.1', 'api.test')).toBe(fp(api))
      const second = local.portOf(listenKey('127.0.0.3', 0))
      expect(await at(second, '127.0.0.3', '')).toBe(fp(api))
      expect(await at(second, '127.0.0.3', 'shop.test')).toBe(fp(newer))
    } finally {
      await local.stop()
    }
  })
})

describe('redirects to https and Strict-Transport-Security', () => {
  it('answers a plain request for an https-only route with 308 to the same URL on https, keeping the connection', async () => {
    const local = await startEngine(
      snapshotWith(
        [
          {
            host: '127.0.0.1',
            routes: [
              { hosts: ['shop.test'], schemes: ['https'], httpsPort: 8443, upstreams: [] },
              { hosts: ['std.test'], schemes: ['https'], httpsPort: 443, upstreams: [] },
              { hosts: ['plain.test'], upstreams: [{ host: '127.0.0.1', port: up.port }] },
            ],
          },
          {
            host: '127.0.0.4',
            tls: [{ certFile: main.certFile, keyFile: main.keyFile }],
            routes: [{ hsts: 'strict-transport-security: max-age=600\r\n', upstreams: [{ host: '127.0.0.1', port: up.port }] }],
          },
        ],
        1,
      ),
      {},
      [certEntry(main)],
    )
    try {
      const c = await RawClient.connect(local.portOf(listenKey('127.0.0.1', 0)))
      c.write('GET /cart?id=7 HTTP/1.1\r\nHost: Shop.Test:8080\r\n\r\n')
      const r = await c.read()
      expect(r.status).toBe(308)
      expect(r.headers.find(([k]) => k === 'location')?.[1]).toBe('https://shop.test:8443/cart?id=7')
      c.write('GET / HTTP/1.1\r\nHost: std.test\r\n\r\n')
      expect((await c.read()).headers.find(([k]) => k === 'location')?.[1]).toBe('https://std.test/')
      // Other routes are served as before; a host no route takes is still 404.
      c.write('GET / HTTP/1.1\r\nHost: plain.test\r\n\r\n')
      const plain = await c.read()
      expect(plain.status).toBe(200)
      expect(plain.headers.some(([k]) => k === 'strict-transport-security')).toBe(false)
      c.write('GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n')
      expect((await c.read()).status).toBe(404)
      // A body it did not read: the redirect closes the connection.
      c.write('POST /pay HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\n\r\n')
      const post = await c.read()
      expect(post.status).toBe(308)
      expect(post.headers.find(([k]) => k === 'connection')?.[1]).toBe('close')
      expect(await c.whenClosed()).toBe(true)
      // Over TLS, the route's Strict-Transport-Security is added.
      const t = await RawClient.connectTls(local.portOf(listenKey('127.0.0.4', 0)), { ca: ca.caPem, servername: 'main.test' }, '127.0.0.4')
      t.write('GET / HTTP/1.1\r\nHost: main.test\r\n\r\n')
      const sec = await t.read().finally(() => t.destroy())
      expect(sec.status).toBe(200)
      expect(sec.headers.find(([k]) => k === 'strict-transport-security')?.[1]).toBe('max-age=600')
      // And over HTTP/2 (ALPN h2) alike.
      const h2 = http2Connect(`https://main.test:${local.portOf(listenKey('127.0.0.4', 0))}`, { ca: ca.caPem, host: '127.0.0.4', servername: 'main.test' })
      try {
        const head = await new Promise<Record<string, unknown>>((resolve, reject) => {
          const req = h2.request({ ':path': '/' })
          req.once('response', (h) => resolve(h as Record<string, unknown>))
          req.once('error', reject)
          req.resume()
          req.end()
        })
        expect(head[':status']).toBe(200)
        expect(head['strict-transport-security']).toBe('max-age=600')
      } finally {
        h2.close()
      }
    } finally {
      await local.stop()
    }
  })
})

describe('session resumption', () => {
  it('resumes a session by ticket on another engine with the same ticket secret, not with another secret', async () => {
    const secret = 'ab'.repeat(32)
    const spec = [{ tls: [{ certFile: main.certFile, keyFile: main.keyFile }], routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }]
    const a = await startEngine(snapshotWith(spec, 1), { ticketSecret: secret }, [certEntry(main)])
    const b = await startEngine(snapshotWith(spec, 1), { ticketSecret: secret }, [certEntry(main)])
    const x = await startEngine(snapshotWith(spec, 1), { ticketSecret: 'cd'.repeat(32) }, [certEntry(main)])
    try {
      const session = await new Promise<Buffer>((resolve, reject) => {
        const s = tlsConnect({ port: a.port, host: '127.0.0.1', ca: ca.caPem, servername: 'main.test' })
        s.once('error', reject)
        s.once('session', (sess: Buffer) => {
          s.destroy()
          resolve(sess)
        })
        s.once('secureConnect', () => s.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n'))
      })
      const resume = (port: number): Promise<boolean> =>
        new Promise((resolve, reject) => {
          const s = tlsConnect({ port, host: '127.0.0.1', ca: ca.caPem, servername: 'main.test', session })
          s.once('error', reject)
          s.once('secureConnect', () => {
            const reused = s.isSessionReused()
            s.destroy()
            resolve(reused)
          })
        })
      expect(await resume(b.port)).toBe(true)
      expect(await resume(x.port)).toBe(false)
    } finally {
      await a.stop()
      await b.stop()
      await x.stop()
    }
  })

  it('sends one TLS 1.3 session ticket after a full handshake, and the next connection resumes with it', async () => {
    const spec = [{ tls: [{ certFile: main.certFile, keyFile: main.keyFile }], routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }]
    const local = await startEngine(snapshotWith(spec, 1), {}, [certEntry(main)])
    try {
      const sessions: Buffer[] = []
      const body = await new Promise<string>((resolve, reject) => {
        const s = tlsConnect({ port: local.port, host: '127.0.0.1', ca: ca.caPem, servername: 'main.test', maxVersion: 'TLSv1.3', minVersion: 'TLSv1.3' })
        let text = ''
        s.setEncoding('latin1')
        s.on('data', (d: string) => (text += d))
        s.once('error', reject)
        s.on('session', (sess: Buffer) => sessions.push(sess))
        // Tickets come right after the handshake, before the response: all are in once the server has closed.
        s.once('end', () => resolve(text))
        s.once('secureConnect', () => s.write('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'))
      })
      expect(body.startsWith('HTTP/1.1 200')).toBe(true)
      expect(sessions.length).toBe(1)
      const reused = await new Promise<boolean>((resolve, reject) => {
        const s = tlsConnect({ port: local.port, host: '127.0.0.1', ca: ca.caPem, servername: 'main.test', session: sessions[0] })
        s.once('error', reject)
        s.once('secureConnect', () => {
          const r = s.isSessionReused()
          s.destroy()
          resolve(r)
        })
      })
      expect(reused).toBe(true)
    } finally {
      await local.stop()
    }
  })

  it('gives a resumed TLS 1.3 connection a new ticket, so a client that uses each ticket once resumes every connection', async () => {
    const spec = [{ tls: [{ certFile: main.certFile, keyFile: main.keyFile }], routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }]
    const local = await startEngine(snapshotWith(spec, 1), {}, [certEntry(main)])
    try {
      let got = await closingRequest(local.port, undefined)
      expect(got.reused).toBe(false)
      for (let i = 0; i < 3; i++) {
        expect(got.tickets.length).toBe(1)
        got = await closingRequest(local.port, got.tickets[0])
        expect(got.reused).toBe(true)
      }
      expect(got.tickets.length).toBe(1)
    } finally {
      await local.stop()
    }
  })

  it('refuses tickets sealed before the hourly key rotation and resumes with those issued after it', async () => {
    const spec = [{ tls: [{ certFile: main.certFile, keyFile: main.keyFile }], routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }]
    const local = await startEngine(snapshotWith(spec, 1), { ticketSecret: 'ef'.repeat(32) }, [certEntry(main)])
    const realNow = Date.now
    try {
      const before = await closingRequest(local.port, undefined)
      expect(before.tickets.length).toBe(1)
      // The engine's clock moves into the next hour: its sweep sets the next key on every context.
      const shift = ROTATE_MS
      Date.now = () => realNow() + shift
      await until(async () => !(await closingRequest(local.port, before.tickets[0])).reused, 5000, 'the ticket from before the rotation to be refused')
      const after = await closingRequest(local.port, undefined)
      expect(after.tickets.length).toBe(1)
      expect((await closingRequest(local.port, after.tickets[0])).reused).toBe(true)
    } finally {
      Date.now = realNow
      await local.stop()
    }
  })
})

/** One TLS 1.3 request asking to close, with `session` (undefined: a full handshake): whether it resumed, and the tickets it got. */
function closingRequest(port: number, session: Buffer | undefined): Promise<{ reused: boolean; tickets: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const tickets: Buffer[] = []
    const s = tlsConnect({ port, host: '127.0.0.1', ca: ca.caPem, servername: 'main.test', minVersion: 'TLSv1.3', ...(session === undefined ? {} : { session }) })
    let reused = false
    let text = ''
    s.setEncoding('latin1')
    s.on('data', (d: string) => (text += d))
    s.once('error', reject)
    s.on('session', (sess: Buffer) => tickets.push(sess))
    // Tickets come right after the handshake, before the response: all are in once the server has closed.
    s.once('end', () => (text.startsWith('HTTP/1.1 200') ? resolve({ reused, tickets }) : reject(new Error(`answer: ${text}`))))
    s.once('secureConnect', () => {
      reused = s.isSessionReused()
      s.write('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    })
  })
}

describe('drain', () => {
  it('shutdown closes idle TLS connections and handshakes in progress', async () => {
    const local = await startEngine(snapshotWith([{ tls: [{ certFile: main.certFile, keyFile: main.keyFile }], routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }], 1), {}, [
      certEntry(main),
    ])
    const idle = await RawClient.connectTls(local.port, { ca: ca.caPem, servername: 'main.test' })
    idle.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n')
    expect((await idle.read()).status).toBe(200)
    const half: Socket = netConnect({ port: local.port, host: '127.0.0.1' })
    half.on('error', () => {})
    await until(() => (local.engine.stats().listeners[0]?.connections ?? 0) === 2, 3000, 'both connections to be counted')
    await within(local.engine.shutdown(5000), 3000, 'shutdown')
    expect(await idle.whenClosed(1000)).toBe(true)
    half.destroy()
  })
})
