// gRPC through the balancer: @grpc/grpc-js clients on an h2c listener, a
// real grpc-js service behind it as an HTTP/2 upstream (Protocol h2c). All
// four call kinds, status and message in trailers, deadlines, cancellation
// reaching the service; and a Node http2 upstream with a small
// MAX_CONCURRENT_STREAMS that makes the balancer open more connections.

import * as grpc from '@grpc/grpc-js'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotWith } from '../support/snapshot.ts'

/** Messages are raw bytes: no protobuf needed to exercise the transport. */
const raw = { serialize: (b: Buffer): Buffer => b, deserialize: (b: Buffer): Buffer => b }
function method(name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path: `/test.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  }
}
const SERVICE = {
  unary: method('Unary', false, false),
  serverStream: method('ServerStream', false, true),
  clientStream: method('ClientStream', true, false),
  bidi: method('Bidi', true, true),
  slow: method('Slow', false, false),
  fail: method('Fail', false, false),
}

/** grpc.health.v1: serving status by service name ('' = the server), as the service answers it. */
const health = new Map<string, number>([
  ['', 1],
  ['test.Echo', 1],
])
const HEALTH = {
  check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  },
}
let server: grpc.Server
let grpcPort = 0
let eng: StartedEngine
let client: grpc.Client & Record<string, (...args: unknown[]) => unknown>
const cancelled: string[] = []
/** Requests the slow method has received. */
const started: string[] = []
let h2up: http2.Http2Server
const h2upSessions = new Set<http2.ServerHttp2Session>()
let maxConcurrent = 0
let concurrent = 0

beforeAll(async () => {
  server = new grpc.Server()
  server.addService(SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const md = new grpc.Metadata()
      md.set('x-seen-xff', String(call.metadata.get('x-forwarded-for')[0] ?? ''))
      call.sendMetadata(md)
      cb(null, Buffer.concat([Buffer.from('echo:'), call.request]))
    },
    serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString())
      for (let i = 0; i < n; i++) call.write(Buffer.from(`item ${i}`))
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
    slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      started.push(call.request.toString())
      const t = setTimeout(() => cb(null, Buffer.from('late')), 5000)
      call.on('cancelled', () => {
        clearTimeout(t)
        cancelled.push(call.request.toString())
      })
    },
    fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' })
    },
  })
  server.addService(HEALTH, {
    check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      // HealthCheckRequest { string service = 1 }: 0x0a, length, name.
      const req = call.request
      const name = req.length === 0 ? '' : req.subarray(2, 2 + (req[1] as number)).toString()
      const st = health.get(name)
      if (st === undefined) return cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' })
      cb(null, Buffer.from([0x08, st]))
    },
  })
  grpcPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err === null ? resolve(port) : reject(err))))

  // A plain HTTP/2 upstream that allows 2 concurrent streams per connection.
  h2up = http2.createServer({ settings: { maxConcurrentStreams: 2 } })
  h2up.on('session', (s) => {
    h2upSessions.add(s)
    s.on('close', () => h2upSessions.delete(s))
  })
  h2up.on('stream', (stream: http2.ServerHttp2Stream) => {
    concurrent++
    maxConcurrent = Math.max(maxConcurrent, concurrent)
    setTimeout(() => {
      concurrent--
      stream.respond({ ':status': 200, 'content-type': 'text/plain' })
      stream.end('h2 upstream')
    }, 150)
  })
  await new Promise<void>((resolve) => h2up.listen(0, '127.0.0.1', () => resolve()))
  const h2upPort = (h2up.address() as AddressInfo).port

  eng = await startEngine(
    snapshotWith(
      [
        {
          h2c: true,
          routes: [{ hosts: ['limited.test'], upstreams: [{ host: '127.0.0.1', port: h2upPort, protocol: 'h2c' }] }, { upstreams: [{ host: '127.0.0.1', port: grpcPort, protocol: 'h2c' }] }],
        },
        {
          host: '127.0.0.2',
          h2c: true,
          routes: [
            {
              upstreams: [{ host: '127.0.0.1', port: grpcPort, protocol: 'h2c' }],
              check: { type: 'grpc', path: '/test.Echo', probe: 'grpc  /test.Echo', intervalMs: 100, timeoutMs: 1000, rise: 1, fall: 1 },
            },
          ],
        },
      ],
      1,
    ),
  )
  const Ctor = grpc.makeGenericClientConstructor(SERVICE, 'Echo')
  client = new Ctor(`127.0.0.1:${eng.port}`, grpc.credentials.createInsecure()) as unknown as typeof client
})

afterAll(async () => {
  client?.close()
  await eng?.stop()
  server?.forceShutdown()
  for (const s of h2upSessions) s.destroy()
  await new Promise<void>((resolve) => (h2up === undefined ? resolve() : h2up.close(() => resolve())))
})

function unary(name: string, body: string, opts: grpc.CallOptions = {}): Promise<{ value?: Buffer; error?: grpc.ServiceError; md?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let md: grpc.Metadata | undefined
    const call = (client[name] as (req: Buffer, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: Buffer) => void) => grpc.ClientUnaryCall)(
      Buffer.from(body),
      new grpc.Metadata(),
      opts,
      (err, value) => resolve(err === null ? { value: value as Buffer, ...(md === undefined ? {} : { md }) } : { error: err }),
    )
    call.on('metadata', (m: grpc.Metadata) => (md = m))
  })
}

describe('gRPC through the balancer (grpc-js client and service)', () => {
  it('unary: the reply, response metadata from the service, forwarding fields added on the way', async () => {
    const r = await unary('unary', 'hi')
    expect(r.error).toBeUndefined()
    expect(r.value?.toString()).toBe('echo:hi')
    expect(r.md?.get('x-seen-xff')[0]).toBe('127.0.0.1')
  })

  it('server streaming: every message, then the status', async () => {
    const got: string[] = []
    await new Promise<void>((resolve, reject) => {
      const call = (client.serverStream as (req: Buffer) => grpc.ClientReadableStream<Buffer>)(Buffer.from('50'))
      call.on('data', (b: Buffer) => got.push(b.toString()))
      call.on('error', reject)
      call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))))
    })
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `item ${i}`))
  })

  it('client streaming: many messages in, one reply out', async () => {
    const r = await new Promise<Buffer>((resolve, reject) => {
      const call = (client.clientStream as (cb: (e: grpc.ServiceError | null, v?: Buffer) => void) => grpc.ClientWritableStream<Buffer>)((err, v) =>
        err === null ? resolve(v as Buffer) : reject(err),
      )
      for (let i = 0; i < 20; i++) call.write(Buffer.from(String(i)))
      call.end()
    })
    expect(r.toString()).toBe(Array.from({ length: 20 }, (_, i) => String(i)).join('+'))
  })

  it('bidirectional streaming: replies interleave with requests', async () => {
    const call = (client.bidi as () => grpc.ClientDuplexStream<Buffer, Buffer>)()
    const got: string[] = []
    const done = new Promise<void>((resolve, reject) => {
      call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))))
      call.on('error', reject)
    })
    for (let i = 0; i < 5; i++) {
      call.write(Buffer.from(`m${i}`))
      await new Promise<void>((resolve) => call.once('data', (b: Buffer) => (got.push(b.toString()), resolve())))
    }
    call.end()
    await done
    expect(got).toEqual(['re:m0', 're:m1', 're:m2', 're:m3', 're:m4'])
  })

  it('a status other than OK arrives with its message (grpc-status, grpc-message in trailers)', async () => {
    const r = await unary('fail', 'x')
    expect(r.error?.code).toBe(grpc.status.NOT_FOUND)
    expect(r.error?.details).toBe('no such thing')
  })

  it('a deadline ends the call with DEADLINE_EXCEEDED, and the service sees it cancelled', async () => {
    const r = await unary('slow', 'deadline-1', { deadline: Date.now() + 300 })
    expect(r.error?.code).toBe(grpc.status.DEADLINE_EXCEEDED)
    await until(() => cancelled.includes('deadline-1'), 5000, 'cancellation at the service')
  })

  it('a client cancelling a call cancels it at the service (RST_STREAM both ways)', async () => {
    const call = (client.slow as (req: Buffer, cb: (e: grpc.ServiceError | null) => void) => grpc.ClientUnaryCall)(Buffer.from('cancel-1'), () => {})
    await until(() => started.includes('cancel-1'), 5000, 'the call to reach the service')
    call.cancel()
    await until(() => cancelled.includes('cancel-1'), 5000, 'cancellation at the service')
  })

  it('many concurrent calls share few upstream connections', async () => {
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => unary('unary', `c${i}`)))
    rs.forEach((r, i) => expect(r.value?.toString()).toBe(`echo:c${i}`))
  })
})

describe('health.Type grpc (grpc.health.v1 Check)', () => {
  it('admits the upstream while its service answers SERVING, takes it out on NOT_SERVING, back on SERVING', async () => {
    const Ctor = grpc.makeGenericClientConstructor(SERVICE, 'Echo')
    const checked = new Ctor(`127.0.0.2:${eng.portOf('127.0.0.2:0')}`, grpc.credentials.createInsecure()) as unknown as typeof client
    const call = (): Promise<number> =>
      new Promise((resolve) => (checked.unary as (req: Buffer, cb: (e: grpc.ServiceError | null) => void) => void)(Buffer.from('x'), (e) => resolve(e === null ? 0 : e.code)))
    try {
      await until(async () => (await call()) === grpc.status.OK, 5000, 'first SERVING check')
      health.set('test.Echo', 2)
      await until(async () => (await call()) === grpc.status.UNAVAILABLE, 5000, 'NOT_SERVING takes it out (503)')
      const st = eng.engine.stats().upstreams.find((u) => u.port === grpcPort)
      expect(st?.checks.some((c) => c.lastResult === 'NOT_SERVING')).toBe(true)
      health.set('test.Echo', 1)
      await until(async () => (await call()) === grpc.status.OK, 5000, 'SERVING again')
    } finally {
      health.set('test.Echo', 1)
      checked.close()
    }
  })
})

describe('HTTP/2 upstream connections', () => {
  it("open another connection when the upstream's MAX_CONCURRENT_STREAMS is reached, never exceeding it", async () => {
    const c = http2.connect(`http://127.0.0.1:${eng.port}`)
    c.on('error', () => {})
    try {
      const bodies = await Promise.all(
        Array.from(
          { length: 6 },
          () =>
            new Promise<string>((resolve, reject) => {
              const req = c.request({ ':path': '/', ':authority': 'limited.test' }, { endStream: true })
              let b = ''
              req.on('data', (d) => (b += d))
              req.on('end', () => resolve(b))
              req.on('error', reject)
            }),
        ),
      )
      expect(bodies).toEqual(Array.from({ length: 6 }, () => 'h2 upstream'))
      expect(maxConcurrent).toBeGreaterThan(2)
      // Each upstream connection carried at most 2 streams at once: 6 at a time needed 3 connections.
      expect(h2upSessions.size).toBeGreaterThanOrEqual(3)
    } finally {
      c.close()
    }
  })
})
