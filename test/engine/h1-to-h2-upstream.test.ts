// HTTP/1.1 clients to HTTP/2 upstreams (Protocol h2c, and h2 over TLS):
// real node:http2 servers behind the balancer and raw HTTP/1.1 clients.
// The request becomes a stream (Host as :authority, connection-specific
// fields gone, the body streamed under flow control), the response an
// HTTP/1.1 response: with its content-length, or chunked, trailers as the
// chunked trailer section for a client that sent `TE: trailers`; keep-alive
// and pipelining keep their order; a reset before the head is a 502, after
// it the client's connection closes before the body's end.

import { createHash } from 'node:crypto'
import http2 from 'node:http2'
import { createServer } from 'node:net'
import type { AddressInfo, Server } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestCa } from '../support/certs.ts'
import { RawClient, parseResponses, rawRequest, sendAndReadToEnd } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { F, T, block, frame } from '../support/h2peer.ts'
import { header } from '../support/responses.ts'
import { snapshotWith } from '../support/snapshot.ts'
import { rulesOf } from '../rules/compile-rules.ts'

const MiB = 1024 * 1024
/** What the upstream saw of each request, by its x-tag. */
const seen = new Map<string, http2.IncomingHttpHeaders>()
let h2c: http2.Http2Server
/** A raw HTTP/2 upstream answering every stream with a field value that holds CR LF (which node:http2 would refuse to send). */
let evil: Server
const EVIL_HEAD = block([
  [':status', '200'],
  ['x-note', 'a\r\nset-cookie: injected=1'],
])
let secure: http2.Http2SecureServer
let ca: TestCa
let eng: StartedEngine
let port = 0
let gonePort = 0
let h2cPort = 0

/** 10 MiB of bytes that are not all alike. */
const BIG = Buffer.alloc(10 * MiB)
for (let i = 0; i < BIG.length; i += 4) BIG.writeUInt32LE((i * 2654435761) >>> 0, i)
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

function handle(stream: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders): void {
  stream.on('error', () => {})
  const tag = h['x-tag']
  if (typeof tag === 'string') seen.set(tag, h)
  const url = new URL(String(h[':path']), 'http://x')
  const path = url.pathname
  if (path === '/echo') {
    // The body back, with its length, after reading it slowly (the upstream's window closes meanwhile).
    const parts: Buffer[] = []
    stream.on('data', (d: Buffer) => {
      parts.push(d)
      if (parts.length % 64 === 0) {
        stream.pause()
        setTimeout(() => stream.resume(), 5)
      }
    })
    stream.on('end', () => {
      const body = Buffer.concat(parts)
      stream.respond({ ':status': 200, 'content-length': body.length, 'x-sha': sha(body) })
      stream.end(body)
    })
    return
  }
  if (path === '/chunks') {
    // No content-length: the balancer chunks it for HTTP/1.1 clients.
    stream.respond({ ':status': 200, 'content-type': 'text/plain' })
    let i = 0
    const next = (): void => {
      if (i === 3) return void stream.end()
      stream.write(`part ${i++};`)
      setTimeout(next, 2)
    }
    next()
    return
  }
  if (path === '/big') {
    stream.respond({ ':status': 200, ...(url.searchParams.has('length') ? { 'content-length': BIG.length } : {}) })
    stream.end(BIG)
    return
  }
  if (path === '/sized') {
    stream.respond({ ':status': 200, 'content-length': 2000 })
    stream.end(Buffer.alloc(2000, 0x73))
    return
  }
  if (path === '/grow') {
    // 600 bytes, then 600 more: past a limit of 1000 after the head went out.
    stream.respond({ ':status': 200 })
    stream.write(Buffer.alloc(600, 0x61), () => setImmediate(() => stream.end(Buffer.alloc(600, 0x62))))
    return
  }
  if (path === '/trailers') {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' }))
    stream.end('payload')
    return
  }
  if (path === '/delay') {
    const ms = Number(url.searchParams.get('ms'))
    setTimeout(() => {
      stream.respond({ ':status': 200, 'content-length': String(path.length + String(ms).length) })
      stream.end(`${path}${ms}`)
    }, ms)
    return
  }
  if (path === '/status') {
    const code = Number(url.searchParams.get('code'))
    stream.respond({ ':status': code, ...(code === 304 ? { etag: '"v1"' } : {}) }, { endStream: true })
    return
  }
  if (path === '/reset-before') return void stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
  if (path === '/short') {
    // END_STREAM after 100 of the 1000 bytes its content-length announced.
    stream.respond({ ':status': 200, 'content-length': 1000 })
    stream.end(Buffer.alloc(100, 0x61))
    return
  }
  if (path === '/lost-mid') {
    // The upstream's connection dies in the middle of a body without a length.
    stream.respond({ ':status': 200 })
    stream.write(Buffer.alloc(100, 0x62), () => setTimeout(() => stream.session?.socket.destroy(), 20))
    return
  }
  stream.respond({ ':status': 200, 'content-length': 2 })
  stream.end('ok')
}

beforeAll(async () => {
  // Windows of 1 MiB a stream and 8 MiB a connection, as services that take large uploads announce.
  h2c = http2.createServer({ settings: { initialWindowSize: MiB } })
  h2c.on('session', (s) => s.setLocalWindowSize(8 * MiB))
  h2c.on('stream', handle)
  await new Promise<void>((r) => h2c.listen(0, '127.0.0.1', r))
  ca = new TestCa()
  const cert = ca.issue(['localhost'])
  secure = http2.createSecureServer({ cert: cert.cert, key: cert.key })
  secure.on('stream', handle)
  await new Promise<void>((r) => secure.listen(0, '127.0.0.1', r))
  h2cPort = (h2c.address() as AddressInfo).port
  evil = createServer((sock) => {
    sock.on('error', () => {})
    let buf = Buffer.alloc(0)
    let greeted = false
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      if (!greeted) {
        if (buf.length < 24) return
        buf = buf.subarray(24)
        greeted = true
        sock.write(frame(T.SETTINGS, 0, 0))
      }
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const type = buf[3]
        const id = buf.readUInt32BE(5) & 0x7fffffff
        buf = buf.subarray(9 + buf.readUIntBE(0, 3))
        if (type === T.HEADERS) sock.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, EVIL_HEAD))
      }
    })
  })
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r))
  // A port nothing listens on any more: connections to it are refused.
  const gone = http2.createServer()
  await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r))
  gonePort = (gone.address() as AddressInfo).port
  await new Promise((r) => gone.close(r))
  const tlsPort = (secure.address() as AddressInfo).port
  eng = await startEngine(
    snapshotWith(
      [
        {
          routes: [
            { hosts: ['evil.test'], upstreams: [{ host: '127.0.0.1', port: (evil.address() as AddressInfo).port, protocol: 'h2c' }], retry: { attempts: 1 } },
            {
              hosts: ['limit.test'],
              upstreams: [{ host: '127.0.0.1', port: h2cPort, protocol: 'h2c' }],
              rules: rulesOf({ body: { MaxResponseBytes: 1000 } }, ''),
            },
            { hosts: ['tls.test'], upstreams: [{ host: 'localhost', port: tlsPort, protocol: 'h2', tls: true }] },
            {
              hosts: ['retry.test'],
              upstreams: [
                { host: '127.0.0.1', port: gonePort, protocol: 'h2c', priority: 1 },
                { host: '127.0.0.1', port: h2cPort, protocol: 'h2c', priority: 2 },
              ],
            },
            { upstreams: [{ host: '127.0.0.1', port: h2cPort, protocol: 'h2c' }], retry: { attempts: 1 } },
          ],
        },
      ],
      1,
    ),
    { upstreamCa: ca.caPem },
  )
  port = eng.port
})

afterAll(async () => {
  await eng?.stop()
  h2c?.close()
  evil?.close()
  secure?.close()
  ca?.remove()
})

describe('HTTP/1.1 clients to HTTP/2 upstreams', () => {
  it('a request becomes a stream: Host as :authority, connection-specific fields dropped, forwarding fields added', async () => {
    const c = await RawClient.connect(port)
    c.write('GET /hello?x=1 HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Tag: head\r\nAccept: text/plain\r\n\r\n')
    const r = await c.read()
    expect(r.status).toBe(200)
    expect(r.version).toBe('HTTP/1.1')
    expect(r.body.toString()).toBe('ok')
    expect(header(r, 'x-request-id')).toMatch(/./)
    const h = seen.get('head') as http2.IncomingHttpHeaders
    expect(h[':authority']).toBe('app.test')
    expect(h[':method']).toBe('GET')
    expect(h[':path']).toBe('/hello?x=1')
    expect(h[':scheme']).toBe('http')
    expect(h.host).toBeUndefined()
    expect(h['x-hop']).toBeUndefined()
    expect(h['keep-alive']).toBeUndefined()
    expect(h.accept).toBe('text/plain')
    expect(h['x-forwarded-for']).toBe('127.0.0.1')
    c.destroy()
  })

  it('keep-alive, and pipelined requests answered in the order they were sent (the first one slower)', async () => {
    const c = await RawClient.connect(port)
    c.write('GET /delay?ms=150 HTTP/1.1\r\nHost: a\r\n\r\nGET /delay?ms=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /chunks HTTP/1.1\r\nHost: a\r\n\r\n')
    const bodies = [(await c.read()).body.toString(), (await c.read()).body.toString()]
    const third = await c.read()
    expect(bodies).toEqual(['/delay150', '/delay1'])
    expect(third.framing).toBe('chunked')
    expect(third.body.toString()).toBe('part 0;part 1;part 2;')
    c.write('GET /x HTTP/1.1\r\nHost: a\r\n\r\n')
    expect((await c.read()).body.toString()).toBe('ok')
    expect(c.closed).toBe(false)
    c.destroy()
  })

  it('10 MiB up and down (with and without content-length), 2 MiB chunked up: byte for byte', async () => {
    const c = await RawClient.connect(port)
    c.write(`POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: ${BIG.length}\r\n\r\n`)
    c.write(BIG)
    const up = await c.read({ timeoutMs: 30_000 })
    expect(up.status).toBe(200)
    expect(up.body.length).toBe(BIG.length)
    expect(sha(up.body)).toBe(sha(BIG))
    // Chunked, in uneven chunks.
    c.write('POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n')
    const part = BIG.subarray(0, 2 * MiB)
    for (let at = 0; at < part.length; ) {
      const n = Math.min(part.length - at, 300_000 + (at % 7919))
      c.write(Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), part.subarray(at, at + n), Buffer.from('\r\n')]))
      at += n
    }
    c.write('0\r\n\r\n')
    const chunkedUp = await c.read({ timeoutMs: 30_000 })
    expect(header(chunkedUp, 'x-sha')).toBe(sha(part))
    c.destroy()
    // Down, read by a client slower than the balancer.
    const withLength = await sendAndReadToEnd(port, 'GET /big?length HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 256 * 1024)
    expect(withLength.head).toMatch(/content-length: 10485760/i)
    expect(sha(withLength.body)).toBe(sha(BIG))
    const chunked = await sendAndReadToEnd(port, 'GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    const r = parseResponses(Buffer.concat([Buffer.from(`${chunked.head}\r\n\r\n`, 'latin1'), chunked.body])).responses[0]
    expect(r?.framing).toBe('chunked')
    expect(sha(r?.body ?? Buffer.alloc(0))).toBe(sha(BIG))
  })

  it('trailers become the chunked trailer section for a client that sent TE: trailers, and are dropped otherwise', async () => {
    const c = await RawClient.connect(port)
    c.write('POST /trailers HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nX-Tag: te\r\nContent-Length: 0\r\n\r\n')
    const r = await c.read()
    expect(r.framing).toBe('chunked')
    expect(r.body.toString()).toBe('payload')
    expect(r.trailers).toEqual([
      ['grpc-status', '0'],
      ['grpc-message', 'fine'],
    ])
    expect(seen.get('te')?.te).toBe('trailers')
    c.write('POST /trailers HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n')
    const plain = await c.read()
    expect(plain.body.toString()).toBe('payload')
    expect(plain.trailers).toEqual([])
    c.destroy()
  })

  it('HEAD, 204 and 304 carry no body; the connection goes on', async () => {
    const c = await RawClient.connect(port)
    c.write('HEAD /big?length HTTP/1.1\r\nHost: a\r\n\r\n')
    const head = await c.read({ head: true })
    expect(head.status).toBe(200)
    expect(header(head, 'content-length')).toBe(String(BIG.length))
    expect(head.body.length).toBe(0)
    for (const code of [204, 304]) {
      c.write(`GET /status?code=${code} HTTP/1.1\r\nHost: a\r\n\r\n`)
      const r = await c.read()
      expect(r.status).toBe(code)
      expect(r.body.length).toBe(0)
      expect(header(r, 'transfer-encoding')).toBeUndefined()
    }
    c.write('GET /x HTTP/1.1\r\nHost: a\r\n\r\n')
    expect((await c.read()).body.toString()).toBe('ok')
    c.destroy()
  })

  it('a reset before the response head is a 502; a body cut short (by END_STREAM, or the connection lost) closes the client connection before its end', async () => {
    const c = await RawClient.connect(port)
    c.write('POST /reset-before HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n')
    expect((await c.read()).status).toBe(502)
    c.write('GET /x HTTP/1.1\r\nHost: a\r\n\r\n')
    expect((await c.read()).body.toString()).toBe('ok')
    c.destroy()
    const short = await rawRequest(port, 'GET /short HTTP/1.1\r\nHost: a\r\n\r\n', { timeoutMs: 5000 })
    expect(short.timedOut).toBe(false)
    expect(short.text).toMatch(/^HTTP\/1\.1 200 [^]*content-length: 1000\r\n/i)
    expect(short.buf.length - short.buf.indexOf('\r\n\r\n') - 4).toBe(100)
    const lost = await rawRequest(port, 'GET /lost-mid HTTP/1.1\r\nHost: a\r\n\r\n', { timeoutMs: 5000 })
    expect(lost.timedOut).toBe(false)
    expect(lost.text).toMatch(/^HTTP\/1\.1 200 [^]*transfer-encoding: chunked\r\n/i)
    expect(lost.text).toContain('b'.repeat(100))
    expect(lost.text.endsWith('0\r\n\r\n')).toBe(false)
  })

  it('a response field HTTP/1.1 cannot carry (CR LF in a value) is a 502, never a split head', async () => {
    const c = await RawClient.connect(port)
    c.write('GET /x HTTP/1.1\r\nHost: evil.test\r\n\r\n')
    const r = await c.read()
    expect(r.status).toBe(502)
    expect(header(r, 'set-cookie')).toBeUndefined()
    expect(header(r, 'x-note')).toBeUndefined()
    c.destroy()
  })

  it('body.MaxResponseBytes: a content-length over it is a 502; a body growing past it resets the client connection', async () => {
    const c = await RawClient.connect(port)
    c.write('GET /sized HTTP/1.1\r\nHost: limit.test\r\n\r\n')
    const declared = await c.read()
    expect(declared.status).toBe(502)
    c.write('GET /chunks HTTP/1.1\r\nHost: limit.test\r\n\r\n')
    expect((await c.read()).body.toString()).toBe('part 0;part 1;part 2;')
    c.destroy()
    const grown = await rawRequest(port, 'GET /grow HTTP/1.1\r\nHost: limit.test\r\n\r\n', { timeoutMs: 5000 })
    expect(grown.timedOut).toBe(false)
    expect(grown.text).toMatch(/^HTTP\/1\.1 200 /)
    expect(grown.text).toContain('a'.repeat(600))
    expect(grown.text).not.toContain('b'.repeat(600))
    expect(grown.text).not.toContain('\r\n0\r\n\r\n')
  })

  it('an Upgrade request cannot be carried on an HTTP/2 stream: 501', async () => {
    const c = await RawClient.connect(port)
    c.write('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
    expect((await c.read()).status).toBe(501)
    c.destroy()
  })

  it('an upstream that refuses the connection: the request, body included, goes to the next one', async () => {
    const c = await RawClient.connect(port)
    c.write('POST /echo HTTP/1.1\r\nHost: retry.test\r\nContent-Length: 5\r\n\r\nagain')
    const r = await c.read()
    expect(r.status).toBe(200)
    expect(r.body.toString()).toBe('again')
    const stats = eng.engine.stats().upstreams
    expect(stats.find((u) => u.port === gonePort)?.failures).toBe(1)
    expect(stats.find((u) => u.port === h2cPort)?.retries).toBe(1)
    c.destroy()
  })

  it('HTTP/2 over TLS (Protocol h2) the same way', async () => {
    const c = await RawClient.connect(port)
    c.write('POST /echo HTTP/1.1\r\nHost: tls.test\r\nX-Tag: tls\r\nContent-Length: 5\r\n\r\nhello')
    const r = await c.read()
    expect(r.body.toString()).toBe('hello')
    expect(seen.get('tls')?.[':scheme']).toBe('https')
    expect(seen.get('tls')?.[':authority']).toBe('tls.test')
    c.destroy()
  })
})
