// HTTP/2 upstreams (Protocol "h2c", or "h2" over TLS): client sessions of
// our own frame layer (the same framing, HPACK decoder and output path as
// client connections), multiplexed. A stream is opened on the upstream's first
// session with room under the peer's SETTINGS_MAX_CONCURRENT_STREAMS; when
// every session is full (or none is up) another connection is opened. A
// request on an HTTP/2 stream of a client is relayed stream to stream: its
// fields (forwarding fields added as for HTTP/1.1 upstreams), its DATA under
// the upstream's flow control, its trailers; the response's HEADERS, DATA
// and trailers (grpc-status, grpc-message) the same way back. A reset on
// either side resets the other (RST_STREAM CANCEL upstream when the client
// gives up). `grpc-timeout` bounds the wait for the response head.
//
// Failures go through the shared exchange: a connect failure, a stream the
// upstream refused (REFUSED_STREAM, or above a GOAWAY's last stream id:
// never processed) may be retried on any method; a reset before the
// response head like an HTTP/1.1 reset before any byte (idempotent methods
// only); after that the client stream is reset.

import { connect, isIP } from 'node:net'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { EngineCtx } from '../context.ts'
import type { Upstream } from '../upstream/registry.ts'
import type { Output } from './frames.ts'
import {
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  FRAME_HEADER,
  Flag,
  FrameType,
  H2Error,
  MAX_WINDOW,
  PREFACE,
  Setting,
  appendRef,
  at,
  done,
  frame32,
  goAwayFrame,
  header,
  reserve,
  sealFor,
} from './frames.ts'
import { HpackDecoder, writeInt } from './hpack.ts'
import type { Exchange } from '../exchange.ts'

/** What the session tells the stream's owner: an HTTP/2 client's stream (up-relay.ts) or an HTTP/1.1 client's request (http1/h2-upstream.ts). */
export interface UpStreamEvents {
  /** The stream is open on a connected session: send the request. */
  ready(us: UpStream): void
  /** Response (or interim) HEADERS: decoded in session.hpack (names/values, count). */
  head(us: UpStream, status: number, end: boolean): void
  data(us: UpStream, data: Buffer, end: boolean): void
  trailers(us: UpStream): void
  /** The stream failed: `code` as RST_STREAM gave it (REFUSED_STREAM: never processed), or -1 connect failure, -2 connection lost. */
  failed(us: UpStream, code: number, owner: Exchange): void
  /** The upstream's window opened: queued request DATA may go on. */
  writable(us: UpStream): void
}

export const SessSt = { Connecting: 0, Open: 1, Going: 2, Closed: 3 } as const

export class UpStream {
  readonly session: H2UpSession
  id = 0
  owner: Exchange | null
  readonly events: UpStreamEvents
  sendWindow = DEFAULT_WINDOW
  recvWindow = DEFAULT_WINDOW
  credit = 0
  /** Request DATA waiting for the upstream's window; endQueued: END_STREAM after it. */
  readonly outq: Buffer[] = []
  outqBytes = 0
  endQueued = false
  /** Response head received. */
  gotHead = false
  /** END_STREAM seen from the upstream, and sent to it. */
  remoteDone = false
  localDone = false
  /** Any request DATA byte went out (the request can no longer be sent again). */
  sentBody = false

  constructor(session: H2UpSession, owner: Exchange, events: UpStreamEvents) {
    this.session = session
    this.owner = owner
    this.events = events
  }
}

export class H2UpSession implements Output {
  readonly up: Upstream
  readonly ctx: EngineCtx
  readonly sock: Socket
  state: number = SessSt.Connecting
  readonly streams = new Map<number, UpStream>()
  /** Streams asked for before the connection was up. */
  readonly waiting: UpStream[] = []
  nextId = 1
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS (100 until it says). */
  maxStreams = 100
  peerWindow = DEFAULT_WINDOW
  sendWindow = DEFAULT_WINDOW
  recvWindow = DEFAULT_WINDOW
  credit = 0
  readonly hpack: HpackDecoder
  buf: Buffer | null = null
  off = 0
  /** GOAWAY received: streams above this id were never processed. */
  goawayLast = -1
  readonly out: Buffer[] = []
  outBytes = 0
  flushQueued = false
  error = ''

  constructor(up: Upstream, ctx: EngineCtx) {
    this.up = up
    this.ctx = ctx
    this.hpack = new HpackDecoder(4096, 1 << 20)
    // h2: TLS verified against the engine's upstream CAs, SNI the host name, and h2 chosen by ALPN.
    if (up.tls) {
      // node:tls loads with the first TLS upstream, not with the engine (a worker without TLS never loads it).
      this.sock = process
        .getBuiltinModule('node:tls')
        .connect({ host: up.host, port: up.port, secureContext: ctx.upstreamTls, ALPNProtocols: ['h2'], ...(isIP(up.host) === 0 ? { servername: up.host } : {}) })
      this.sock.setNoDelay(true)
      this.sock.on('secureConnect', () => onSecureConnect(this))
    } else {
      this.sock = connect({ host: up.host, port: up.port, noDelay: true })
      this.sock.on('connect', () => onConnect(this))
    }
    this.sock.on('data', (d: Buffer) => onData(this, d))
    this.sock.on('error', (e: NodeJS.ErrnoException) => (this.error = e.code ?? 'ERROR'))
    this.sock.on('close', () => onClose(this))
    this.sock.on('drain', () => {})
  }

  get load(): number {
    return this.streams.size + this.waiting.length
  }

  flush(): void {
    sealFor(this)
    const out = this.out
    if (out.length === 0 || this.state === SessSt.Closed) {
      out.length = 0
      this.outBytes = 0
      return
    }
    this.sock.cork()
    for (let i = 0; i < out.length; i++) this.sock.write(out[i] as Buffer)
    this.sock.uncork()
    out.length = 0
    this.outBytes = 0
  }
}

/** A stream for `owner` on one of `up`'s sessions with room, or on a new one. */
export function openStream(up: Upstream, ctx: EngineCtx, owner: Exchange, events: UpStreamEvents): UpStream {
  let s: H2UpSession | null = null
  for (const x of up.h2) {
    if ((x.state === SessSt.Connecting || x.state === SessSt.Open) && x.load < x.maxStreams) {
      s = x
      break
    }
  }
  if (s === null) {
    s = new H2UpSession(up, ctx)
    up.h2.push(s)
  }
  const us = new UpStream(s, owner, events)
  up.active++
  if (s.state === SessSt.Open) start(us)
  else s.waiting.push(us)
  return us
}

function start(us: UpStream): void {
  const s = us.session
  us.id = s.nextId
  s.nextId += 2
  us.sendWindow = s.peerWindow
  s.streams.set(us.id, us)
  us.events.ready(us)
}

const START = (() => {
  const b = Buffer.alloc(PREFACE.length + FRAME_HEADER + 12 + FRAME_HEADER + 4)
  PREFACE.copy(b, 0)
  let p = PREFACE.length
  b.writeUIntBE(12, p, 3)
  b[p + 3] = FrameType.Settings
  p += FRAME_HEADER
  b.writeUInt16BE(Setting.EnablePush, p)
  b.writeUInt32BE(0, p + 2)
  b.writeUInt16BE(Setting.InitialWindowSize, p + 6)
  b.writeUInt32BE(DEFAULT_WINDOW, p + 8)
  p += 12
  b.writeUIntBE(4, p, 3)
  b[p + 3] = FrameType.WindowUpdate
  b.writeUInt32BE(1024 * 1024 - DEFAULT_WINDOW, p + FRAME_HEADER)
  return b
})()

/** A TLS session is usable once the handshake chose h2; a server that offers only HTTP/1.1 is a connect failure. */
function onSecureConnect(s: H2UpSession): void {
  if ((s.sock as TLSSocket).alpnProtocol !== 'h2') {
    s.error = 'no h2 by ALPN'
    s.sock.destroy()
    return
  }
  onConnect(s)
}

function onConnect(s: H2UpSession): void {
  if (s.state !== SessSt.Connecting) return
  s.recvWindow = 1024 * 1024
  s.sock.write(START)
  // Streams start once the peer's SETTINGS tell how many it takes at once.
}

/** The peer's first SETTINGS: the session is open; waiting streams start, those over its limit go elsewhere. */
function opened(s: H2UpSession): void {
  s.state = SessSt.Open
  const w = s.waiting.splice(0)
  for (const us of w) {
    if (us.owner === null) continue
    if (s.streams.size < s.maxStreams) start(us)
    else fail(us, FULL)
  }
}

/** Failure code of a stream that never started because its session was full: the owner opens it again elsewhere. */
export const FULL = -3

function onData(s: H2UpSession, chunk: Buffer): void {
  s.ctx.now = Date.now()
  s.buf = s.buf === null || s.off >= s.buf.length ? chunk : Buffer.concat([s.buf.subarray(s.off), chunk])
  s.off = 0
  const buf = s.buf
  let p = 0
  while (buf.length - p >= FRAME_HEADER && s.state !== SessSt.Closed) {
    const size = ((buf[p] as number) << 16) | ((buf[p + 1] as number) << 8) | (buf[p + 2] as number)
    if (size > DEFAULT_MAX_FRAME) return sessionError(s, H2Error.FrameSizeError)
    if (buf.length - p < FRAME_HEADER + size) break
    const type = buf[p + 3] as number
    const flags = buf[p + 4] as number
    const sid = buf.readUInt32BE(p + 5) & 0x7fffffff
    const st = p + FRAME_HEADER
    p = st + size
    frame(s, type, flags, sid, buf, st, p)
  }
  if (p >= buf.length) s.buf = null
  else s.off = p
}

function frame(s: H2UpSession, type: number, flags: number, sid: number, buf: Buffer, b: number, e: number): void {
  switch (type) {
    case FrameType.Settings: {
      if ((flags & Flag.Ack) !== 0) return
      for (let p = b; p + 6 <= e; p += 6) {
        const id = buf.readUInt16BE(p)
        const v = buf.readUInt32BE(p + 2)
        if (id === Setting.MaxConcurrentStreams) s.maxStreams = v
        else if (id === Setting.InitialWindowSize) {
          const d = v - s.peerWindow
          s.peerWindow = v
          for (const us of s.streams.values()) us.sendWindow += d
          if (d > 0) for (const us of s.streams.values()) if (us.outq.length !== 0 || us.endQueued) us.events.writable(us)
        }
      }
      reserve(s, FRAME_HEADER)
      done(header(at(), 0, FrameType.Settings, Flag.Ack, 0))
      if (s.state === SessSt.Connecting) opened(s)
      return
    }
    case FrameType.Ping: {
      if ((flags & Flag.Ack) !== 0 || e - b !== 8) return
      const out = reserve(s, FRAME_HEADER + 8)
      const p = header(at(), 8, FrameType.Ping, Flag.Ack, 0)
      buf.copy(out, p, b, e)
      done(p + 8)
      return
    }
    case FrameType.GoAway: {
      s.goawayLast = buf.readUInt32BE(b) & 0x7fffffff
      s.state = SessSt.Going
      for (const [id, us] of [...s.streams]) if (id > s.goawayLast) fail(us, H2Error.RefusedStream)
      if (s.streams.size === 0) s.sock.end()
      return
    }
    case FrameType.WindowUpdate: {
      const inc = buf.readUInt32BE(b) & 0x7fffffff
      if (sid === 0) {
        s.sendWindow += inc
        for (const us of s.streams.values()) if (us.outq.length !== 0 || us.endQueued) us.events.writable(us)
        return
      }
      const us = s.streams.get(sid)
      if (us === undefined) return
      us.sendWindow += inc
      if (us.sendWindow > MAX_WINDOW) return resetUp(us, H2Error.FlowControlError)
      us.events.writable(us)
      return
    }
    case FrameType.RstStream: {
      const us = s.streams.get(sid)
      if (us !== undefined) fail(us, buf.readUInt32BE(b))
      return
    }
    case FrameType.Headers: {
      let fs = b
      let fe = e
      if ((flags & Flag.Padded) !== 0) {
        fe = e - (buf[b] as number)
        fs = b + 1
      }
      if ((flags & Flag.Priority) !== 0) fs += 5
      if ((flags & Flag.EndHeaders) === 0) return sessionError(s, H2Error.ProtocolError) // responses over one frame of headers are not expected from services
      if (s.hpack.decode(buf, fs, fe) !== 0) return sessionError(s, H2Error.CompressionError)
      const us = s.streams.get(sid)
      if (us === undefined || us.owner === null) return
      const end = (flags & Flag.EndStream) !== 0
      if (end) us.remoteDone = true
      if (!us.gotHead) {
        const d = s.hpack
        let status = 0
        for (let i = 0; i < d.count; i++) if (d.names[i] === ':status') status = Number(d.values[i])
        if (status < 100 || status > 599) return resetUp(us, H2Error.ProtocolError)
        if (status >= 200) us.gotHead = true
        us.events.head(us, status, end)
      } else {
        us.events.trailers(us)
      }
      if (end) closeStream(us)
      return
    }
    case FrameType.Data: {
      const size = e - b
      s.recvWindow -= size
      creditSession(s, size)
      const us = s.streams.get(sid)
      if (us === undefined || us.owner === null) return
      let ds = b
      let de = e
      if ((flags & Flag.Padded) !== 0) {
        de = e - (buf[b] as number)
        ds = b + 1
      }
      us.recvWindow -= size
      const end = (flags & Flag.EndStream) !== 0
      if (end) us.remoteDone = true
      // A copy: the read buffer is reused, and the client side may queue it.
      us.events.data(us, Buffer.from(buf.subarray(ds, de)), end)
      if (end) closeStream(us)
      return
    }
    default:
      return
  }
}

function creditSession(s: H2UpSession, n: number): void {
  s.credit += n
  if (s.credit >= 16384) {
    frame32(s, FrameType.WindowUpdate, 0, 0, s.credit)
    s.recvWindow += s.credit
    s.credit = 0
  }
}

/** The client took `n` bytes of the response: the upstream may send as much more. */
export function creditUp(us: UpStream, n: number): void {
  if (us.remoteDone || us.owner === null) return
  us.credit += n
  if (us.credit >= 16384) {
    frame32(us.session, FrameType.WindowUpdate, 0, us.id, us.credit)
    us.recvWindow += us.credit
    us.credit = 0
  }
}

/** Sends the request head: `block` is a header block in the HPACK scratch (its first `len` bytes). */
export function sendHead(us: UpStream, block: Buffer, len: number, end: boolean): void {
  const s = us.session
  const out = reserve(s, FRAME_HEADER + len)
  const p = header(at(), len, FrameType.Headers, Flag.EndHeaders | (end ? Flag.EndStream : 0), us.id)
  block.copy(out, p, 0, len)
  done(p + len)
  if (end) us.localDone = true
}

/** Request DATA as far as the upstream's windows allow; the rest waits (false). */
export function sendUpData(us: UpStream, data: Buffer, end: boolean): boolean {
  const s = us.session
  if (us.outq.length !== 0) {
    if (data.length !== 0) {
      us.outq.push(data)
      us.outqBytes += data.length
    }
    if (end) us.endQueued = true
    return false
  }
  let off = 0
  while (off < data.length) {
    const n = Math.min(data.length - off, s.sendWindow, us.sendWindow, DEFAULT_MAX_FRAME)
    if (n <= 0) break
    dataFrame(s, us.id, data, off, n, end && off + n === data.length)
    s.sendWindow -= n
    us.sendWindow -= n
    off += n
    us.sentBody = true
  }
  if (off < data.length) {
    us.outq.push(off === 0 ? data : data.subarray(off))
    us.outqBytes += data.length - off
    if (end) us.endQueued = true
    return false
  }
  if (end) {
    if (data.length === 0) dataFrame(s, us.id, data, 0, 0, true)
    us.localDone = true
  }
  return true
}

/** The window opened: sends what waits. True when nothing is left. */
export function drainUp(us: UpStream): boolean {
  const q = us.outq
  const s = us.session
  while (q.length !== 0) {
    const d = q[0] as Buffer
    const n = Math.min(d.length, s.sendWindow, us.sendWindow, DEFAULT_MAX_FRAME)
    if (n <= 0) return false
    const last = n === d.length && q.length === 1 && us.endQueued
    dataFrame(s, us.id, d, 0, n, last)
    s.sendWindow -= n
    us.sendWindow -= n
    us.outqBytes -= n
    us.sentBody = true
    if (n === d.length) q.shift()
    else q[0] = d.subarray(n)
    if (last) {
      us.endQueued = false
      us.localDone = true
    }
  }
  if (us.endQueued) {
    dataFrame(s, us.id, EMPTY, 0, 0, true)
    us.endQueued = false
    us.localDone = true
  }
  return true
}
const EMPTY = Buffer.alloc(0)

function dataFrame(s: H2UpSession, id: number, data: Buffer, off: number, n: number, end: boolean): void {
  if (n <= 4096) {
    const out = reserve(s, FRAME_HEADER + n)
    const p = header(at(), n, FrameType.Data, end ? Flag.EndStream : 0, id)
    data.copy(out, p, off, off + n)
    done(p + n)
  } else {
    reserve(s, FRAME_HEADER)
    done(header(at(), n, FrameType.Data, end ? Flag.EndStream : 0, id))
    appendRef(s, data.subarray(off, off + n))
  }
}

/** Request trailers: a header block with END_STREAM. */
export function sendUpTrailers(us: UpStream, block: Buffer, len: number): void {
  sendHead(us, block, len, true)
}

/** Both sides ended: the stream is done, its slot free. */
function closeStream(us: UpStream): void {
  if (!us.remoteDone || !us.localDone) return
  release(us)
}

/** The owner is done with the stream (response complete, or given up: `reset` sends RST_STREAM CANCEL). */
export function detachUp(us: UpStream, reset: boolean): void {
  if (us.owner === null) return
  if (reset && us.id !== 0 && !(us.remoteDone && us.localDone)) frame32(us.session, FrameType.RstStream, 0, us.id, H2Error.Cancel)
  release(us)
}

function release(us: UpStream): void {
  const s = us.session
  if (us.owner !== null) {
    us.owner = null
    s.up.active--
  }
  if (us.id !== 0) s.streams.delete(us.id)
  else {
    const i = s.waiting.indexOf(us)
    if (i >= 0) s.waiting.splice(i, 1)
  }
  us.outq.length = 0
  if (s.state === SessSt.Going && s.streams.size === 0) s.sock.end()
}

function resetUp(us: UpStream, code: number): void {
  frame32(us.session, FrameType.RstStream, 0, us.id, code)
  fail(us, code)
}

function fail(us: UpStream, code: number): void {
  const owner = us.owner
  release(us)
  if (owner !== null) us.events.failed(us, code, owner)
}

function sessionError(s: H2UpSession, code: number): void {
  goAwayFrame(s, 0, code)
  s.flush()
  s.sock.destroy()
}

function onClose(s: H2UpSession): void {
  const was = s.state
  s.state = SessSt.Closed
  const i = s.up.h2.indexOf(s)
  if (i >= 0) s.up.h2.splice(i, 1)
  for (const us of s.waiting.splice(0)) {
    const owner = us.owner
    if (owner !== null) {
      us.owner = null
      s.up.active--
      us.events.failed(us, -1, owner)
    }
  }
  for (const us of [...s.streams.values()]) fail(us, was === SessSt.Connecting ? -1 : -2)
}

/** Closes sessions with no stream (the sweep, on retire): they are cheap to reopen. */
export function closeIdleSessions(up: Upstream): void {
  for (const s of [...up.h2]) if (s.streams.size === 0 && s.waiting.length === 0) s.sock.destroy()
}

export { writeInt }
