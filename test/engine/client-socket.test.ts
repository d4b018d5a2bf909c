// Client connections on libuv handles (src/engine/http1/client-socket.ts):
// the socket semantics net.Socket used to provide and the proxy relies on.
// A half-closed client still gets its whole response and then the FIN; a
// client that asked to close gets its whole response and is closed without
// waiting for its FIN, even with writes still queued; small writes are not
// held back by Nagle's algorithm; a client that resets with a response
// queued is dropped along with its upstream connection; and however a
// connection ends, the proxy closes its socket: checked in the kernel's own
// table, where a socket the proxy forgot stays in CLOSE_WAIT.

import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { acceptRaw } from '../../src/engine/http1/client-socket.ts'
import type { RawClientSocket } from '../../src/engine/http1/client-socket.ts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient, httpGet, sendAndReadToEnd } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

const MiB = 1024 * 1024
const BIG = Buffer.alloc(4 * MiB)
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 7 + (i >> 12)) & 0xff
const PIECE = Buffer.alloc(64 * 1024, 0x61)
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

let up: HttpUpstream
let eng: StartedEngine
/** /endless responses cut off by the proxy closing the upstream connection. */
let cutShort = 0
/** Times an /endless response's writes filled the upstream socket (the proxy stopped taking them). */
let stalls = 0

beforeAll(async () => {
  up = await httpUpstream((req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-length': BIG.length })
      res.end(BIG)
      return
    }
    if (req.url === '/two-writes') {
      // the head, then the body a moment later: two small writes by the proxy
      res.writeHead(200, { 'content-length': 2 })
      res.flushHeaders()
      setTimeout(() => res.end('ok'), 2)
      return
    }
    if (req.url === '/endless') {
      // Chunked pieces for as long as the connection lasts (at most 1 GiB): only the proxy closing it ends this.
      let sent = 0
      res.on('close', () => {
        if (!res.writableFinished) cutShort++
      })
      const pump = (): void => {
        while (!res.destroyed && sent < 1024 * MiB) {
          sent += PIECE.length
          if (!res.write(PIECE)) {
            stalls++
            return void res.once('drain', pump)
          }
        }
        res.end()
      }
      return pump()
    }
    res.end(`ok ${req.url}`)
  })
  eng = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1))
})
afterAll(async () => {
  await eng?.stop()
  await up?.close()
})

const connections = (): number => eng.engine.stats().listeners.reduce((n, l) => n + l.connections, 0)

/** TCP states from /proc/net/tcp{,6} of sockets whose local port is `port`, LISTEN and TIME_WAIT left out. */
function socketStates(port: number): string[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0')
  const states: string[] = []
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(file, 'latin1')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 4 || !(f[1] as string).endsWith(`:${hex}`)) continue
      const st = f[3] as string
      if (st !== '0A' && st !== '06') states.push(st)
    }
  }
  return states
}

describe('client connections on raw handles', () => {
  it('a request sent with the FIN gets its whole 4 MiB response, then the proxy closes', async () => {
    const r = await sendAndReadToEnd(eng.port, 'GET /big HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(r.head).toMatch(/^HTTP\/1\.1 200 .*\r\nconnection: close/is)
    expect(sha(r.body)).toBe(sha(BIG))
    await until(() => connections() === 0, 3000, 'the connection leaves the proxy')
  })

  it('a client that asks to close gets its whole response, read slowly, then the FIN, without the proxy waiting for its FIN', async () => {
    // allowHalfOpen: the client never sends its FIN, so only the proxy can end the connection
    const sock = connect({ port: eng.port, host: '127.0.0.1', allowHalfOpen: true })
    const chunks: Buffer[] = []
    const errors: string[] = []
    sock.on('error', (e: Error) => errors.push(e.message))
    const ended = new Promise<void>((resolve) => sock.on('end', resolve))
    let got = 0
    sock.on('data', (d: Buffer) => {
      chunks.push(d)
      got += d.length
      // a reader slower than the proxy (the close with writes still queued is tested on the socket itself, below)
      if (got % (128 * 1024) < d.length) {
        sock.pause()
        setTimeout(() => sock.resume(), 5)
      }
    })
    sock.write('GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    await ended
    const all = Buffer.concat(chunks)
    const end = all.indexOf('\r\n\r\n')
    expect(all.toString('latin1', 0, end)).toMatch(/^HTTP\/1\.1 200 .*\r\nconnection: close/is)
    expect(sha(all.subarray(end + 4))).toBe(sha(BIG))
    expect(errors).toEqual([])
    // gone from the proxy well before the 5 s it would wait for a client that may still send
    await until(() => connections() === 0, 1000, 'the proxy closes the connection')
    sock.destroy()
  })

  it("small writes go out at once (TCP_NODELAY): a response written in two pieces is not held for the client's delayed ACK", async () => {
    // With Nagle's algorithm the second piece waits until the first is
    // acknowledged, and a client in request/response rhythm delays its ACKs
    // (40 ms on Linux): every such response would take 40 ms more.
    const c = await RawClient.connect(eng.port)
    const times: number[] = []
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now()
      c.write('GET /two-writes HTTP/1.1\r\nHost: x\r\n\r\n')
      const r = await c.read()
      times.push(performance.now() - t0)
      expect([r.status, r.body.toString()]).toEqual([200, 'ok'])
    }
    c.destroy()
    times.sort((a, b) => a - b)
    // the median exchange: 2 ms of upstream pause plus loopback hops; a held piece adds 40 ms
    expect(times[15]).toBeLessThan(25)
  })

  it('a client that resets with a response queued: dropped with its upstream connection; the next client is served', async () => {
    const before = cutShort
    const stalled = stalls
    const c = await RawClient.connect(eng.port)
    c.sock.pause() // reads nothing: the response piles up in the proxy's write queue, then the upstream stalls
    c.write('GET /endless HTTP/1.1\r\nHost: x\r\n\r\n')
    await until(() => stalls > stalled, 5000, 'the upstream to stall on the unread response')
    c.sock.resetAndDestroy()
    await until(() => connections() === 0, 3000, 'the reset connection leaves the proxy')
    await until(() => cutShort > before, 3000, 'the upstream connection is closed mid-response')
    const r = await httpGet(eng.port, '/after')
    expect([r.status, r.text]).toEqual([200, 'ok /after'])
  })

  it('however 200 connections end, the proxy closes every socket it accepted', async () => {
    const open = await RawClient.connect(eng.port)
    await until(() => socketStates(eng.port).includes('01'), 3000, 'an open connection shows as ESTABLISHED')
    open.destroy()
    const ways: Array<() => Promise<void>> = [
      // complete exchange, client closes first
      async () => {
        const c = await RawClient.connect(eng.port)
        c.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n')
        await c.read()
        c.destroy()
      },
      // request with connection: close, proxy closes first
      async () => {
        const c = await RawClient.connect(eng.port)
        c.write('GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
        await c.read()
        await c.whenClosed()
        c.destroy()
      },
      // FIN before any byte
      async () => {
        const c = await RawClient.connect(eng.port)
        c.sock.end()
        await c.whenClosed()
      },
      // reset before any byte
      async () => {
        const c = await RawClient.connect(eng.port)
        c.sock.resetAndDestroy()
      },
      // half a head, then FIN
      async () => {
        const c = await RawClient.connect(eng.port)
        c.sock.end('GET /c HTTP/1.1\r\nHo')
        await c.whenClosed()
      },
      // two pipelined requests and the FIN in one go
      async () => {
        const c = await RawClient.connect(eng.port)
        c.sock.end('GET /d HTTP/1.1\r\nHost: x\r\n\r\nGET /e HTTP/1.1\r\nHost: x\r\n\r\n')
        await c.read()
        await c.read()
        await c.whenClosed()
      },
      // a malformed head: 400 and close
      async () => {
        const c = await RawClient.connect(eng.port)
        c.write('GET /f HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n')
        expect((await c.read()).status).toBe(400)
        await c.whenClosed()
      },
    ]
    for (let round = 0; round < 200 / ways.length; round++) {
      await Promise.all(ways.map((w) => w()))
    }
    await until(() => connections() === 0, 5000, 'every connection leaves the proxy')
    await until(() => socketStates(eng.port).length === 0, 5000, "no socket of the proxy's port left open")
  })
})

describe('a raw client socket closed with writes still queued (destroySoon)', () => {
  it('closes once the kernel has taken them: the client reads every byte, then a clean FIN', async () => {
    const server = createServer({ allowHalfOpen: true })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const data = Buffer.alloc(32 * MiB)
    for (let i = 0; i < data.length; i += 4096) data[i] = (i >> 12) & 0xff
    let queuedAtClose = -1
    let closed = false
    const sink = { read() {}, end() {}, drain() {}, close: () => void (closed = true) }
    const raw = acceptRaw(server, sink, (sock: RawClientSocket<object>) => {
      sock.start({})
      sock.write(data) // more than loopback's buffers hold for a client that is not reading
      sock.destroySoon()
      queuedAtClose = sock.writableLength
    })
    expect(raw).toBe(true)
    try {
      const client = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true })
      client.pause()
      const chunks: Buffer[] = []
      const errors: string[] = []
      client.on('data', (d: Buffer) => chunks.push(d))
      client.on('error', (e: Error) => errors.push(e.message))
      const ended = new Promise<void>((r) => client.on('end', r))
      await until(() => queuedAtClose >= 0, 3000, 'the connection to be accepted and written to')
      expect(queuedAtClose).toBeGreaterThan(0)
      expect(closed).toBe(false)
      client.resume()
      await ended
      expect(errors).toEqual([])
      expect(sha(Buffer.concat(chunks))).toBe(sha(data))
      await until(() => closed, 3000, 'the socket to report its close')
      client.destroy()
    } finally {
      await new Promise((r) => server.close(r))
    }
  })
})
