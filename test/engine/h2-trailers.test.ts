// Trailers between HTTP/2 clients and HTTP/1.1 upstreams, where HTTP/1.1
// can carry them (chunked): a client's trailers become the request's
// chunked trailer section; a chunked response's trailer section becomes
// the stream's trailers (HEADERS with END_STREAM), after all its DATA, also
// when the section arrives over several reads and when the client's window
// holds the DATA back. Node's http2 client, node:http and a raw upstream.

import http2 from 'node:http2'
import type { IncomingHttpHeaders } from 'node:http2'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { within } from '../support/poll.ts'
import { snapshotWith } from '../support/snapshot.ts'
import { httpUpstream, rawUpstream } from '../support/upstream.ts'
import type { HttpUpstream, RawUpstream } from '../support/upstream.ts'

let up: HttpUpstream
let split: RawUpstream
let eng: StartedEngine
let client: http2.ClientHttp2Session

beforeAll(async () => {
  up = await httpUpstream(
    (req: IncomingMessage, res: ServerResponse) => {
      const parts: Buffer[] = []
      req.on('data', (d: Buffer) => parts.push(d))
      req.on('end', () => {
        if (req.url === '/echo-trailers') {
          res.end(JSON.stringify({ te: req.headers['transfer-encoding'] ?? null, body: Buffer.concat(parts).toString(), trailers: req.trailers }))
          return
        }
        if (req.url === '/no-trailers') {
          res.write('a')
          res.end('b') // chunked: the length was not known when the first piece went
          return
        }
        const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size') ?? '10')
        res.setHeader('Trailer', 'x-checksum')
        // Written in pieces without a length: chunked, then the trailer section.
        for (let off = 0; off < size; off += 1000) res.write(Buffer.alloc(Math.min(1000, size - off), 'd'))
        res.addTrailers({ 'X-Checksum': `sum-${size}`, 'x-other': ' v ', connection: 'close' })
        res.end()
      })
    },
    { streaming: true },
  )
  split = await rawUpstream((sock, _d, conn) => {
    if (!conn.data.includes('\r\n\r\n') || conn.pending === 'sent') return
    conn.pending = 'sent'
    // The trailer section over three writes (three reads on the balancer's side, as loopback usually delivers them).
    sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-a')
    setTimeout(() => sock.write('b: 1\r\nx-c: 2\r'), 20)
    setTimeout(() => sock.write('\n\r\n'), 40)
  })
  eng = await startEngine(
    snapshotWith(
      [
        {
          h2c: true,
          routes: [{ hosts: ['split.test'], upstreams: [{ host: '127.0.0.1', port: split.port }] }, { upstreams: [{ host: '127.0.0.1', port: up.port }] }],
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
  await up?.close()
  await split?.close()
})

interface Reply {
  status: number
  body: Buffer
  trailers: IncomingHttpHeaders | null
  /** Body bytes received before the trailers came. */
  bodyBeforeTrailers: number
}

function request(headers: http2.OutgoingHttpHeaders, body?: Buffer, trailers?: http2.OutgoingHttpHeaders): Promise<Reply> {
  return within(
    new Promise((resolve, reject) => {
      const req = client.request(headers, { endStream: body === undefined, waitForTrailers: trailers !== undefined })
      if (trailers !== undefined) req.on('wantTrailers', () => req.sendTrailers(trailers))
      const chunks: Buffer[] = []
      let status = 0
      let got: IncomingHttpHeaders | null = null
      let before = 0
      req.on('response', (h) => (status = Number(h[':status'])))
      req.on('data', (d: Buffer) => chunks.push(d))
      req.on('trailers', (h) => {
        got = h
        before = chunks.reduce((n, c) => n + c.length, 0)
      })
      req.on('end', () => resolve({ status, body: Buffer.concat(chunks), trailers: got, bodyBeforeTrailers: before }))
      req.on('error', reject)
      if (body !== undefined) req.end(body)
    }),
    15_000,
    String(headers[':path']),
  )
}

describe('trailers', () => {
  it("a client's trailers reach the upstream as the chunked body's trailer section", async () => {
    const r = await request({ ':method': 'POST', ':path': '/echo-trailers' }, Buffer.from('payload'), { 'x-sum': '123' })
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body.toString())).toEqual({ te: 'chunked', body: 'payload', trailers: { 'x-sum': '123' } })
  })

  it("a chunked response's trailer section reaches the client as trailers, connection fields left out", async () => {
    const r = await request({ ':path': '/t?size=10' })
    expect(r.status).toBe(200)
    expect(r.body.toString()).toBe('d'.repeat(10))
    expect(r.trailers).toMatchObject({ 'x-checksum': 'sum-10', 'x-other': 'v' })
    expect(r.trailers?.connection).toBeUndefined()
  })

  it('trailers come after all the DATA the client window held back', async () => {
    const r = await request({ ':path': '/t?size=300000' })
    expect(r.body.length).toBe(300_000)
    expect(r.bodyBeforeTrailers).toBe(300_000)
    expect(r.trailers).toMatchObject({ 'x-checksum': 'sum-300000' })
  })

  it('a trailer section split over several reads arrives whole', async () => {
    const r = await request({ ':path': '/', ':authority': 'split.test' })
    expect(r.body.toString()).toBe('hello')
    expect(r.trailers).toMatchObject({ 'x-ab': '1', 'x-c': '2' })
  })

  it('a chunked response without trailers ends with its DATA, and sends none', async () => {
    const r = await request({ ':path': '/no-trailers' })
    expect(r.status).toBe(200)
    expect(r.body.toString()).toBe('ab')
    expect(r.trailers).toBeNull()
  })
})
