// compress end to end: a real upstream, the balancer, and clients that
// decode what they get with node:zlib (HTTP/1.1, HTTP/1.0 and HTTP/2).

import { randomBytes } from 'node:crypto'
import http2 from 'node:http2'
import type { IncomingHttpHeaders } from 'node:http2'
import { connect } from 'node:net'
import { brotliDecompressSync, gunzipSync, gzipSync, zstdDecompressSync } from 'node:zlib'
import type { ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { httpGet, httpRequest, rawRequest } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotWith } from '../support/snapshot.ts'
import type { RouteSpec } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { rulesOf } from './compile-rules.ts'

const TEXT = Buffer.from('<p>hello, compressed world</p>\n'.repeat(200)) // 6200 bytes
const BIG = 24 * 1024 * 1024

function decode(enc: string | undefined, body: Buffer): Buffer {
  if (enc === 'gzip') return gunzipSync(body)
  if (enc === 'br') return brotliDecompressSync(body)
  if (enc === 'zstd') return zstdDecompressSync(body)
  return body
}

/** Hex text: it compresses to about half, so a client that stops reading fills its buffers. */
const BODY = Buffer.from(randomBytes(BIG / 2).toString('hex'))
/** For the clients that stop reading: larger than what loopback sockets may buffer on the way (tcp_rmem allows 32 MiB). */
const SLOW = 64 * 1024 * 1024
const SLOW_BODY = Buffer.from(randomBytes(SLOW / 2).toString('hex'))

interface Stats {
  sent: number
  /** Waiting for 'drain' since (ms), 0 when not waiting. */
  blockedSince: number
  done: boolean
}

/** Writes `body` in 64 KiB writes, honouring backpressure; `stats` counts what went out. */
function stream(res: ServerResponse, stats: Stats, body = BODY): void {
  const next = (): void => {
    while (stats.sent < body.length) {
      const piece = body.subarray(stats.sent, stats.sent + 65536)
      stats.sent += piece.length
      if (!res.write(piece)) {
        stats.blockedSince = Date.now()
        res.once('drain', () => {
          stats.blockedSince = 0
          next()
        })
        return
      }
    }
    stats.done = true
    res.end()
  }
  next()
}

let up: HttpUpstream
let edge: StartedEngine
const bigStats: Stats = { sent: 0, blockedSince: 0, done: false }
const slowStats: Stats = { sent: 0, blockedSince: 0, done: false }
const slowH2Stats: Stats = { sent: 0, blockedSince: 0, done: false }

/** The upstream stays blocked on 'drain' with its count not moving for a second: the balancer holds it back. */
function heldBack(stats: Stats, what: string): Promise<void> {
  let last = -1
  let since = Date.now()
  return until(
    () => {
      if (stats.done) throw new Error(`${what}: the upstream wrote all ${SLOW} bytes to a client that does not read`)
      if (stats.blockedSince === 0 || stats.sent !== last) {
        last = stats.sent
        since = Date.now()
        return false
      }
      return Date.now() - since > 1000
    },
    30_000,
    `${what}: the upstream to be held back`,
  )
}

beforeAll(async () => {
  up = await httpUpstream((req, res) => {
    const path = (req.url ?? '').replace(/^\/[a-z]+(?=\/)/, '')
    switch (path) {
      case '/text':
        res.setHeader('content-type', 'text/html; charset=utf-8')
        res.setHeader('etag', '"v1"')
        res.end(TEXT)
        return
      case '/chunked':
        res.setHeader('content-type', 'application/json')
        res.write(TEXT.subarray(0, 3000))
        setImmediate(() => res.end(TEXT.subarray(3000)))
        return
      case '/small':
        res.setHeader('content-type', 'text/plain')
        res.end('tiny')
        return
      case '/png':
        res.setHeader('content-type', 'image/png')
        res.end(TEXT)
        return
      case '/encoded':
        res.setHeader('content-type', 'text/plain')
        res.setHeader('content-encoding', 'gzip')
        res.end(gzipSync(TEXT))
        return
      case '/notransform':
        res.setHeader('content-type', 'text/plain')
        res.setHeader('cache-control', 'public, no-transform')
        res.end(TEXT)
        return
      case '/vary':
        res.setHeader('content-type', 'text/plain')
        res.setHeader('vary', 'Origin')
        res.setHeader('etag', 'W/"weak"')
        res.end(TEXT)
        return
      case '/range':
        res.statusCode = 206
        res.setHeader('content-type', 'text/plain')
        res.setHeader('content-range', `bytes 0-1999/${TEXT.length}`)
        res.end(TEXT.subarray(0, 2000))
        return
      case '/sse':
        res.setHeader('content-type', 'text/event-stream')
        res.end('data: one\n\n'.repeat(200))
        return
      case '/nocontent':
        res.statusCode = 204
        res.setHeader('content-type', 'text/plain')
        res.end()
        return
      case '/big':
        res.setHeader('content-type', 'text/plain')
        stream(res, bigStats)
        return
      case '/slow':
        res.setHeader('content-type', 'text/plain')
        stream(res, slowStats, SLOW_BODY)
        return
      case '/slowh2':
        res.setHeader('content-type', 'text/plain')
        stream(res, slowH2Stats, SLOW_BODY)
        return
      default:
        res.statusCode = 404
        res.end()
    }
  })
  const u = [{ host: '127.0.0.1', port: up.port }]
  const route = (prefix: string, groups: Record<string, unknown>): RouteSpec => ({ hosts: [], pathPrefix: prefix, upstreams: u, rules: rulesOf(groups, prefix) })
  edge = await startEngine(
    snapshotWith(
      [
        {
          h2c: true,
          routes: [
            route('/gz/', { compress: { Encodings: ['gzip', 'br'], Types: ['text/*'], MinBytes: 0 } }),
            route('/edit/', { compress: {}, headers: { Response: { Set: { 'x-edge': 'yes' }, Remove: ['etag'] } } }),
            route('/plain/', {}),
            route('/', { compress: {} }),
          ],
        },
      ],
      1,
    ),
  )
})
afterAll(async () => {
  await edge?.stop()
  await up?.close()
})

describe('compress: the coding', () => {
  it('is the one Accept-Encoding ranks highest, the route order breaking ties; the body decodes to what the upstream sent', async () => {
    const cases: Array<[string, string | undefined]> = [
      ['gzip', 'gzip'],
      ['br', 'br'],
      ['zstd', 'zstd'],
      ['gzip, deflate, br, zstd', 'zstd'], // default order: zstd, br, gzip
      ['gzip;q=1.0, br;q=0.9', 'gzip'],
      ['br;q=0.5, gzip;q=0.8, zstd;q=0.1', 'gzip'],
      ['*', 'zstd'],
      ['*;q=0.5, zstd;q=0', 'br'],
      ['identity', undefined],
      ['gzip;q=0, deflate', undefined],
      ['', undefined],
    ]
    for (const [ae, want] of cases) {
      const r = await httpGet(edge.port, '/text', ae === '' ? {} : { 'accept-encoding': ae })
      expect(r.status, ae).toBe(200)
      expect(r.headers['content-encoding'], ae).toBe(want)
      expect(r.headers.vary, ae).toBe('accept-encoding')
      expect(decode(want, r.body).equals(TEXT), ae).toBe(true)
      if (want !== undefined) {
        expect(r.headers['content-length'], ae).toBeUndefined()
        expect(r.headers['transfer-encoding'], ae).toBe('chunked')
        expect(r.headers.etag, ae).toBe('W/"v1"')
        expect(r.body.length, ae).toBeLessThan(TEXT.length / 4)
      } else {
        expect(r.headers['content-length'], ae).toBe(String(TEXT.length))
        expect(r.headers.etag, ae).toBe('"v1"')
      }
    }
  })

  it("follows the route's Encodings order and Types; gzip and br only there", async () => {
    const r = await httpGet(edge.port, '/gz/text', { 'accept-encoding': 'zstd, br, gzip' })
    expect(r.headers['content-encoding']).toBe('gzip')
    expect(gunzipSync(r.body).equals(TEXT)).toBe(true)
    expect((await httpGet(edge.port, '/gz/text', { 'accept-encoding': 'zstd' })).headers['content-encoding']).toBeUndefined()
    // text/* takes text/plain of any size (MinBytes 0); application/json is not in its Types.
    const small = await httpGet(edge.port, '/gz/small', { 'accept-encoding': 'gzip' })
    expect(small.headers['content-encoding']).toBe('gzip')
    expect(gunzipSync(small.body).toString()).toBe('tiny')
    expect((await httpGet(edge.port, '/gz/chunked', { 'accept-encoding': 'gzip' })).headers['content-encoding']).toBeUndefined()
  })

  it('compresses a chunked body, and keeps the route header edits', async () => {
    const r = await httpGet(edge.port, '/chunked', { 'accept-encoding': 'br' })
    expect(r.headers['content-encoding']).toBe('br')
    expect(brotliDecompressSync(r.body).equals(TEXT)).toBe(true)
    const e = await httpGet(edge.port, '/edit/text', { 'accept-encoding': 'gzip' })
    expect(e.headers['content-encoding']).toBe('gzip')
    expect(e.headers['x-edge']).toBe('yes')
    expect(e.headers.etag).toBeUndefined()
    expect(gunzipSync(e.body).equals(TEXT)).toBe(true)
  })

  it('adds to an existing Vary and keeps a weak ETag as it is', async () => {
    const r = await httpGet(edge.port, '/vary', { 'accept-encoding': 'gzip' })
    expect(r.headers['content-encoding']).toBe('gzip')
    expect(r.headers.vary).toBe('Origin, accept-encoding')
    expect(r.headers.etag).toBe('W/"weak"')
  })
})

describe('compress: what is sent as it is', () => {
  it('small bodies, types not listed, encoded bodies, no-transform, 206, 204, server-sent events, routes without the group', async () => {
    const ae = { 'accept-encoding': 'gzip, br, zstd' }
    const small = await httpGet(edge.port, '/small', ae)
    expect(small.headers['content-encoding']).toBeUndefined()
    expect(small.text).toBe('tiny')
    expect(small.headers.vary).toBeUndefined()
    const png = await httpGet(edge.port, '/png', ae)
    expect(png.headers['content-encoding']).toBeUndefined()
    expect(png.body.equals(TEXT)).toBe(true)
    const enc = await httpGet(edge.port, '/encoded', ae)
    expect(enc.headers['content-encoding']).toBe('gzip')
    expect(gunzipSync(enc.body).equals(TEXT)).toBe(true)
    const nt = await httpGet(edge.port, '/notransform', ae)
    expect(nt.headers['content-encoding']).toBeUndefined()
    expect(nt.headers['content-length']).toBe(String(TEXT.length))
    const range = await httpGet(edge.port, '/range', { ...ae, range: 'bytes=0-1999' })
    expect(range.status).toBe(206)
    expect(range.headers['content-encoding']).toBeUndefined()
    expect(range.body.equals(TEXT.subarray(0, 2000))).toBe(true)
    const none = await httpGet(edge.port, '/nocontent', ae)
    expect(none.status).toBe(204)
    expect(none.headers['content-encoding']).toBeUndefined()
    const sse = await httpGet(edge.port, '/sse', ae)
    expect(sse.headers['content-encoding']).toBeUndefined()
    const plain = await httpGet(edge.port, '/plain/text', ae)
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.headers.vary).toBeUndefined()
  })

  it('HEAD gets the head a GET would, uncompressed, with Vary', async () => {
    const r = await httpRequest(edge.port, '/text', { 'accept-encoding': 'gzip' }, { method: 'HEAD' })
    expect(r.status).toBe(200)
    expect(r.headers['content-encoding']).toBeUndefined()
    expect(r.headers.vary).toBe('accept-encoding')
    expect(r.body.length).toBe(0)
  })
})

describe('compress: framing and streaming', () => {
  it('keeps the connection: several compressed responses on one keep-alive connection, then a plain one', async () => {
    const res = await new Promise<Buffer>((resolve, reject) => {
      const sock = connect(edge.port, '127.0.0.1')
      const chunks: Buffer[] = []
      sock.on('data', (d: Buffer) => chunks.push(d))
      sock.on('error', reject)
      sock.on('close', () => resolve(Buffer.concat(chunks)))
      const req = (p: string, extra = ''): string => `GET ${p} HTTP/1.1\r\nhost: x\r\naccept-encoding: gzip\r\n${extra}\r\n`
      sock.write(req('/text') + req('/chunked') + req('/small') + req('/text', 'connection: close\r\n'))
    })
    const text = res.toString('latin1')
    expect(text.match(/HTTP\/1\.1 200/g)?.length).toBe(4)
    expect(text.match(/content-encoding: gzip/gi)?.length).toBe(3)
  })

  it('HTTP/1.0 client: the compressed body is delimited by the close', async () => {
    const r = await rawRequest(edge.port, 'GET /text HTTP/1.0\r\naccept-encoding: gzip\r\n\r\n', { timeoutMs: 5000 })
    expect(r.closed).toBe(true)
    const at = r.buf.indexOf('\r\n\r\n')
    const head = r.buf.subarray(0, at).toString('latin1').toLowerCase()
    expect(head).toContain('content-encoding: gzip')
    expect(head).not.toContain('transfer-encoding')
    expect(head).not.toContain('content-length')
    expect(gunzipSync(r.buf.subarray(at + 4)).equals(TEXT)).toBe(true)
  })

  it(`streams a large response (${BIG >> 20} MiB) through the coder intact`, async () => {
    const r = await httpGet(edge.port, '/big', { 'accept-encoding': 'zstd' }, { timeoutMs: 60_000 })
    expect(r.headers['content-encoding']).toBe('zstd')
    const body = zstdDecompressSync(r.body)
    expect(body.length).toBe(BIG)
    expect(body.equals(BODY)).toBe(true)
  }, 90_000)

  it('a client that stops reading stops the upstream: what the balancer holds stays bounded, and the body arrives whole once it reads', async () => {
    const chunks: Buffer[] = []
    const sock = connect(edge.port, '127.0.0.1')
    const ended = new Promise<void>((resolve, reject) => {
      sock.on('error', reject)
      sock.on('end', () => resolve())
    })
    sock.on('data', (d: Buffer) => chunks.push(d))
    sock.write('GET /slow HTTP/1.1\r\nhost: x\r\naccept-encoding: gzip\r\nconnection: close\r\n\r\n')
    await until(() => chunks.length > 0, 10_000, 'the first bytes')
    sock.pause()
    // The upstream is held back by the balancer (its writes wait for drain) for a while, far from the end of the body.
    await heldBack(slowStats, 'HTTP/1.1')
    expect(slowStats.sent).toBeLessThan(SLOW)
    sock.resume()
    await ended
    const raw = Buffer.concat(chunks)
    const at = raw.indexOf('\r\n\r\n')
    expect(raw.subarray(0, at).toString('latin1')).toContain('content-encoding: gzip')
    const body = gunzipSync(dechunk(raw.subarray(at + 4)))
    expect(body.equals(SLOW_BODY)).toBe(true)
  }, 90_000)
})

/** The payload of a chunked body (no trailers). */
function dechunk(b: Buffer): Buffer {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = b.indexOf('\r\n', at)
    const size = Number.parseInt(b.subarray(at, eol).toString('latin1'), 16)
    if (size === 0) break
    parts.push(b.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  return Buffer.concat(parts)
}

describe('compress: HTTP/2 clients', () => {
  function h2get(path: string, ae: string): Promise<{ headers: IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const client = http2.connect(`http://127.0.0.1:${edge.port}`)
      client.on('error', reject)
      const req = client.request({ ':path': path, 'accept-encoding': ae })
      let headers: IncomingHttpHeaders = {}
      const chunks: Buffer[] = []
      req.on('response', (h) => {
        headers = h
      })
      req.on('data', (d: Buffer) => chunks.push(d))
      req.on('error', reject)
      req.on('end', () => {
        client.close()
        resolve({ headers, body: Buffer.concat(chunks) })
      })
    })
  }

  it('get the same codings, bodies decoded intact, no content-length', async () => {
    for (const enc of ['gzip', 'br', 'zstd']) {
      const r = await h2get('/text', enc)
      expect(r.headers[':status']).toBe(200)
      expect(r.headers['content-encoding']).toBe(enc)
      expect(r.headers.vary).toBe('accept-encoding')
      expect(r.headers['content-length']).toBeUndefined()
      expect(decode(enc, r.body).equals(TEXT)).toBe(true)
    }
    const chunked = await h2get('/chunked', 'gzip')
    expect(gunzipSync(chunked.body).equals(TEXT)).toBe(true)
    const plain = await h2get('/text', 'identity')
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.body.equals(TEXT)).toBe(true)
  })

  it('a stream the client stops reading (no window) stops the upstream, and completes once it reads', async () => {
    const client = http2.connect(`http://127.0.0.1:${edge.port}`)
    try {
      const req = client.request({ ':path': '/slowh2', 'accept-encoding': 'gzip' })
      const chunks: Buffer[] = []
      let headers: IncomingHttpHeaders = {}
      req.on('response', (h) => {
        headers = h
      })
      const ended = new Promise<void>((resolve, reject) => {
        req.on('end', () => resolve())
        req.on('error', reject)
      })
      req.on('data', (d: Buffer) => chunks.push(d))
      await until(() => chunks.length > 0, 10_000, 'the first DATA')
      req.pause()
      await heldBack(slowH2Stats, 'HTTP/2')
      expect(slowH2Stats.sent).toBeLessThan(SLOW)
      req.resume()
      await ended
      expect(headers['content-encoding']).toBe('gzip')
      expect(gunzipSync(Buffer.concat(chunks)).equals(SLOW_BODY)).toBe(true)
    } finally {
      client.close()
    }
  }, 90_000)

  it('streams a large response intact', async () => {
    bigStats.sent = 0
    bigStats.done = false
    const r = await h2get('/big', 'br')
    expect(r.headers['content-encoding']).toBe('br')
    expect(brotliDecompressSync(r.body).equals(BODY)).toBe(true)
  }, 90_000)
})
