// A minimal RFC 6455 echo server on node:http for tests of upgrades through
// the proxy: it completes the handshake, echoes text and binary frames,
// answers ping with pong and close with close. `/deny` answers the upgrade
// request with a plain 403 instead.

import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { httpUpstream } from './upstream.ts'
import type { HttpUpstream } from './upstream.ts'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64')
}

export interface EchoServer extends HttpUpstream {
  /** Upgrade handshakes completed. */
  upgrades: number
  /** One entry per completed handshake, in order: whether that tunnel's socket has closed. */
  tunnels: Array<{ closed: boolean }>
}

export async function wsEchoUpstream(): Promise<EchoServer> {
  const up = (await httpUpstream()) as EchoServer
  up.upgrades = 0
  up.tunnels = []
  up.server.on('upgrade', (req: IncomingMessage, sock: Socket, head: Buffer) => {
    sock.on('error', () => {})
    const key = req.headers['sec-websocket-key']
    if (req.url === '/deny' || typeof key !== 'string' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      sock.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope')
      return
    }
    sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`)
    up.upgrades++
    const tunnel = { closed: false }
    up.tunnels.push(tunnel)
    sock.on('close', () => (tunnel.closed = true))
    let buf = head
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d])
      for (;;) {
        const f = readFrame(buf)
        if (f === null) return
        buf = buf.subarray(f.size)
        if (f.opcode === 0x8) {
          sock.end(frame(0x8, f.payload))
          return
        }
        if (f.opcode === 0x9) sock.write(frame(0xa, f.payload))
        else if (f.opcode === 0x1 || f.opcode === 0x2 || f.opcode === 0x0) sock.write(frame(f.opcode, f.payload, f.fin))
      }
    }
    sock.on('data', onData)
    // node:http hands over half-open-capable sockets: finish our side when the peer finishes its own.
    sock.on('end', () => sock.end())
    if (head.length > 0) onData(Buffer.alloc(0))
  })
  return up
}

interface Frame {
  fin: boolean
  opcode: number
  payload: Buffer
  size: number
}

function readFrame(buf: Buffer): Frame | null {
  if (buf.length < 2) return null
  const b0 = buf[0] ?? 0
  const b1 = buf[1] ?? 0
  let len = b1 & 0x7f
  let at = 2
  if (len === 126) {
    if (buf.length < 4) return null
    len = buf.readUInt16BE(2)
    at = 4
  } else if (len === 127) {
    if (buf.length < 10) return null
    len = Number(buf.readBigUInt64BE(2))
    at = 10
  }
  const masked = (b1 & 0x80) !== 0
  const maskAt = at
  if (masked) at += 4
  if (buf.length < at + len) return null
  const payload = Buffer.from(buf.subarray(at, at + len))
  if (masked) for (let i = 0; i < len; i++) payload[i] = (payload[i] ?? 0) ^ (buf[maskAt + (i % 4)] ?? 0)
  return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload, size: at + len }
}

/** An unmasked server frame. */
function frame(opcode: number, payload: Buffer, fin = true): Buffer {
  const n = payload.length
  const head = n < 126 ? Buffer.alloc(2) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10)
  head[0] = (fin ? 0x80 : 0) | opcode
  if (n < 126) head[1] = n
  else if (n < 65536) {
    head[1] = 126
    head.writeUInt16BE(n, 2)
  } else {
    head[1] = 127
    head.writeBigUInt64BE(BigInt(n), 2)
  }
  return Buffer.concat([head, payload])
}
