// WebSocket upgrades through the proxy with Node's own WebSocket client: the
// handshake passes, frames flow both ways, a reload leaves an open socket
// alone, and a refused upgrade comes back as an ordinary response.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient, httpGet } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until, within } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { httpUpstream, rawUpstream, refusedPort } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { acceptKey, wsEchoUpstream } from '../support/websocket.ts'
import type { EchoServer } from '../support/websocket.ts'

let echo: EchoServer
let plain: HttpUpstream
let eng: StartedEngine

beforeAll(async () => {
  echo = await wsEchoUpstream()
  plain = await httpUpstream(undefined, { name: 'plain' })
  eng = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: echo.port }] }] }, 1))
})
afterAll(async () => {
  await eng?.stop()
  await echo?.close()
  await plain?.close()
})

/** Opens a WebSocket and returns it with a function that awaits the next message. */
async function open(path = '/', port = eng.port): Promise<{ ws: WebSocket; next(): Promise<string | ArrayBuffer> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`)
  ws.binaryType = 'arraybuffer'
  const inbox: Array<string | ArrayBuffer> = []
  const waiting: Array<(m: string | ArrayBuffer) => void> = []
  ws.addEventListener('message', (ev: MessageEvent) => {
    const w = waiting.shift()
    if (w !== undefined) w(ev.data as string | ArrayBuffer)
    else inbox.push(ev.data as string | ArrayBuffer)
  })
  await within(
    new Promise<void>((res, rej) => {
      ws.addEventListener('open', () => res())
      ws.addEventListener('error', () => rej(new Error('WebSocket handshake through the proxy failed')))
    }),
    5000,
    'WebSocket open',
  )
  const next = (): Promise<string | ArrayBuffer> => {
    const m = inbox.shift()
    if (m !== undefined) return Promise.resolve(m)
    return within(new Promise((res) => waiting.push(res)), 5000, 'WebSocket echo')
  }
  return { ws, next }
}

describe('WebSocket through the proxy', () => {
  it('text and binary messages, small and over 64 KiB, are echoed; close is clean', async () => {
    const { ws, next } = await open()
    try {
      for (const m of ['hello', 'é ü 漢字', 'x'.repeat(200), 'y'.repeat(100 * 1024)]) {
        ws.send(m)
        expect(await next()).toBe(m)
      }
      const bin = new Uint8Array(70_000).map((_, i) => i % 251)
      ws.send(bin)
      const back = await next()
      expect(back).toBeInstanceOf(ArrayBuffer)
      expect(Buffer.from(back as ArrayBuffer).equals(Buffer.from(bin))).toBe(true)
      const closed = new Promise<number>((res) => ws.addEventListener('close', (ev: CloseEvent) => res(ev.code)))
      ws.close(1000, 'bye')
      expect(await within(closed, 5000, 'WebSocket close')).toBe(1000)
    } finally {
      if (ws.readyState !== WebSocket.CLOSED) ws.close()
    }
  })

  it('an open WebSocket survives a reload that moves the route to another upstream', async () => {
    const { ws, next } = await open()
    try {
      ws.send('before')
      expect(await next()).toBe('before')
      await eng.engine.apply(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: plain.port }] }] }, 2))
      expect((await httpGet(eng.port, '/')).text).toBe('plain')
      ws.send('after')
      expect(await next()).toBe('after')
      expect(ws.readyState).toBe(WebSocket.OPEN)
    } finally {
      ws.close()
      await eng.engine.apply(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: echo.port }] }] }, 3))
    }
  })

  it('an upgrade the upstream refuses comes back as a normal response', async () => {
    const c = await RawClient.connect(eng.port)
    c.write('GET /deny HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' + 'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
    const r = await c.read().finally(() => c.destroy())
    expect([r.status, r.body.toString()]).toEqual([403, 'nope'])
  })

  it('a frame sent in the same write as the upgrade request is delivered after the handshake', async () => {
    const key = 'dGhlIHNhbXBsZSBub25jZQ=='
    const payload = Buffer.from('early')
    const mask = Buffer.from([1, 2, 3, 4])
    const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload.map((b, i) => b ^ (mask[i % 4] ?? 0))])
    const c = await RawClient.connect(eng.port)
    try {
      const head = `GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`
      c.write(Buffer.concat([Buffer.from(head, 'latin1'), frame]))
      const r = await c.read()
      expect(r.status).toBe(101)
      expect(r.headers).toContainEqual(['sec-websocket-accept', acceptKey(key)])
      await until(() => c.buffered.length >= 2 + payload.length, 3000, 'the echoed early frame')
      expect(c.buffered.subarray(0, 2 + payload.length)).toEqual(Buffer.concat([Buffer.from([0x81, payload.length]), payload]))
    } finally {
      c.destroy()
    }
  })

  it('bytes an upstream sends together with its 101 reach the client', async () => {
    const greeter = await rawUpstream((sock, data, conn) => {
      conn.pending += data.toString('latin1')
      const m = /sec-websocket-key: *(\S+)/i.exec(conn.pending)
      if (!conn.pending.includes('\r\n\r\n') || m === null) return
      conn.pending = ''
      const hello = Buffer.from('welcome')
      sock.write(
        Buffer.concat([
          Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(m[1] ?? '')}\r\n\r\n`),
          Buffer.from([0x81, hello.length]),
          hello,
        ]),
      )
    })
    const e = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: greeter.port }] }] }, 1))
    try {
      const { ws, next } = await open('/', e.port)
      expect(await next()).toBe('welcome')
      ws.close()
    } finally {
      await e.stop()
      await greeter.close()
    }
  })

  it('closing the WebSocket closes the upstream side of the tunnel', async () => {
    const before = echo.upgrades
    const { ws, next } = await open()
    ws.send('x')
    await next()
    expect(echo.upgrades).toBe(before + 1)
    const closed = new Promise<void>((res) => ws.addEventListener('close', () => res()))
    ws.close()
    await within(closed, 3000, 'WebSocket close')
    const tunnel = echo.tunnels[before]
    await until(() => tunnel?.closed === true, 3000, 'the upstream side of the tunnel to close')
  })

  it('either side dropping its TCP connection tears down the other side', async () => {
    const handshake = 'GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'
    const c1 = await RawClient.connect(eng.port)
    c1.write(handshake)
    expect((await c1.read()).status).toBe(101)
    const t1 = echo.tunnels[echo.tunnels.length - 1]
    c1.destroy()
    await until(() => t1?.closed === true, 3000, 'the upstream side after the client dropped')

    const c2 = await RawClient.connect(eng.port)
    c2.write(handshake)
    expect((await c2.read()).status).toBe(101)
    const n = echo.tunnels.length
    // The echo server ends its side when it receives a close frame; a raw close frame from the client triggers it.
    c2.write(Buffer.from([0x88, 0x80, 0, 0, 0, 0]))
    expect(await c2.whenClosed(3000)).toBe(true)
    await until(() => echo.tunnels[n - 1]?.closed === true, 3000, 'the upstream side to finish closing')
  })

  it('an upgrade to a route whose upstreams are all down gets 502 or 503, at once', async () => {
    const e = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: await refusedPort() }] }] }, 1))
    try {
      const c = await RawClient.connect(e.port)
      c.write('GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
      const r = await c.read({ timeoutMs: 2000 }).finally(() => c.destroy())
      expect([502, 503]).toContain(r.status)
    } finally {
      await e.stop()
    }
  })
})
