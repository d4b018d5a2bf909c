// Bytes over TLS listeners: every byte of large bodies both ways intact
// while the other side reads slowly (records sealed while earlier ones are
// still pending in the kernel; request bodies forwarded while the upstream
// is slow, from the read buffer every connection shares), pipelined
// requests sent in one write, and an ALPN offer with nothing in common
// refused with an alert. Random bytes, checked by SHA-256: a body of one
// repeated byte would hide a buffer reused too early.

import { createHash, randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient } from '../support/client.ts'
import { TestCa, certEntry } from '../support/certs.ts'
import type { IssuedCert } from '../support/certs.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { within } from '../support/poll.ts'
import { snapshotWith } from '../support/snapshot.ts'

let ca: TestCa
let cert: IssuedCert
let eng: StartedEngine
let upPort = 0
const up = createServer((req, res) => {
  if (req.url?.startsWith('/download/')) {
    const size = Number(req.url.slice('/download/'.length))
    const body = randomBytes(size)
    res.setHeader('x-sha256', sha(body))
    res.end(body)
    return
  }
  // Reads the upload slowly: the balancer's writes to this socket stay pending.
  const h = createHash('sha256')
  let n = 0
  req.on('data', (c: Buffer) => {
    h.update(c)
    n += c.length
    req.pause()
    setTimeout(() => req.resume(), 2)
  })
  req.on('end', () => res.end(`${n} ${h.digest('hex')}`))
})

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

beforeAll(async () => {
  ca = new TestCa()
  cert = ca.issue(['bodies.test'])
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r))
  upPort = (up.address() as AddressInfo).port
  eng = await startEngine(snapshotWith([{ tls: [{ certFile: cert.certFile, keyFile: cert.keyFile }], alpn: ['http/1.1'], routes: [{ upstreams: [{ host: '127.0.0.1', port: upPort }] }] }], 1), {}, [
    certEntry(cert),
  ])
})
afterAll(async () => {
  await eng?.stop()
  up.close()
  ca?.remove()
})

describe('bodies and pipelining over TLS', () => {
  it('forwards every byte of large uploads to an upstream that reads slowly, twice on one connection', async () => {
    const c = await RawClient.connectTls(eng.port, { ca: ca.caPem, servername: 'bodies.test' })
    try {
      for (let i = 0; i < 2; i++) {
        const body = randomBytes(4 * 1024 * 1024 + 17)
        c.write(Buffer.concat([Buffer.from(`POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`), body]))
        const r = await c.read({ timeoutMs: 30_000 })
        expect(r.status).toBe(200)
        expect(r.body.toString()).toBe(`${body.length} ${sha(body)}`)
      }
    } finally {
      c.destroy()
    }
  })

  it('delivers every byte of large responses to a client that reads slowly', async () => {
    const size = 6 * 1024 * 1024 + 5
    const got = await within(
      new Promise<{ head: string; body: Buffer }>((resolve, reject) => {
        const s = tlsConnect({ port: eng.port, host: '127.0.0.1', ca: ca.caPem, servername: 'bodies.test' }, () => s.write(`GET /download/${size} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`))
        const parts: Buffer[] = []
        s.on('data', (d: Buffer) => {
          parts.push(d)
          s.pause()
          setTimeout(() => s.resume(), 1)
        })
        s.on('end', () => {
          const all = Buffer.concat(parts)
          const at = all.indexOf('\r\n\r\n')
          resolve({ head: all.subarray(0, at).toString('latin1'), body: all.subarray(at + 4) })
        })
        s.on('error', reject)
      }),
      60_000,
      'slow download',
    )
    expect(got.head).toMatch(/^HTTP\/1\.1 200/)
    expect(got.body.length).toBe(size)
    expect(sha(got.body)).toBe(/x-sha256: ([0-9a-f]+)/i.exec(got.head)?.[1])
  })

  it('answers 50 pipelined requests sent in one write, in order', async () => {
    const c = await RawClient.connectTls(eng.port, { ca: ca.caPem, servername: 'bodies.test' })
    try {
      let all = ''
      for (let i = 0; i < 50; i++) all += `GET /download/${1000 + i} HTTP/1.1\r\nHost: a\r\n\r\n`
      c.write(all)
      for (let i = 0; i < 50; i++) {
        const r = await c.read({ timeoutMs: 10_000 })
        expect(r.status).toBe(200)
        expect(r.body.length).toBe(1000 + i)
      }
    } finally {
      c.destroy()
    }
  })

  it('refuses a client whose ALPN offer has nothing in common with the listener: no_application_protocol', async () => {
    const err = await within(
      new Promise<Error>((resolve) => {
        const s = tlsConnect({ port: eng.port, host: '127.0.0.1', ca: ca.caPem, servername: 'bodies.test', ALPNProtocols: ['h2'] }, () => {
          s.destroy()
          resolve(new Error('handshake completed'))
        })
        s.on('error', resolve)
      }),
      10_000,
      'handshake',
    )
    expect(err.message).toMatch(/no.application.protocol/i)
  })
})
