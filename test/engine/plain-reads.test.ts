// The fallback for client connections: where libuv's handles cannot be used
// directly (src/engine/http1/client-socket.ts finds bindings of another
// shape), clients are served on net.Sockets read through 'data' events.
// The rest of the suite runs on raw handles; this file runs the cases
// where input outlives a read, and backpressure, through the fallback.

import { createHash, randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { useRawSockets } from '../../src/engine/http1/client-socket.ts'
import { RawClient, httpRequest, sendAndReadToEnd } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { httpUpstream, rawUpstream } from '../support/upstream.ts'
import type { HttpUpstream, RawUpstream } from '../support/upstream.ts'

const DOWNLOAD = randomBytes(8 * 1024 * 1024)
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

let up: HttpUpstream
let ws: RawUpstream
let eng: StartedEngine

beforeAll(async () => {
  useRawSockets(false)
  up = await httpUpstream((req, res, body) => res.end(req.url === '/download' ? DOWNLOAD : `${req.url} ${sha(body)} ${body.length}`))
  // Answers an upgrade with 101, then echoes.
  ws = await rawUpstream((sock, data, conn) => {
    if (conn.pending === 'open') return void sock.write(data)
    conn.pending += data.toString('latin1')
    const end = conn.pending.indexOf('\r\n\r\n')
    if (end < 0) return
    const rest = conn.pending.slice(end + 4)
    conn.pending = 'open'
    sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
    if (rest !== '') sock.write(rest)
  })
  eng = await startEngine(snapshotFor({ routes: [{ hosts: ['ws'], upstreams: [{ host: '127.0.0.1', port: ws.port }] }, { upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1))
})
afterAll(async () => {
  await eng?.stop()
  await up?.close()
  await ws?.close()
  useRawSockets(true)
})

describe("client reads through net's 'data' events", () => {
  it('three pipelined requests in one write are answered in order', async () => {
    const c = await RawClient.connect(eng.port)
    try {
      c.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nHost: x\r\n\r\n')
      const paths: string[] = []
      for (let i = 0; i < 3; i++) paths.push((await c.read({ timeoutMs: 5000 })).body.toString().split(' ')[0] as string)
      expect(paths).toEqual(['/a', '/b', '/c'])
    } finally {
      c.destroy()
    }
  })

  it('a head split across many writes is served', async () => {
    const c = await RawClient.connect(eng.port)
    try {
      for (const part of ['GE', 'T /split HT', 'TP/1.1\r\nHo', 'st: x\r', '\n\r\n']) {
        c.write(part)
        // Pacing, not waiting: the parts arrive in separate reads, the case under test.
        await new Promise((r) => setTimeout(r, 5))
      }
      const r = await c.read({ timeoutMs: 5000 })
      expect([r.status, r.body.toString().split(' ')[0]]).toEqual([200, '/split'])
    } finally {
      c.destroy()
    }
  })

  it('a 4 MiB upload arrives intact', async () => {
    const body = randomBytes(4 * 1024 * 1024)
    const r = await httpRequest(eng.port, '/up', { 'content-length': body.length }, { method: 'POST', body, timeoutMs: 20_000 })
    expect(r.text).toBe(`/up ${sha(body)} ${body.length}`)
  })

  it('an 8 MiB download to a client that keeps pausing arrives intact', async () => {
    const r = await sendAndReadToEnd(eng.port, 'GET /download HTTP/1.1\r\nHost: x\r\n\r\n', 256 * 1024)
    expect(r.head).toMatch(/^HTTP\/1\.1 200 /)
    expect(sha(r.body)).toBe(sha(DOWNLOAD))
  })

  it('a WebSocket tunnel echoes what the client sends', async () => {
    const sock = connect({ port: eng.port, host: '127.0.0.1' })
    sock.on('error', () => undefined)
    try {
      let got = Buffer.alloc(0)
      sock.on('data', (d: Buffer) => (got = Buffer.concat([got, d])))
      sock.write('GET /ws HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
      await until(() => got.includes('\r\n\r\n'), 5000, 'the 101')
      expect(got.toString('latin1')).toMatch(/^HTTP\/1\.1 101 /)
      const start = got.indexOf('\r\n\r\n') + 4
      const payload = randomBytes(256 * 1024)
      sock.write(payload)
      await until(() => got.length - start >= payload.length, 5000, 'the echo')
      expect(sha(got.subarray(start))).toBe(sha(payload))
    } finally {
      sock.destroy()
    }
  })
})
