// HTTP/2 upstreams over TLS (Protocol "h2"): a grpc-js service with TLS
// credentials and a node:http2 secure server behind the balancer, verified
// against the CA the engine is given (--upstream-ca), SNI their host name,
// h2 chosen by ALPN; all four gRPC call kinds, trailers, the grpc health
// check over TLS. An upstream that cannot be verified, or that does not
// speak h2 by ALPN, never gets the request.

import * as grpc from '@grpc/grpc-js'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestCa } from '../support/certs.ts'
import { silentLog, startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until, within } from '../support/poll.ts'
import { listenKey, snapshotWith } from '../support/snapshot.ts'

/** Messages are raw bytes: no protobuf needed to exercise the transport. */
const raw = (b: Buffer): Buffer => b
function method(name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> {
  return { path: `/test.Echo/${name}`, requestStream, responseStream, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw }
}
const SERVICE = {
  unary: method('Unary', false, false),
  serverStream: method('ServerStream', false, true),
  clientStream: method('ClientStream', true, false),
  bidi: method('Bidi', true, true),
  fail: method('Fail', false, false),
}
const HEALTH = {
  check: { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
}
/** The serving status the health service answers for the server as a whole (1 SERVING, 2 NOT_SERVING). */
let serving = 1

const GRPC = listenKey('127.0.0.1', 0)

let ca: TestCa
let foreign: TestCa
let grpcServer: grpc.Server
let secure: http2.Http2SecureServer
let untrusted: http2.Http2SecureServer
let noAlpn: TlsServer
let noAlpnBytes = 0
let untrustedStreams = 0
const secureSeen: Array<{ scheme: string; authority: string; sni: string; xff: string }> = []
let eng: StartedEngine
/** Why upstreams were ejected, by key (the engine's log). */
const ejected = new Map<string, string>()
let client: grpc.Client & Record<string, (...args: unknown[]) => unknown>
let h2client: http2.ClientHttp2Session

const listen = (s: { listen(port: number, host: string, cb: () => void): unknown; address(): unknown }): Promise<number> =>
  new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)))

beforeAll(async () => {
  ca = new TestCa()
  foreign = new TestCa()
  const cert = ca.issue(['localhost', '127.0.0.1'])
  const bad = foreign.issue(['localhost'])

  grpcServer = new grpc.Server()
  grpcServer.addService(SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.concat([Buffer.from('tls-echo:'), call.request])),
    serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      for (let i = 0; i < Number(call.request.toString()); i++) call.write(Buffer.from(`item ${i}`))
      call.end()
    },
    clientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const parts: string[] = []
      call.on('data', (b: Buffer) => parts.push(b.toString()))
      call.on('end', () => cb(null, Buffer.from(parts.join('+'))))
    },
    bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (b: Buffer) => call.write(Buffer.from(`re:${b.toString()}`)))
      call.on('end', () => call.end())
    },
    fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb({ code: grpc.status.PERMISSION_DENIED, details: 'not over this' }),
  })
  grpcServer.addService(HEALTH, { check: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from([0x08, serving])) })
  const grpcCreds = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(cert.key), cert_chain: Buffer.from(cert.cert) }])
  const grpcPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpcCreds, (err, port) => (err === null ? resolve(port) : reject(err))))

  secure = http2.createSecureServer({ cert: cert.cert, key: cert.key })
  secure.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    secureSeen.push({
      scheme: String(headers[':scheme']),
      authority: String(headers[':authority']),
      sni: String((stream.session?.socket as TLSSocket | undefined)?.servername),
      xff: String(headers['x-forwarded-for']),
    })
    stream.respond({ ':status': 200 })
    stream.end(`secure ${String(headers[':path'])}`)
  })
  const securePort = await listen(secure)

  untrusted = http2.createSecureServer({ cert: bad.cert, key: bad.key })
  untrusted.on('stream', (stream: http2.ServerHttp2Stream) => {
    untrustedStreams++
    stream.respond({ ':status': 200 })
    stream.end('should not be reached')
  })
  const untrustedPort = await listen(untrusted)

  // Verified, but takes no part in ALPN: the handshake completes with no protocol chosen.
  noAlpn = createTlsServer({ cert: cert.cert, key: cert.key }, (sock) => {
    sock.on('data', (d: Buffer) => (noAlpnBytes += d.length))
    sock.on('error', () => {})
  })
  const noAlpnPort = await listen(noAlpn)

  const h2 = (port: number, host = 'localhost'): { host: string; port: number; protocol: 'h2'; tls: true } => ({ host, port, protocol: 'h2', tls: true })
  eng = await startEngine(
    snapshotWith(
      [
        {
          h2c: true,
          routes: [
            { hosts: ['secure.test'], upstreams: [h2(securePort)] },
            { hosts: ['untrusted.test'], upstreams: [h2(untrustedPort)], retry: { attempts: 1 } },
            { hosts: ['no-alpn.test'], upstreams: [h2(noAlpnPort)], retry: { attempts: 1 } },
            { upstreams: [h2(grpcPort, '127.0.0.1')] },
          ],
        },
        {
          host: '127.0.0.2',
          h2c: true,
          routes: [{ upstreams: [h2(grpcPort, '127.0.0.1')], check: { type: 'grpc', path: '/', probe: 'grpc  /', intervalMs: 100, timeoutMs: 1000, rise: 1, fall: 1 } }],
        },
      ],
      1,
    ),
    {
      upstreamCa: ca.caPem,
      log: {
        ...silentLog,
        warn: (o: object, msg: string) => {
          const e = o as { upstream?: string; reason?: string }
          if (msg === 'upstream ejected') ejected.set(String(e.upstream), String(e.reason))
        },
      },
    },
  )
  const Ctor = grpc.makeGenericClientConstructor(SERVICE, 'Echo')
  client = new Ctor(`127.0.0.1:${eng.portOf(GRPC)}`, grpc.credentials.createInsecure()) as unknown as typeof client
  h2client = http2.connect(`http://127.0.0.1:${eng.portOf(GRPC)}`)
  h2client.on('error', () => {})
})

afterAll(async () => {
  client?.close()
  h2client?.close()
  await eng?.stop()
  grpcServer?.forceShutdown()
  for (const s of [secure, untrusted, noAlpn]) s?.close()
  ca?.remove()
  foreign?.remove()
})

function get(authority: string, path: string): Promise<{ status: number; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      const req = h2client.request({ ':path': path, ':authority': authority }, { endStream: true })
      let status = 0
      let body = ''
      req.on('response', (h) => (status = Number(h[':status'])))
      req.on('data', (d: Buffer) => (body += d.toString()))
      req.on('end', () => resolve({ status, body }))
      req.on('error', reject)
    }),
    15_000,
    `${authority}${path}`,
  )
}

function unary(name: string, body: string): Promise<{ value?: Buffer; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    ;(client[name] as (req: Buffer, cb: (e: grpc.ServiceError | null, v?: Buffer) => void) => void)(Buffer.from(body), (err, value) =>
      resolve(err === null ? { value: value as Buffer } : { error: err }),
    )
  })
}

describe('HTTP/2 upstreams over TLS (Protocol h2)', () => {
  it('a stream goes to the upstream over TLS as :scheme https, SNI its host name, verified against --upstream-ca', async () => {
    expect(await get('secure.test', '/a')).toEqual({ status: 200, body: 'secure /a' })
    expect(await get('secure.test', '/b')).toEqual({ status: 200, body: 'secure /b' })
    expect(secureSeen).toEqual([
      { scheme: 'https', authority: 'secure.test', sni: 'localhost', xff: '127.0.0.1' },
      { scheme: 'https', authority: 'secure.test', sni: 'localhost', xff: '127.0.0.1' },
    ])
  })

  it('gRPC: unary, server streaming, client streaming and bidirectional calls, statuses in trailers', async () => {
    expect((await unary('unary', 'hi')).value?.toString()).toBe('tls-echo:hi')
    const items: string[] = []
    await new Promise<void>((resolve, reject) => {
      const call = (client.serverStream as (req: Buffer) => grpc.ClientReadableStream<Buffer>)(Buffer.from('20'))
      call.on('data', (b: Buffer) => items.push(b.toString()))
      call.on('error', reject)
      call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))))
    })
    expect(items).toEqual(Array.from({ length: 20 }, (_, i) => `item ${i}`))
    const joined = await new Promise<Buffer>((resolve, reject) => {
      const call = (client.clientStream as (cb: (e: grpc.ServiceError | null, v?: Buffer) => void) => grpc.ClientWritableStream<Buffer>)((err, v) =>
        err === null ? resolve(v as Buffer) : reject(err),
      )
      for (let i = 0; i < 10; i++) call.write(Buffer.from(String(i)))
      call.end()
    })
    expect(joined.toString()).toBe('0+1+2+3+4+5+6+7+8+9')
    const call = (client.bidi as () => grpc.ClientDuplexStream<Buffer, Buffer>)()
    const got: string[] = []
    const done = new Promise<void>((resolve, reject) => {
      call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))))
      call.on('error', reject)
    })
    for (let i = 0; i < 3; i++) {
      call.write(Buffer.from(`m${i}`))
      await new Promise<void>((resolve) => call.once('data', (b: Buffer) => (got.push(b.toString()), resolve())))
    }
    call.end()
    await done
    expect(got).toEqual(['re:m0', 're:m1', 're:m2'])
    const failed = await unary('fail', 'x')
    expect(failed.error?.code).toBe(grpc.status.PERMISSION_DENIED)
    expect(failed.error?.details).toBe('not over this')
  })

  it('an upstream whose certificate the CAs do not vouch for never gets the stream', async () => {
    const r = await get('untrusted.test', '/x')
    expect([502, 503]).toContain(r.status)
    expect(r.body).not.toContain('should not be reached')
    expect(untrustedStreams).toBe(0)
    expect(ejected.get(`https://localhost:${(untrusted.address() as AddressInfo).port}`)).toMatch(/CERT|SIGNATURE|ISSUER/)
  })

  it('an upstream that does not choose h2 by ALPN is not spoken to', async () => {
    const r = await get('no-alpn.test', '/x')
    expect([502, 503]).toContain(r.status)
    expect(noAlpnBytes).toBe(0)
    expect(ejected.get(`https://localhost:${(noAlpn.address() as AddressInfo).port}`)).toBe('no h2 by ALPN')
  })

  it('the grpc health check runs over TLS: healthy on SERVING, out on NOT_SERVING, back on SERVING', async () => {
    const state = (): string | undefined => eng.engine.stats().upstreams.find((u) => u.key.startsWith('https://127.0.0.1:'))?.state
    await until(() => state() === 'healthy', 5000, 'healthy by the TLS grpc check')
    serving = 2
    await until(() => state() === 'unhealthy', 5000, 'unhealthy on NOT_SERVING')
    serving = 1
    await until(() => state() === 'healthy', 5000, 'healthy again')
  })
})
