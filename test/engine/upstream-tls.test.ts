// Upstreams with Scheme "https": the balancer speaks TLS to them, verifies
// their certificate against the CAs it is given (instead of the system's),
// sends SNI with their host name, keeps the connections pooled, and checks
// their health over TLS. Real node:https servers with openssl certificates.

import { createServer } from 'node:https'
import type { Server } from 'node:https'
import type { TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient } from '../support/client.ts'
import { TestCa } from '../support/certs.ts'
import { startEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'

let ca: TestCa
let other: TestCa
let good: Server
let untrusted: Server
let connections = 0
const seenSni: string[] = []

function listen(s: Server): Promise<number> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port)))
}

beforeAll(async () => {
  ca = new TestCa()
  other = new TestCa()
  const cert = ca.issue(['localhost', '127.0.0.1'])
  good = createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    seenSni.push(String((req.socket as TLSSocket).servername))
    res.end(`secure ${req.url} host=${req.headers.host}`)
  })
  good.on('secureConnection', () => connections++)
  const foreign = other.issue(['localhost'])
  untrusted = createServer({ cert: foreign.cert, key: foreign.key }, (_req, res) => res.end('should not be reached'))
})
afterAll(() => {
  good?.close()
  untrusted?.close()
  ca?.remove()
  other?.remove()
})

describe('TLS to upstreams', () => {
  it('reaches an https upstream verified against the given CA, with SNI, over pooled connections', async () => {
    const port = await listen(good)
    const eng = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: 'localhost', port, tls: true }] }] }, 1), { upstreamCa: ca.caPem })
    try {
      const c = await RawClient.connect(eng.port)
      for (let i = 0; i < 3; i++) {
        c.write(`GET /r${i} HTTP/1.1\r\nHost: app.test\r\n\r\n`)
        const r = await c.read()
        expect(r.status).toBe(200)
        expect(r.body.toString()).toBe(`secure /r${i} host=app.test`)
      }
      c.destroy()
      expect(seenSni).toEqual(['localhost', 'localhost', 'localhost'])
      expect(connections).toBe(1)
    } finally {
      await eng.stop()
    }
  })

  it('refuses an upstream whose certificate the CAs do not vouch for: the client gets a 502 or 503, never its answer', async () => {
    const port = await listen(untrusted)
    const eng = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: 'localhost', port, tls: true }], retry: { attempts: 1 } }] }, 1), { upstreamCa: ca.caPem })
    try {
      const c = await RawClient.connect(eng.port)
      c.write('GET / HTTP/1.1\r\nHost: app.test\r\n\r\n')
      const r = await c.read().finally(() => c.destroy())
      expect([502, 503]).toContain(r.status)
      expect(r.body.toString()).not.toContain('should not be reached')
      const st = eng.engine.stats().upstreams.find((u) => u.port === port)
      expect(st?.key).toBe(`https://localhost:${port}`)
      expect(st?.failures).toBeGreaterThan(0)
    } finally {
      await eng.stop()
    }
  })

  it('checks an https upstream over TLS: healthy when its check passes', async () => {
    const port = (good.address() as { port: number }).port
    const eng = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: 'localhost', port, tls: true }], check: { intervalMs: 200, timeoutMs: 150, rise: 1, fall: 1 } }] }, 1), {
      upstreamCa: ca.caPem,
    })
    try {
      await until(() => eng.engine.stats().upstreams.some((u) => u.port === port && u.state === 'healthy'), 5000, 'the TLS check to pass')
      const c = await RawClient.connect(eng.port)
      c.write('GET /checked HTTP/1.1\r\nHost: app.test\r\n\r\n')
      expect((await c.read().finally(() => c.destroy())).status).toBe(200)
    } finally {
      await eng.stop()
    }
  })
})
