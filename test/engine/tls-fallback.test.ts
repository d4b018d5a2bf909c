// The TLS fallback: where the raw bindings differ from what
// src/engine/tls/socket.ts knows, TLS listeners serve clients on
// tls.TLSSocket (src/engine/tls/fallback.ts). The same certificate choice,
// scheme, ALPN and handshake deadline as the raw path.

import http2 from 'node:http2'
import { connect as netConnect } from 'node:net'
import type { Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { useRawSockets } from '../../src/engine/http1/client-socket.ts'
import { RawClient } from '../support/client.ts'
import { TestCa, certEntry } from '../support/certs.ts'
import type { IssuedCert } from '../support/certs.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { within } from '../support/poll.ts'
import { snapshotWith } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

let ca: TestCa
let a: IssuedCert
let b: IssuedCert
let up: HttpUpstream
let eng: StartedEngine

beforeAll(async () => {
  useRawSockets(false)
  ca = new TestCa()
  a = ca.issue(['a.test'])
  b = ca.issue(['*.b.test'])
  up = await httpUpstream((req, res) => res.end(`${req.headers['x-forwarded-proto']} ${req.url}`))
  eng = await startEngine(
    snapshotWith([{ tls: [a, b].map((c) => ({ certFile: c.certFile, keyFile: c.keyFile })), routes: [{ schemes: ['https'], upstreams: [{ host: '127.0.0.1', port: up.port }] }] }], 1),
    { headersTimeoutMs: 300 },
    [certEntry(a), certEntry(b)],
  )
})
afterAll(async () => {
  await eng?.stop()
  await up?.close()
  ca?.remove()
  useRawSockets(true)
})

describe('TLS on tls.TLSSocket', () => {
  it('serves HTTP/2 (ALPN h2) on the TLSSocket too, several streams on one connection', async () => {
    const c = http2.connect('https://a.test', {
      ca: ca.caPem,
      servername: 'a.test',
      createConnection: () => tlsConnect({ port: eng.port, host: '127.0.0.1', servername: 'a.test', ca: ca.caPem, ALPNProtocols: ['h2'] }),
    })
    c.on('error', () => {})
    try {
      const bodies = await Promise.all(
        [1, 2, 3].map(
          (i) =>
            new Promise<string>((resolve, reject) => {
              const req = c.request({ ':path': `/h2-${i}` }, { endStream: true })
              let b = ''
              req.on('data', (d) => (b += d))
              req.on('end', () => resolve(b))
              req.on('error', reject)
            }),
        ),
      )
      expect(bodies).toEqual(['https /h2-1', 'https /h2-2', 'https /h2-3'])
    } finally {
      c.close()
    }
  })

  it('chooses the certificate by SNI and serves https requests', async () => {
    for (const [name, san] of [
      ['a.test', 'DNS:a.test'],
      ['x.b.test', 'DNS:*.b.test'],
    ] as const) {
      const c = await RawClient.connectTls(eng.port, { ca: ca.caPem, servername: name, ALPNProtocols: ['http/1.1'] })
      expect((c.sock as import('node:tls').TLSSocket).getPeerCertificate().subjectaltname).toBe(san)
      expect((c.sock as import('node:tls').TLSSocket).alpnProtocol).toBe('http/1.1')
      c.write(`GET /${name} HTTP/1.1\r\nHost: ${name}\r\n\r\n`)
      const r = await c.read().finally(() => c.destroy())
      expect(r.body.toString()).toBe(`https /${name}`)
    }
  })

  it('answers a tls-alpn-01 validation (ALPN acme-tls/1) with the challenge certificate, on a listener with one certificate or several', async () => {
    const one = await startEngine(snapshotWith([{ tls: [{ certFile: a.certFile, keyFile: a.keyFile }], routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }], 1), {}, [certEntry(a)])
    try {
      await expectAlpnChallenges(eng)
      await expectAlpnChallenges(one)
    } finally {
      await one.stop()
    }
  })

  it('closes a handshake that does not finish within the header timeout', async () => {
    const s: Socket = netConnect({ port: eng.port, host: '127.0.0.1' })
    s.on('error', () => {})
    await within(new Promise<void>((resolve) => s.once('close', () => resolve())), 3000, 'the stalled handshake to be closed')
  })

  it('closes a plain HTTP request on the TLS port, never hangs', async () => {
    const c = await RawClient.connect(eng.port)
    c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n')
    expect(await c.whenClosed(3000)).toBe(true)
    const ok = await within(
      new Promise<boolean>((resolve) => {
        const s = tlsConnect({ port: eng.port, host: '127.0.0.1', ca: ca.caPem, servername: 'a.test' })
        s.once('secureConnect', () => {
          s.destroy()
          resolve(true)
        })
        s.once('error', () => resolve(false))
      }),
      3000,
      'a handshake after it',
    )
    expect(ok).toBe(true)
  })
})

/** The engine's challenge certificate to acme-tls/1 for its name only; other names and protocols get the listener's own. */
async function expectAlpnChallenges(e: StartedEngine): Promise<void> {
  const challenge = ca.issue(['alpn.test'])
  e.engine.setChallenges({ http01: [], tlsAlpn01: [{ host: 'alpn.test', cert: challenge.cert, key: challenge.key }] })
  try {
    const hello = (servername: string, alpn: string[]): Promise<{ san: string | undefined; alpn: string | false | null }> =>
      within(
        new Promise((resolve, reject) => {
          const s = tlsConnect({ port: e.port, host: '127.0.0.1', servername, ca: ca.caPem, ALPNProtocols: alpn, checkServerIdentity: () => undefined })
          s.once('error', reject)
          s.once('secureConnect', () => {
            resolve({ san: s.getPeerCertificate().subjectaltname, alpn: s.alpnProtocol })
            s.destroy()
          })
        }),
        5000,
        `handshake ${servername} ${alpn.join(',')}`,
      )
    expect(await hello('alpn.test', ['acme-tls/1'])).toEqual({ san: 'DNS:alpn.test', alpn: 'acme-tls/1' })
    expect(await hello('alpn.test', ['http/1.1'])).toEqual({ san: 'DNS:a.test', alpn: 'http/1.1' })
    expect(await hello('a.test', ['acme-tls/1'])).toEqual({ san: 'DNS:a.test', alpn: 'acme-tls/1' })
  } finally {
    e.engine.setChallenges({ http01: [], tlsAlpn01: [] })
  }
}
