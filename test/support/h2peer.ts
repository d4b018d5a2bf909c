// A raw HTTP/2 client for misbehaviour: frames written by hand (header
// blocks as HPACK literals, optionally inserted into the dynamic table),
// frames read back as they come, so a test can send what no real client
// would (floods, resets, endless CONTINUATION) and see exactly what the
// balancer answers. Node's http2 client is for well-behaved traffic.

import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { until } from './poll.ts'

export const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const
export const F = { END_STREAM: 1, ACK: 1, END_HEADERS: 4, PADDED: 8, PRIORITY: 0x20 } as const
export const E = { NO_ERROR: 0, PROTOCOL_ERROR: 1, FLOW_CONTROL_ERROR: 3, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9, ENHANCE_YOUR_CALM: 11 } as const

export interface Frame {
  type: number
  flags: number
  stream: number
  payload: Buffer
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9)
  h.writeUIntBE(payload.length, 0, 3)
  h[3] = type
  h[4] = flags
  h.writeUInt32BE(stream, 5)
  return Buffer.concat([h, payload])
}

function hpackInt(v: number, prefix: number, high: number): number[] {
  const mask = (1 << prefix) - 1
  if (v < mask) return [high | v]
  const out = [high | mask]
  v -= mask
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return out
}

function hpackString(s: string): Buffer {
  const b = Buffer.from(s, 'latin1')
  return Buffer.concat([Buffer.from(hpackInt(b.length, 7, 0)), b])
}

/** A header block of literals (without indexing; `index`: with incremental indexing, so it enters the table). */
export function block(fields: Array<[string, string]>, index = false): Buffer {
  return Buffer.concat(fields.map(([n, v]) => Buffer.concat([Buffer.from([index ? 0x40 : 0x00]), hpackString(n), hpackString(v)])))
}

/** An indexed field referring to table entry `i` (62 = the newest dynamic entry). */
export function indexed(i: number): Buffer {
  return Buffer.from(hpackInt(i, 7, 0x80))
}

export function settings(pairs: Array<[number, number]>): Buffer {
  const b = Buffer.alloc(pairs.length * 6)
  pairs.forEach(([id, v], i) => {
    b.writeUInt16BE(id, i * 6)
    b.writeUInt32BE(v, i * 6 + 2)
  })
  return frame(T.SETTINGS, 0, 0, b)
}

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(v)
  return b
}

export class H2Peer {
  readonly sock: Socket
  readonly frames: Frame[] = []
  closed = false
  bytesRead = 0
  #buf = Buffer.alloc(0)

  private constructor(sock: Socket) {
    this.sock = sock
    sock.on('data', (d: Buffer) => {
      this.bytesRead += d.length
      this.#buf = Buffer.concat([this.#buf, d])
      while (this.#buf.length >= 9) {
        const len = this.#buf.readUIntBE(0, 3)
        if (this.#buf.length < 9 + len) break
        this.frames.push({ type: this.#buf[3] as number, flags: this.#buf[4] as number, stream: this.#buf.readUInt32BE(5) & 0x7fffffff, payload: this.#buf.subarray(9, 9 + len) })
        this.#buf = this.#buf.subarray(9 + len)
      }
    })
    sock.on('error', () => {})
    sock.on('close', () => (this.closed = true))
  }

  /** Connects over h2c (plain) or TLS with ALPN h2, sends the preface and `initial` settings. */
  static async open(port: number, opts: { tls?: { ca: string }; settings?: Array<[number, number]> } = {}): Promise<H2Peer> {
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s: Socket =
        opts.tls === undefined
          ? connect(port, '127.0.0.1', () => resolve(s))
          : tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', ca: opts.tls.ca, ALPNProtocols: ['h2'] }, () => resolve(s))
      s.once('error', reject)
    })
    const p = new H2Peer(sock)
    sock.write(Buffer.concat([PREFACE, settings(opts.settings ?? [])]))
    await p.waitFor((f) => f.type === T.SETTINGS && (f.flags & F.ACK) === 0)
    return p
  }

  write(...bufs: Buffer[]): void {
    this.sock.write(Buffer.concat(bufs))
  }

  /** A request head on `stream` (a GET of `path` by default). */
  headers(stream: number, path: string, opts: { end?: boolean; extra?: Array<[string, string]>; method?: string } = {}): Buffer {
    const fields: Array<[string, string]> = [[':method', opts.method ?? 'GET'], [':scheme', 'http'], [':authority', 'peer.test'], [':path', path], ...(opts.extra ?? [])]
    return frame(T.HEADERS, F.END_HEADERS | (opts.end === false ? 0 : F.END_STREAM), stream, block(fields))
  }

  /** Resolves with the first frame (already received or to come) that matches. */
  async waitFor(match: (f: Frame) => boolean, ms = 10_000): Promise<Frame> {
    let found: Frame | undefined
    await until(() => (found = this.frames.find(match)) !== undefined || this.closed, ms, 'h2 frame')
    if (found === undefined) found = this.frames.find(match)
    if (found === undefined) throw new Error('connection closed before the frame came')
    return found
  }

  goaway(): Frame | undefined {
    return this.frames.find((f) => f.type === T.GOAWAY)
  }

  close(): void {
    this.sock.destroy()
  }
}

/** GOAWAY's error code. */
export function goawayCode(f: Frame): number {
  return f.payload.readUInt32BE(4)
}
