// Retries on HTTP/2 upstreams go only where the request can safely be sent
// again: a stream the upstream refused unprocessed (REFUSED_STREAM, or above
// a GOAWAY's last stream id) on any method, once more on the same upstream,
// then the next; a reset before the response head on idempotent methods; and
// never a stream whose body was (partly) sent, nor a non-idempotent one the
// upstream may have acted on. Real node:http2 upstreams (h2c) behind the
// balancer, Node's http2 client in front.

import http2 from 'node:http2'
import { createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { within } from '../support/poll.ts'
import { snapshotWith } from '../support/snapshot.ts'
import { T, frame, u32 } from '../support/h2peer.ts'

interface Seen {
  method: string
  path: string
  bodyBytes: number
}

interface Up {
  server: http2.Http2Server
  port: number
  seen: Seen[]
  sessions: Set<http2.ServerHttp2Session>
}

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR } = http2.constants

/**
 * `flaky` misbehaves by path: /refuse refuses the stream, /reset resets the stream
 * (after the first body bytes when the request has a body); `good` answers
 * every request with what it received.
 */
async function upstream(flaky: boolean): Promise<Up> {
  const up: Up = { server: http2.createServer(), port: 0, seen: [], sessions: new Set() }
  up.server.on('session', (s) => {
    up.sessions.add(s)
    s.on('close', () => up.sessions.delete(s))
  })
  up.server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const s: Seen = { method: String(headers[':method']), path: String(headers[':path']), bodyBytes: 0 }
    up.seen.push(s)
    stream.on('error', () => {}) // its own resets surface here
    const reply = (): void => {
      stream.respond({ ':status': 200 })
      stream.end(`good ${s.method} ${s.path} ${s.bodyBytes}`)
    }
    stream.on('data', (d: Buffer) => {
      s.bodyBytes += d.length
      if (flaky && s.path === '/reset' && !stream.destroyed) stream.close(NGHTTP2_INTERNAL_ERROR)
    })
    if (!flaky) {
      stream.on('end', reply)
      return
    }
    if (s.path === '/refuse') return void stream.close(NGHTTP2_REFUSED_STREAM)
    stream.on('end', () => {
      if (!stream.destroyed) stream.close(NGHTTP2_INTERNAL_ERROR)
    })
  })
  await new Promise<void>((resolve) => up.server.listen(0, '127.0.0.1', resolve))
  up.port = (up.server.address() as AddressInfo).port
  return up
}

/** A raw HTTP/2 server that answers every connection's preface with SETTINGS and GOAWAY, last stream id 0: it processes nothing. */
let going: Server
let goingConns = 0
const goingSocks = new Set<Socket>()
let flaky: Up
let good: Up
let eng: StartedEngine
let client: http2.ClientHttp2Session

beforeAll(async () => {
  flaky = await upstream(true)
  good = await upstream(false)
  going = createServer((sock) => {
    goingConns++
    goingSocks.add(sock)
    sock.on('close', () => goingSocks.delete(sock))
    sock.on('error', () => {})
    sock.write(Buffer.concat([frame(T.SETTINGS, 0, 0), frame(T.GOAWAY, 0, 0, Buffer.concat([u32(0), u32(0)]))]))
  })
  await new Promise<void>((resolve) => going.listen(0, '127.0.0.1', resolve))
  const goingPort = (going.address() as AddressInfo).port
  eng = await startEngine(
    snapshotWith(
      [
        {
          h2c: true,
          routes: [
            {
              hosts: ['going.test'],
              upstreams: [
                { host: '127.0.0.1', port: goingPort, protocol: 'h2c', priority: 1 },
                { host: '127.0.0.1', port: good.port, protocol: 'h2c', priority: 2 },
              ],
              passive: { failures: 0 },
              retry: { attempts: 3, budgetPercent: 100 },
            },
            {
              upstreams: [
                { host: '127.0.0.1', port: flaky.port, protocol: 'h2c', priority: 1 },
                { host: '127.0.0.1', port: good.port, protocol: 'h2c', priority: 2 },
              ],
              // Keep the flaky upstream in the pick: every request starts there.
              passive: { failures: 0 },
              retry: { attempts: 3, budgetPercent: 100 },
            },
          ],
        },
      ],
      1,
    ),
  )
  client = http2.connect(`http://127.0.0.1:${eng.port}`)
  client.on('error', () => {})
})

afterAll(async () => {
  client?.close()
  await eng?.stop()
  for (const s of goingSocks) s.destroy()
  going?.close()
  for (const up of [flaky, good]) {
    if (up === undefined) continue
    for (const s of up.sessions) s.destroy()
    await new Promise<void>((resolve) => up.server.close(() => resolve()))
  }
})

function call(method: string, path: string, body?: Buffer, authority?: string): Promise<{ status: number; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      const req = client.request({ ':method': method, ':path': path, ...(authority === undefined ? {} : { ':authority': authority }) }, { endStream: body === undefined })
      let status = 0
      let text = ''
      req.on('response', (h) => (status = Number(h[':status'])))
      req.on('data', (d: Buffer) => (text += d.toString()))
      req.on('end', () => resolve({ status, body: text }))
      req.on('error', reject)
      if (body !== undefined) req.end(body)
    }),
    15_000,
    `${method} ${path}`,
  )
}

const count = (up: Up, method: string, path: string): number => up.seen.filter((s) => s.method === method && s.path === path).length

describe('retries on an HTTP/2 upstream', () => {
  it('a refused stream is tried once more on the same upstream, then on the next, whatever the method', async () => {
    expect(await call('GET', '/refuse')).toEqual({ status: 200, body: 'good GET /refuse 0' })
    expect(count(flaky, 'GET', '/refuse')).toBe(2)
    // Refused means never processed: a POST without a body is as safe to send again.
    expect(await call('POST', '/refuse')).toEqual({ status: 200, body: 'good POST /refuse 0' })
    expect(count(flaky, 'POST', '/refuse')).toBe(2)
  })

  it('a stream above a GOAWAY last stream id was never processed: it goes on to the next upstream', async () => {
    expect(await call('POST', '/goaway', undefined, 'going.test')).toEqual({ status: 200, body: 'good POST /goaway 0' })
    // Once on the first connection, once more on a fresh one, then the next upstream.
    expect(goingConns).toBe(2)
  })

  it('a reset before the response head retries an idempotent request, not a POST', async () => {
    expect(await call('GET', '/reset')).toEqual({ status: 200, body: 'good GET /reset 0' })
    expect(count(good, 'GET', '/reset')).toBe(1)
    const before = count(flaky, 'POST', '/reset')
    expect((await call('POST', '/reset')).status).toBe(502)
    expect(count(flaky, 'POST', '/reset')).toBe(before + 1)
    expect(count(good, 'POST', '/reset')).toBe(0)
  })

  it('never sends again a request whose body went out, idempotent or not', async () => {
    const body = Buffer.alloc(200_000, 'b')
    const flakyBefore = count(flaky, 'PUT', '/reset')
    expect((await call('PUT', '/reset', body)).status).toBe(502)
    expect(count(flaky, 'PUT', '/reset')).toBe(flakyBefore + 1)
    expect(flaky.seen.filter((s) => s.path === '/reset' && s.method === 'PUT').at(-1)?.bodyBytes).toBeGreaterThan(0)
    expect(count(good, 'PUT', '/reset')).toBe(0)
  })
})
