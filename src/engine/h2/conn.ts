// An HTTP/2 client connection (RFC 9113), server side, on the same raw
// sockets as HTTP/1.1 (a TLS socket after ALPN chose h2, or a plain one
// that opened with the h2c preface). Why a frame layer of our own rather
// than node:http2: that module needs a net.Socket (or wraps anything else
// in a JavaScript stream, every read and write going through it), makes a
// Duplex stream, an event emitter and a headers object per request, and
// measured by itself (answering, without proxying) it costs about what
// HAProxy and nginx spend proxying a request; it also keeps the abuse
// bounds below out of reach. Here a stream is one fixed-shape record and
// its request head goes upstream as one string.
//
// This file owns the connection: its input (frames parsed in place from
// the read buffer, partial frames kept), its settings and flow-control
// windows, header blocks (HEADERS + CONTINUATION, decoded by hpack.ts),
// stream creation and removal, GOAWAY, and its timers. Streams
// (stream.ts) are routed by request.ts, their bodies sent upstream by
// body.ts, their responses written by send.ts and relay.ts.
//
// Bounds a client cannot exceed (each a known attack, see docs/http2.md):
//   - concurrent streams: MAX_STREAMS advertised; more are refused
//     (RST_STREAM REFUSED_STREAM), costing the calm budget;
//   - a header block (HEADERS + CONTINUATION) is at most maxHeaderBytes
//     encoded and MAX_BLOCK_FRAMES frames, else GOAWAY ENHANCE_YOUR_CALM
//     (CONTINUATION flood); decoded, it is bounded by maxHeaderBytes too
//     (431), the HPACK table by 4096 bytes;
//   - the calm budget: a token bucket per connection that frames doing no
//     useful work spend (SETTINGS, PING, PRIORITY, empty DATA or
//     CONTINUATION, unknown frames: 1 each) and that streams reset or
//     refused spend (RESET_COST each); past it, GOAWAY ENHANCE_YOUR_CALM
//     (rapid reset, CVE-2023-44487, and control-frame floods). Streams
//     opened and reset within one read never reach an upstream at all;
//   - request body bytes held: the connection window (CONN_WINDOW) bounds
//     them, credited back only as the upstream takes them;
//   - response bytes held: one upstream read per stream at most, its
//     upstream paused while the client's window or socket is full;
//   - output the client does not read (window 0, or its socket): the
//     stream is reset after --idle-timeout without progress.

import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { EngineCtx } from '../context.ts'
import { Timer, connectTimedOut, leaveQueue, responseTimedOut } from '../exchange.ts'
import type { ClientSink, ClientSocket } from '../http1/client-socket.ts'
import { forNode } from '../http1/forward.ts'
import { isShared, own } from '../http1/input.ts'
import type { Listener } from '../listener.ts'
import { discard } from '../upstream/pool.ts'
import { streamData, streamTrailers } from './body.ts'
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
  at,
  done,
  frame32,
  goAwayFrame,
  header,
  reserve,
  schedule,
  sealFor,
} from './frames.ts'
import { HpackDecoder } from './hpack.ts'
import { dispatchStream, onRequestBlock } from './request.ts'
import { drainBlocked, finishStream, resetStream, resumeForClient } from './send.ts'
import { H2Stream, Phase, STREAM_UPPER } from './stream.ts'
import { H2_FRONT } from './front.ts'
import { upTimedOut } from './up-relay.ts'

/** SETTINGS_MAX_CONCURRENT_STREAMS the balancer advertises. */
export const MAX_STREAMS = 100
/** The connection-level receive window: request body bytes a connection may have in the balancer at once. */
export const CONN_WINDOW = 1024 * 1024
/** HPACK dynamic table the balancer lets clients use (the protocol default). */
const TABLE_SIZE = 4096
/** HEADERS plus CONTINUATION frames one header block may take. */
const MAX_BLOCK_FRAMES = 32
/** The calm budget: tokens, and tokens regained per second. */
export const CALM_BURST = 1000
export const CALM_RATE = 100
/** What a stream the client resets before its response ended (or one refused) costs: 100 in a burst, 10 a second. */
export const RESET_COST = 10
/** After our GOAWAY and FIN, how long the client may take to close before the socket is destroyed. */
const LINGER_MS = 5000
/** Credit a window back once this much of it is used (fewer WINDOW_UPDATE frames). */
const CREDIT_STEP = 16384

export const ConnSt = { Open: 0, Closing: 1, Closed: 2 } as const

// What streams reach above them (stream.ts): set here, when the engine loads, before any stream exists.
STREAM_UPPER.front = H2_FRONT
STREAM_UPPER.creditBoth = creditBoth
STREAM_UPPER.forget = forget

export class H2Conn implements Output {
  readonly sock: ClientSocket
  readonly ctx: EngineCtx
  readonly listener: Listener
  readonly clientIp: string
  /** A trusted proxy (--trusted-proxies): its forwarding fields are appended to (http1/forward.ts). */
  readonly trusted: boolean
  /** RFC 7239 `for=` node of clientIp. */
  readonly forNode: string
  readonly tls: boolean
  /** TLS protocol version of the connection (`TLSv1.3`), null on h2c: the access log's `tls`. */
  tlsVersion: string | null = null
  readonly hpack: HpackDecoder
  readonly streams = new Map<number, H2Stream>()
  state: number = ConnSt.Open
  timer: number = Timer.None
  deadline = 0
  buf: Buffer | null = null
  off = 0
  /** Still expecting the client's preface (its magic, then a SETTINGS frame). */
  preface = true
  settingsSeen = false
  /** Highest stream id the client opened. */
  lastStream = 0
  /** GOAWAY sent: streams above lastStream are ignored, the connection closes when none is left. */
  goaway = false
  clientEnded = false
  /** A header block in progress (HEADERS without END_HEADERS): its stream, flags, fragments. */
  hbStream = 0
  hbFlags = 0
  readonly hbParts: Buffer[] = []
  hbBytes = 0
  hbFrames = 0
  /** The client's settings that matter here. */
  peerWindow = DEFAULT_WINDOW
  peerMaxFrame = DEFAULT_MAX_FRAME
  /** Connection-level windows: what the balancer may still send, and what the client may. */
  sendWindow = DEFAULT_WINDOW
  recvWindow = CONN_WINDOW
  credit = 0
  /** Streams with response bytes waiting for the connection window, in order. */
  readonly blocked: H2Stream[] = []
  /** Streams whose upstream is paused until the client's socket drains. */
  readonly paused: H2Stream[] = []
  clientFull = false
  /** Streams whose response is being compressed now (zip-relay.ts; at most ZIP_STREAMS_PER_CONN). */
  zipping = 0
  /** Streams whose head arrived in the current read: dispatched after it, unless reset in it. */
  readonly fresh: H2Stream[] = []
  calm = CALM_BURST
  calmAt = 0
  /** Output (frames.ts). */
  readonly out: Buffer[] = []
  outBytes = 0
  flushQueued = false
  /** A write to the client in this handler kept a reference to an upstream read buffer. */
  refHeld = false

  constructor(sock: ClientSocket, ip: string, listener: Listener, ctx: EngineCtx, tls: boolean) {
    this.sock = sock
    this.ctx = ctx
    this.listener = listener
    this.tls = tls
    this.clientIp = ip.startsWith('::ffff:') ? ip.slice(7) : ip
    this.trusted = ctx.isTrusted(this.clientIp)
    this.forNode = forNode(this.clientIp)
    this.hpack = new HpackDecoder(TABLE_SIZE, ctx.opts.maxHeaderBytes)
    this.calmAt = ctx.now
  }

  flush(): void {
    sealFor(this)
    const out = this.out
    if (out.length === 0 || this.state === ConnSt.Closed) {
      out.length = 0
      this.outBytes = 0
      return
    }
    const sock = this.sock
    let ok: boolean
    if (out.length === 1) {
      ok = sock.write(out[0] as Buffer)
    } else {
      sock.cork()
      for (let i = 0; i < out.length - 1; i++) sock.write(out[i] as Buffer)
      ok = sock.write(out[out.length - 1] as Buffer)
      sock.uncork()
    }
    out.length = 0
    this.outBytes = 0
    if (!ok) this.clientFull = true
    if (this.state === ConnSt.Closing && this.streams.size === 0) closeSoon(this)
  }
}

/** The server's SETTINGS, then the connection window opened to CONN_WINDOW: the first bytes of every connection. */
const SERVER_START = (() => {
  const settings: Array<[number, number]> = [
    [Setting.MaxConcurrentStreams, MAX_STREAMS],
    [Setting.EnablePush, 0],
  ]
  const b = Buffer.alloc(FRAME_HEADER + settings.length * 6 + FRAME_HEADER + 4)
  b.writeUIntBE(settings.length * 6, 0, 3)
  b[3] = FrameType.Settings
  let p = FRAME_HEADER
  for (const [id, v] of settings) {
    b.writeUInt16BE(id, p)
    b.writeUInt32BE(v, p + 2)
    p += 6
  }
  b.writeUIntBE(4, p, 3)
  b[p + 3] = FrameType.WindowUpdate
  b.writeUInt32BE(CONN_WINDOW - DEFAULT_WINDOW, p + FRAME_HEADER)
  return b
})()

/** Raw and TLS client sockets report here (http1/client-socket.ts, tls/socket.ts). */
export const H2_SINK: ClientSink<H2Conn> = { read: onSharedRead, end: onEnd, drain: onDrain, close: onClose }

/** A new HTTP/2 connection; `initial` is input already read (an h2c preface found by the HTTP/1.1 reader). */
export function startH2(sock: ClientSocket, ip: string, listener: Listener, ctx: EngineCtx, tls: boolean, initial: Buffer | null): H2Conn {
  const conn = new H2Conn(sock, ip, listener, ctx, tls)
  begin(conn, initial)
  return conn
}

function begin(conn: H2Conn, initial: Buffer | null): void {
  const ctx = conn.ctx
  conn.listener.add(conn)
  ctx.now = Date.now()
  conn.timer = Timer.Head
  conn.deadline = ctx.now + ctx.opts.headersTimeoutMs
  conn.out.push(SERVER_START)
  conn.outBytes = SERVER_START.length
  schedule(conn)
  if (initial !== null && initial.length > 0) onData(conn, initial)
}

// The fallback's net.Socket (tls.TLSSocket) handlers, found through a field like http1/conn.ts's.
const CONN = Symbol('balancer.h2conn')

function connOf(sock: Socket): H2Conn | null {
  return (sock as unknown as Record<symbol, H2Conn | null>)[CONN] ?? null
}

/** An HTTP/2 client on a net.Socket (a tls.TLSSocket where raw TLS handles are unavailable; a plain one turned h2c). */
export function startH2Socket(sock: Socket, listener: Listener, ctx: EngineCtx, tls: boolean, initial: Buffer | null): void {
  const conn = new H2Conn(sock, sock.remoteAddress ?? '', listener, ctx, tls)
  if (tls) conn.tlsVersion = (sock as TLSSocket).getProtocol()
  ;(sock as unknown as Record<symbol, H2Conn | null>)[CONN] = conn
  sock.on('data', function (this: Socket, chunk: Buffer) {
    const c = connOf(this)
    if (c !== null) onData(c, chunk)
  })
  sock.on('end', function (this: Socket) {
    const c = connOf(this)
    if (c !== null) onEnd(c)
  })
  sock.on('drain', function (this: Socket) {
    const c = connOf(this)
    if (c !== null) onDrain(c)
  })
  sock.on('error', () => {})
  sock.on('close', function (this: Socket) {
    const c = connOf(this)
    if (c === null) return
    ;(this as unknown as Record<symbol, H2Conn | null>)[CONN] = null
    onClose(c)
  })
  begin(conn, initial)
}

function onSharedRead(conn: H2Conn, data: Buffer): void {
  onData(conn, data)
  const b = conn.buf
  if (b !== null && isShared(b)) {
    conn.buf = Buffer.from(b.subarray(conn.off))
    conn.off = 0
  }
}

const PAIR: Buffer[] = [Buffer.alloc(0), Buffer.alloc(0)]
const EMPTY = Buffer.alloc(0)

function onData(conn: H2Conn, chunk: Buffer): void {
  conn.ctx.now = Date.now()
  if (conn.state !== ConnSt.Open) return // closing: input is read and dropped
  const buf0 = conn.buf
  if (buf0 === null || conn.off >= buf0.length) {
    conn.buf = chunk
  } else {
    PAIR[0] = buf0.subarray(conn.off)
    PAIR[1] = chunk
    conn.buf = Buffer.concat(PAIR)
    PAIR[0] = PAIR[1] = EMPTY
  }
  conn.off = 0
  readFrames(conn)
  const fresh = conn.fresh
  if (fresh.length !== 0) {
    for (let i = 0; i < fresh.length; i++) {
      const st = fresh[i] as H2Stream
      if (st.phase === Phase.New && conn.state === ConnSt.Open) dispatchStream(st)
    }
    fresh.length = 0
  }
}

function readFrames(conn: H2Conn): void {
  let buf = conn.buf as Buffer
  let p = conn.off
  const len = buf.length
  if (conn.preface) {
    const n = Math.min(len - p, PREFACE.length)
    if (buf.compare(PREFACE, 0, n, p, p + n) !== 0) return connError(conn, H2Error.ProtocolError)
    if (n < PREFACE.length) return
    p += PREFACE.length
    conn.preface = false
  }
  while (len - p >= FRAME_HEADER) {
    const size = ((buf[p] as number) << 16) | ((buf[p + 1] as number) << 8) | (buf[p + 2] as number)
    if (size > DEFAULT_MAX_FRAME) return connError(conn, H2Error.FrameSizeError)
    if (len - p < FRAME_HEADER + size) break
    const type = buf[p + 3] as number
    const flags = buf[p + 4] as number
    const sid = buf.readUInt32BE(p + 5) & 0x7fffffff
    const s = p + FRAME_HEADER
    p = s + size
    conn.off = p
    if (!conn.settingsSeen && type !== FrameType.Settings) return connError(conn, H2Error.ProtocolError)
    frame(conn, type, flags, sid, buf, s, p)
    if (conn.state !== ConnSt.Open) return
    buf = conn.buf as Buffer
  }
  if (p >= len) {
    conn.buf = null
    conn.off = 0
  } else {
    conn.off = p
  }
}

function frame(conn: H2Conn, type: number, flags: number, sid: number, buf: Buffer, s: number, e: number): void {
  if (conn.hbStream !== 0 && type !== FrameType.Continuation) return connError(conn, H2Error.ProtocolError)
  switch (type) {
    case FrameType.Data:
      return onDataFrame(conn, flags, sid, buf, s, e)
    case FrameType.Headers:
      return onHeaders(conn, flags, sid, buf, s, e)
    case FrameType.Priority:
      if (sid === 0) return connError(conn, H2Error.ProtocolError)
      if (e - s !== 5) return resetId(conn, sid, H2Error.FrameSizeError)
      return spend(conn, 1)
    case FrameType.RstStream:
      return onRst(conn, sid, buf, s, e)
    case FrameType.Settings:
      return onSettings(conn, flags, sid, buf, s, e)
    case FrameType.PushPromise:
      return connError(conn, H2Error.ProtocolError)
    case FrameType.Ping:
      if (sid !== 0) return connError(conn, H2Error.ProtocolError)
      if (e - s !== 8) return connError(conn, H2Error.FrameSizeError)
      if ((flags & Flag.Ack) !== 0) return
      pingAck(conn, buf, s)
      return spend(conn, 1)
    case FrameType.GoAway:
      if (sid !== 0) return connError(conn, H2Error.ProtocolError)
      conn.clientEnded = true // it opens no more streams: close once ours are answered
      if (conn.streams.size === 0) startClosing(conn, H2Error.NoError)
      return
    case FrameType.WindowUpdate:
      return onWindowUpdate(conn, sid, buf, s, e)
    case FrameType.Continuation:
      return onContinuation(conn, flags, sid, buf, s, e)
    default:
      return spend(conn, 1) // unknown frame types are ignored (RFC 9113 §4.1), but not for free
  }
}

/** Spends calm tokens; past the budget the connection ends with ENHANCE_YOUR_CALM. */
export function spend(conn: H2Conn, cost: number): void {
  const now = conn.ctx.now
  const t = Math.min(CALM_BURST, conn.calm + ((now - conn.calmAt) * CALM_RATE) / 1000)
  conn.calmAt = now
  conn.calm = t - cost
  if (conn.calm < 0) connError(conn, H2Error.EnhanceYourCalm)
}

function onSettings(conn: H2Conn, flags: number, sid: number, buf: Buffer, s: number, e: number): void {
  if (sid !== 0) return connError(conn, H2Error.ProtocolError)
  if ((flags & Flag.Ack) !== 0) {
    if (e !== s) connError(conn, H2Error.FrameSizeError)
    return
  }
  if ((e - s) % 6 !== 0) return connError(conn, H2Error.FrameSizeError)
  for (let p = s; p < e; p += 6) {
    const id = buf.readUInt16BE(p)
    const v = buf.readUInt32BE(p + 2)
    switch (id) {
      case Setting.EnablePush:
        if (v > 1) return connError(conn, H2Error.ProtocolError)
        break
      case Setting.InitialWindowSize: {
        if (v > MAX_WINDOW) return connError(conn, H2Error.FlowControlError)
        const delta = v - conn.peerWindow
        conn.peerWindow = v
        for (const st of conn.streams.values()) {
          st.sendWindow += delta
          if (st.sendWindow > MAX_WINDOW) return connError(conn, H2Error.FlowControlError)
        }
        if (delta > 0) for (const st of conn.streams.values()) drainBlocked(st)
        break
      }
      case Setting.MaxFrameSize:
        if (v < DEFAULT_MAX_FRAME || v > 16777215) return connError(conn, H2Error.ProtocolError)
        break // frames of DEFAULT_MAX_FRAME are what every peer takes; larger ones save nothing that matters here
    }
  }
  const b = reserve(conn, FRAME_HEADER)
  done(header(at(), 0, FrameType.Settings, Flag.Ack, 0))
  void b
  if (conn.settingsSeen) spend(conn, 1)
  conn.settingsSeen = true
}

function pingAck(conn: H2Conn, buf: Buffer, s: number): void {
  const out = reserve(conn, FRAME_HEADER + 8)
  const p = header(at(), 8, FrameType.Ping, Flag.Ack, 0)
  buf.copy(out, p, s, s + 8)
  done(p + 8)
}

function onWindowUpdate(conn: H2Conn, sid: number, buf: Buffer, s: number, e: number): void {
  if (e - s !== 4) return connError(conn, H2Error.FrameSizeError)
  const inc = buf.readUInt32BE(s) & 0x7fffffff
  if (sid === 0) {
    if (inc === 0) return connError(conn, H2Error.ProtocolError)
    conn.sendWindow += inc
    if (conn.sendWindow > MAX_WINDOW) return connError(conn, H2Error.FlowControlError)
    const bl = conn.blocked
    while (bl.length !== 0 && conn.sendWindow > 0) {
      const st = bl.shift() as H2Stream
      drainBlocked(st)
    }
    return
  }
  const st = conn.streams.get(sid)
  if (st === undefined) {
    if (sid > conn.lastStream) connError(conn, H2Error.ProtocolError)
    return
  }
  if (inc === 0) return resetStream(st, H2Error.ProtocolError, true)
  st.sendWindow += inc
  if (st.sendWindow > MAX_WINDOW) return resetStream(st, H2Error.FlowControlError, true)
  drainBlocked(st)
}

function onRst(conn: H2Conn, sid: number, buf: Buffer, s: number, e: number): void {
  if (e - s !== 4) return connError(conn, H2Error.FrameSizeError)
  if (sid === 0) return connError(conn, H2Error.ProtocolError)
  const st = conn.streams.get(sid)
  if (st === undefined) {
    if (sid > conn.lastStream) connError(conn, H2Error.ProtocolError)
    return
  }
  void buf
  // A stream the client gives up before its response ended: the rapid-reset budget.
  resetStream(st, H2Error.Cancel, false)
  spend(conn, RESET_COST)
}

function onDataFrame(conn: H2Conn, flags: number, sid: number, buf: Buffer, s: number, e: number): void {
  if (sid === 0) return connError(conn, H2Error.ProtocolError)
  const size = e - s
  if (size > conn.recvWindow) return connError(conn, H2Error.FlowControlError)
  conn.recvWindow -= size
  let ds = s
  let de = e
  if ((flags & Flag.Padded) !== 0) {
    if (size === 0) return connError(conn, H2Error.ProtocolError)
    const pad = buf[s] as number
    ds = s + 1
    de = e - pad
    if (de < ds) return connError(conn, H2Error.ProtocolError)
  }
  const st = conn.streams.get(sid)
  const end = (flags & Flag.EndStream) !== 0
  if (st === undefined || st.reqEnd) {
    creditConn(conn, size)
    if (sid > conn.lastStream) return connError(conn, H2Error.ProtocolError)
    if (st !== undefined) resetStream(st, H2Error.StreamClosed, true)
    return
  }
  if (size > st.recvWindow) return resetStream(st, H2Error.FlowControlError, true)
  st.recvWindow -= size
  // Padding is consumed at once; only the payload waits for the upstream.
  if (de - ds !== size) creditBoth(st, size - (de - ds))
  if (de === ds && !end) spend(conn, 1)
  streamData(st, ds === de ? EMPTY : own(buf.subarray(ds, de)), end)
}

function onHeaders(conn: H2Conn, flags: number, sid: number, buf: Buffer, s: number, e: number): void {
  if (sid === 0 || (sid & 1) === 0) return connError(conn, H2Error.ProtocolError)
  let fs = s
  let fe = e
  if ((flags & Flag.Padded) !== 0) {
    if (e === s) return connError(conn, H2Error.ProtocolError)
    fe = e - (buf[s] as number)
    fs = s + 1
  }
  if ((flags & Flag.Priority) !== 0) fs += 5
  if (fe < fs) return connError(conn, H2Error.ProtocolError)
  if (fs === fe && (flags & Flag.EndHeaders) === 0) spend(conn, 1)
  if ((flags & Flag.EndHeaders) !== 0) return headerBlock(conn, flags, sid, buf, fs, fe)
  conn.hbStream = sid
  conn.hbFlags = flags
  conn.hbParts.push(Buffer.from(buf.subarray(fs, fe)))
  conn.hbBytes = fe - fs
  conn.hbFrames = 1
  if (conn.hbBytes > conn.ctx.opts.maxHeaderBytes) return connError(conn, H2Error.EnhanceYourCalm)
  conn.timer = Timer.Head
  conn.deadline = conn.ctx.now + conn.ctx.opts.headersTimeoutMs
}

function onContinuation(conn: H2Conn, flags: number, sid: number, buf: Buffer, s: number, e: number): void {
  if (conn.hbStream === 0 || sid !== conn.hbStream) return connError(conn, H2Error.ProtocolError)
  conn.hbFrames++
  conn.hbBytes += e - s
  if (e === s && (flags & Flag.EndHeaders) === 0) spend(conn, 1)
  if (conn.hbBytes > conn.ctx.opts.maxHeaderBytes || conn.hbFrames > MAX_BLOCK_FRAMES) return connError(conn, H2Error.EnhanceYourCalm)
  conn.hbParts.push(Buffer.from(buf.subarray(s, e)))
  if ((flags & Flag.EndHeaders) === 0) return
  const block = Buffer.concat(conn.hbParts)
  conn.hbParts.length = 0
  conn.hbStream = 0
  conn.hbBytes = 0
  conn.hbFrames = 0
  idleOrNone(conn)
  headerBlock(conn, conn.hbFlags, sid, block, 0, block.length)
}

/** A complete header block for stream `sid`: a new request, trailers, or one to decode and drop. */
function headerBlock(conn: H2Conn, flags: number, sid: number, buf: Buffer, s: number, e: number): void {
  if (conn.hpack.decode(buf, s, e) !== 0) return connError(conn, H2Error.CompressionError)
  const end = (flags & Flag.EndStream) !== 0
  if (sid <= conn.lastStream) {
    const st = conn.streams.get(sid)
    if (st === undefined) return // a stream already over; its block only updated the table
    if (st.reqEnd || !end) return resetStream(st, H2Error.ProtocolError, true)
    streamTrailers(st)
    return
  }
  conn.lastStream = sid
  if (conn.goaway) return
  if (conn.streams.size >= MAX_STREAMS) {
    frame32(conn, FrameType.RstStream, 0, sid, H2Error.RefusedStream)
    spend(conn, RESET_COST)
    return
  }
  const st = new H2Stream(conn, sid, DEFAULT_WINDOW, conn.peerWindow)
  conn.streams.set(sid, st)
  conn.timer = Timer.None
  st.reqEnd = end
  onRequestBlock(st)
  if (st.phase === Phase.New) conn.fresh.push(st)
}

/** Credits `n` consumed bytes back to the connection window. */
export function creditConn(conn: H2Conn, n: number): void {
  conn.credit += n
  if (conn.credit >= CREDIT_STEP && conn.state === ConnSt.Open) {
    frame32(conn, FrameType.WindowUpdate, 0, 0, conn.credit)
    conn.recvWindow += conn.credit
    conn.credit = 0
  }
}

/** Credits `n` consumed bytes of `st` back to both windows. */
export function creditBoth(st: H2Stream, n: number): void {
  const conn = st.conn
  creditConn(conn, n)
  if (st.reqEnd || st.phase === Phase.Done) return
  st.credit += n
  if (st.credit >= CREDIT_STEP) {
    frame32(conn, FrameType.WindowUpdate, 0, st.id, st.credit)
    st.recvWindow += st.credit
    st.credit = 0
  }
}

/** A stream of ours ended: forget it; the connection idles, or closes when it is going away. */
export function forget(st: H2Stream): void {
  const conn = st.conn
  conn.streams.delete(st.id)
  if (conn.streams.size !== 0) return
  if (conn.goaway || conn.clientEnded || conn.state !== ConnSt.Open) startClosing(conn, H2Error.NoError)
  else idleOrNone(conn)
}

/** With no stream and no block in progress the idle timer runs. */
function idleOrNone(conn: H2Conn): void {
  if (conn.hbStream !== 0) return
  if (conn.streams.size === 0) {
    conn.timer = Timer.Idle
    conn.deadline = conn.ctx.now + conn.ctx.opts.idleTimeoutMs
  } else {
    conn.timer = Timer.None
  }
}

/** A stream error on a stream the client named but the balancer does not hold. */
function resetId(conn: H2Conn, sid: number, code: number): void {
  const st = conn.streams.get(sid)
  if (st !== undefined) resetStream(st, code, true)
  else frame32(conn, FrameType.RstStream, 0, sid, code)
}

/** A connection error (RFC 9113 §5.4.1): GOAWAY with the code, every stream ends, the connection closes. */
export function connError(conn: H2Conn, code: number): void {
  if (conn.state !== ConnSt.Open) return
  goAwayFrame(conn, conn.lastStream, code)
  conn.goaway = true
  conn.state = ConnSt.Closing
  for (const st of [...conn.streams.values()]) resetStream(st, H2Error.Cancel, false)
  conn.buf = null
  conn.off = 0
  conn.fresh.length = 0
  closeSoon(conn)
}

/** Drain (listener removed, shutdown): GOAWAY with the last stream id; streams in flight finish. */
export function drainH2(conn: H2Conn): void {
  if (conn.state !== ConnSt.Open) return
  if (!conn.goaway) {
    goAwayFrame(conn, conn.lastStream, H2Error.NoError)
    conn.goaway = true
  }
  if (conn.streams.size === 0) startClosing(conn, H2Error.NoError)
}

function startClosing(conn: H2Conn, code: number): void {
  if (conn.state !== ConnSt.Open) return
  if (!conn.goaway) {
    goAwayFrame(conn, conn.lastStream, code)
    conn.goaway = true
  }
  conn.state = ConnSt.Closing
  schedule(conn)
}

/** After the pending output: our FIN (TLS: close_notify first), then linger for the client's. */
function closeSoon(conn: H2Conn): void {
  if (conn.state === ConnSt.Closed) return
  conn.state = ConnSt.Closing
  if (conn.flushQueued) return // flush() calls back here once the output is out
  conn.timer = Timer.Linger
  conn.deadline = conn.ctx.now + LINGER_MS
  if (conn.clientEnded) conn.sock.destroySoon()
  else conn.sock.end()
}

function onEnd(conn: H2Conn): void {
  conn.clientEnded = true
  if (conn.state !== ConnSt.Open) {
    conn.sock.destroySoon()
    return
  }
  if (conn.streams.size === 0) startClosing(conn, H2Error.NoError)
}

function onDrain(conn: H2Conn): void {
  conn.ctx.now = Date.now()
  if (!conn.clientFull) return
  conn.clientFull = false
  resumeForClient(conn)
}

function onClose(conn: H2Conn): void {
  conn.state = ConnSt.Closed
  conn.timer = Timer.None
  conn.buf = null
  for (const st of [...conn.streams.values()]) {
    if (st.waitingOn !== null) leaveQueue(st)
    const uc = st.uc
    if (uc !== null) {
      st.uc = null
      discard(uc)
    }
    finishStream(st)
  }
  conn.streams.clear()
  conn.out.length = 0
  conn.listener.remove(conn)
}

/** The engine's sweep: the connection's deadline, then every stream's. */
export function sweepH2(conn: H2Conn, now: number): void {
  conn.ctx.now = now
  if (conn.timer !== Timer.None && conn.deadline <= now) {
    const t = conn.timer
    conn.timer = Timer.None
    if (t === Timer.Linger) conn.sock.destroy()
    else if (t === Timer.Head && conn.hbStream !== 0) connError(conn, H2Error.ProtocolError)
    else if (t === Timer.Head) connError(conn, H2Error.NoError)
    else if (t === Timer.Idle) startClosing(conn, H2Error.NoError)
  }
  if (conn.streams.size === 0) return
  for (const st of conn.streams.values()) {
    if (st.timer === Timer.None || st.deadline > now) continue
    const t = st.timer
    st.timer = Timer.None
    if (st.us !== null && (t === Timer.Connect || t === Timer.Response)) upTimedOut(st, t)
    else if (t === Timer.Connect) connectTimedOut(st)
    else if (t === Timer.Response) responseTimedOut(st)
    else if (t === Timer.Idle) resetStream(st, H2Error.Cancel, true) // the client took nothing for --idle-timeout
  }
}
