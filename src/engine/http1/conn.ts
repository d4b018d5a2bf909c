// The client connection: one fixed-shape record per accepted socket, its
// handlers shared by all sockets, every per-request field reset in place. This file owns
// the connection's life: socket events, reading/pausing, timers, local
// responses, and the step from one request to the next (pipelined requests
// wait in `buf` until the previous response has ended; request.ts turns
// heads into routed requests).
//
//   Head --head parsed--> Upstream --response ended--> Head (keep-alive)
//                            |  \--101--> Tunnel
//                            \--close needed--> Closing (FIN sent, input discarded)

import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { EngineCtx } from '../context.ts'
import type { RouteRuntime } from '../lb/pick.ts'
import type { Listener } from '../listener.ts'
import { customResponse, errorResponse } from '../responses.ts'
import type { UpConn } from '../upstream/pool.ts'
import { discard } from '../upstream/pool.ts'
import type { Upstream } from '../upstream/registry.ts'
import type { UpStream } from '../h2/upstream.ts'
import { ChunkDecoder } from './chunked.ts'
import type { Front } from '../exchange.ts'
import { ResPhase, Timer, arm, connectTimedOut, leaveQueue, responseTimedOut } from '../exchange.ts'
import { forNode } from './forward.ts'
import { Method } from './parse.ts'
import type { HeadScan } from './parse.ts'
import type { ClientSink, ClientSocket, Handle } from './client-socket.ts'
import { RawClientSocket } from './client-socket.ts'
import { isShared } from './input.ts'
import { codeClass } from '../meter.ts'
import { requestEnded } from './ended.ts'
import type { Zip } from '../rules/compress.ts'

export const St = { Head: 0, Upstream: 1, Tunnel: 2, Closing: 3, Closed: 4 } as const
export const BodyKind = { None: 0, Length: 1, Chunked: 2 } as const
export { ResPhase, Timer, arm }
export const Framing = { None: 0, Length: 1, Chunked: 2, Close: 3 } as const

/**
 * What a connection hands on to the modules above it: request.ts turns heads
 * into requests, body.ts pumps a request body, tunnel.ts relays a tunnel, and
 * front.ts answers for the connection's exchange. They import this file and
 * it imports none of them, so the engine's imports stay a DAG; layer.ts fills
 * the table once, when the engine loads (engine/accept.ts imports it), before
 * any connection exists. The HTTP/2 upstream hooks are filled by
 * h2/part.ts, loaded with the first snapshot that has an HTTP/2 upstream
 * (engine/parts.ts): only a request on one (conn.us set) calls them.
 */
export interface Upper {
  front: Front
  readHeads(conn: ClientConn): void
  pumpBody(conn: ClientConn): void
  tunnelFromClient(conn: ClientConn, chunk: Buffer): void
  tunnelClientEnded(conn: ClientConn): void
  tunnelClientClosed(conn: ClientConn): void
  /** The request's body goes on its HTTP/2 upstream stream (h2-upstream.ts). */
  pumpH2Body(conn: ClientConn): void
  /** The request's HTTP/2 upstream stream is given up (h2-upstream.ts). */
  detachH2(conn: ClientConn): void
  /** The client's socket drained: response bytes held back are credited to the HTTP/2 upstream. */
  drainedH2(conn: ClientConn): void
  /** The connect or response deadline passed on an HTTP/2 upstream. */
  timedOutH2(conn: ClientConn, timer: number): void
}

const unwired = (): never => {
  throw new Error('engine/http1/layer.ts was not loaded')
}

export const UPPER: Upper = {
  front: { live: unwired, respond: unwired, respondWith: unwired, syncReading: unwired, pumpBody: unwired, data: unwired, ended: unwired, abort: unwired, attachH2: unwired },
  readHeads: unwired,
  pumpBody: unwired,
  tunnelFromClient: unwired,
  tunnelClientEnded: unwired,
  tunnelClientClosed: unwired,
  pumpH2Body: unwired,
  detachH2: unwired,
  drainedH2: unwired,
  timedOutH2: unwired,
}

/** Input buffered while a request is in flight (next pipelined requests, body before the upstream is ready). */
const PIPELINE_MAX = 64 * 1024
/** After our FIN, how long a client may take to close its side before the socket is destroyed. */
const LINGER_MS = 5000
/** Once draining, how long a connection waiting for a request may still send one (drainConn). */
export const DRAIN_WAIT_MS = 1000

export class ClientConn {
  readonly front: Front = UPPER.front
  readonly sock: ClientSocket
  readonly ctx: EngineCtx
  readonly listener: Listener
  readonly clientIp: string
  /** The connection arrived over TLS: the request's scheme is https. */
  readonly tls: boolean
  /** A trusted proxy (--trusted-proxies): decided once, here, for every request of the connection. */
  readonly trusted: boolean
  /** RFC 7239 `for=` node of clientIp, built once for the Forwarded header. */
  readonly forNode: string
  state: number = St.Head
  /** No request has been read yet (an h2c preface is only looked for then). */
  first = true
  /** Unconsumed input from `off`; null when everything read has been consumed. */
  buf: Buffer | null = null
  off = 0
  inRead = false
  /**
   * Where the search for the end of a head split across reads goes on; null
   * between heads and for a head read whole. The parsed heads themselves are
   * scratch (request.ts, relay.ts), used within the call that parses them.
   */
  scan: HeadScan | null = null
  /** Made by the first chunked request or response (chunkDecoder): most connections never see one, and it stays idle in every keep-alive connection. */
  reqChunk: ChunkDecoder | null = null
  resChunk: ChunkDecoder | null = null
  timer: number = Timer.None
  deadline = 0
  reading = true
  /** The upstream socket's write buffer is full: client reads wait for its 'drain'. */
  upFull = false
  /** The client socket's write buffer is full: upstream reads wait for the client's 'drain'. */
  clientFull = false
  clientEnded = false

  // The request in progress.
  version = 11
  method = 0
  closeAfter = false
  /** The client asked to close after this request (`connection: close`, or HTTP/1.0 without keep-alive). */
  clientClose = false
  upgrade = false
  outHead = ''
  /** outHead still needs `host: <upstream>` and the blank line (HTTP/1.0 without Host). */
  hostless = false
  bodyKind: number = BodyKind.None
  bodyLeft = 0
  /** The whole request body has been read from the client. */
  reqDone = true
  /** Body bytes read so far, kept (up to retryBodyBytes) to resend on a retry. */
  readonly kept: Buffer[] = []
  keptBytes = 0
  /** Every body byte read so far is in `kept`: the request can be sent again. */
  keptAll = true
  route: RouteRuntime | null = null
  readonly tried: Upstream[] = []
  uc: UpConn | null = null
  /** The request's stream on an HTTP/2 upstream (h2-upstream.ts); null otherwise. */
  us: UpStream | null = null
  /** Response bytes from the HTTP/2 upstream written while the client's socket was full: credited upstream when it drains. */
  upHeld = 0
  /** The client sent `TE: trailers`: an HTTP/2 upstream's trailers become the chunked trailer section. */
  teTrailers = false
  /** Queued for a connection to this upstream (Limits.MaxPending); null otherwise. */
  waitingOn: Upstream | null = null
  /** The current attempt has written the request upstream. */
  sent = false
  /** The status to answer if no attempt is left: 503 (nothing connected), 502 (sent, then failed), 504 (timed out). */
  giveUpStatus = 503
  staleRetried = false
  /** Status of the final response sent (ours or the upstream's); 0 while none is. */
  status = 0
  /** performance.now() when the head was parsed. */
  startedAt = 0
  /** Request bytes read from the client (head and body; a tunnel's bytes after it). */
  bytesIn = 0
  /** Response bytes written to the client. */
  bytesOut = 0
  /** X-Request-Id of the request (request-id.ts). */
  requestId = ''
  /** Counts requests on the connection: an asynchronous route rule (rules-gate.ts) resumes only the request it started for. */
  reqSeq = 0
  /** body.MaxRequestBytes of the request's route (rules/gate.ts sets it); -1: no limit. */
  bodyMax = -1
  pageState = 0
  /** Whether this request gets an access log line (the sink is on and the sample drew it); then the strings below are set. */
  logged = false
  logMethod = ''
  logHost = ''
  logTarget = ''
  /** TLS protocol version of the client connection (`TLSv1.3`), null on plain TCP: set when a TLS connection is admitted. */
  tlsVersion: string | null = null

  // The response in progress.
  resPhase: number = ResPhase.Head
  /** A response head split across reads. */
  resPart: Buffer | null = null
  framing: number = Framing.None
  resLeft = 0
  /** Chunked from upstream, de-chunked (close-delimited) for an HTTP/1.0 client. */
  dechunk = false
  /** Close-delimited from upstream, chunked for an HTTP/1.1 client (relay.ts). */
  rechunk = false
  /** The final response head has been written to the client: errors can no longer be answered. */
  resStarted = false
  /** The client socket is corked for the rest of the current upstream read (relay.ts). */
  corked = false
  /** The coding the request negotiated on a route with a compress group (compiler Enc; 0: none). */
  zipAccept = 0
  /** The coder of a compressed response body (http1/zip-relay.ts); null otherwise. */
  zip: Zip<ClientConn> | null = null
  /** The coder's input is full: the upstream waits for its drain. */
  zipFull = false
  /** body.MaxResponseBytes of the response's route (relay.ts onHead); 0: no limit. */
  resMax = 0
  /** Body bytes of a close-delimited response read so far, counted against resMax. */
  resSeen = 0

  constructor(sock: ClientSocket, ip: string, listener: Listener, ctx: EngineCtx, tls: boolean) {
    this.sock = sock
    this.ctx = ctx
    this.listener = listener
    this.tls = tls
    this.clientIp = ip.startsWith('::ffff:') ? ip.slice(7) : ip
    this.trusted = ctx.isTrusted(this.clientIp)
    this.forNode = forNode(this.clientIp)
  }
}

/** The connection's decoder for a chunked message starting now, reset; made on first use and kept. */
export function chunkDecoder(conn: ClientConn, d: ChunkDecoder | null): ChunkDecoder {
  if (d === null) return new ChunkDecoder(conn.ctx.opts.maxHeaderBytes)
  d.reset()
  return d
}

function ignoreError(): void {
  // 'close' always follows and does the cleanup; the error itself is the client's business.
}

/** A read into the shared buffer (input.ts): consumed here, the unconsumed rest copied out. */
function onSharedRead(conn: ClientConn, data: Buffer): void {
  onData(conn, data)
  const b = conn.buf
  if (b !== null && isShared(b)) {
    conn.buf = Buffer.from(b.subarray(conn.off))
    conn.off = 0
  }
}

/** Raw client sockets (client-socket.ts) report here. */
const SINK: ClientSink<ClientConn> = { read: onSharedRead, end: onEnd, drain: onDrain, close: onClose }

// The fallback's net.Socket handlers are shared by all connections (no
// closures per connection) and find theirs through a field on the socket,
// cleared on 'close': a socket Node still holds after that does not keep
// the connection's objects alive.
const CONN = Symbol('balancer.conn')

function connOf(sock: Socket): ClientConn | null {
  return (sock as unknown as Record<symbol, ClientConn | null>)[CONN] ?? null
}

function onSocketData(this: Socket, chunk: Buffer): void {
  const conn = connOf(this)
  if (conn !== null) onData(conn, chunk)
}

function onSocketEnd(this: Socket): void {
  const conn = connOf(this)
  if (conn !== null) onEnd(conn)
}

function onSocketDrain(this: Socket): void {
  const conn = connOf(this)
  if (conn !== null) onDrain(conn)
}

function onSocketClose(this: Socket): void {
  const conn = connOf(this)
  if (conn === null) return
  ;(this as unknown as Record<symbol, ClientConn | null>)[CONN] = null
  onClose(conn)
}

/** A plain client on a raw handle (accept.ts hands it over). */
export function acceptRawHandle(handle: Handle, listener: Listener, ctx: EngineCtx): void {
  const sock = new RawClientSocket(handle, SINK)
  sock.start(admit(sock, sock.remoteAddress(), listener, ctx, false))
}

/** A new connection on `listener`: counted, and given the first-request timeout. */
function admit(sock: ClientSocket, ip: string, listener: Listener, ctx: EngineCtx, tls: boolean): ClientConn {
  const conn = new ClientConn(sock, ip, listener, ctx, tls)
  listener.add(conn)
  ctx.now = Date.now()
  arm(conn, Timer.Idle, ctx.opts.headersTimeoutMs)
  return conn
}

/** A client on a net.Socket (the fallback where raw handles are unavailable), or on a tls.TLSSocket after its handshake. */
export function acceptSocket(sock: Socket, listener: Listener, ctx: EngineCtx, tls = false): void {
  const conn = admit(sock, sock.remoteAddress ?? '', listener, ctx, tls)
  if (tls) conn.tlsVersion = (sock as TLSSocket).getProtocol()
  ;(sock as unknown as Record<symbol, ClientConn | null>)[CONN] = conn
  sock.on('data', onSocketData)
  sock.on('end', onSocketEnd)
  sock.on('drain', onSocketDrain)
  sock.on('error', ignoreError)
  sock.on('close', onSocketClose)
}

/** An HTTP/1.1 client on a raw TLS socket whose handshake just completed (tls/alpn.ts). */
export function acceptTlsSocket(sock: TlsSocketLike, ip: string, listener: Listener, ctx: EngineCtx): void {
  const conn = admit(sock, ip, listener, ctx, true)
  conn.tlsVersion = sock.protocol()
  sock.start(conn, SINK)
}

/** What acceptTlsSocket needs of tls/socket.ts's TlsClientSocket (this module does not import the TLS code). */
export interface TlsSocketLike extends ClientSocket {
  start<O>(owner: O, sink: ClientSink<O>): void
  /** The negotiated TLS version, e.g. `TLSv1.3`. */
  protocol(): string | null
}

/** Pauses or resumes reading the client to match the state (pipelining, backpressure). */
export function syncReading(conn: ClientConn): void {
  let want: boolean
  switch (conn.state) {
    case St.Head:
    case St.Closing:
      want = true
      break
    case St.Upstream:
      // Keep reading (a pipelined request or early body bytes wait in buf) up
      // to a bound; pausing and resuming on every request would cost more.
      want = !conn.upFull && (conn.buf === null || conn.buf.length - conn.off <= PIPELINE_MAX)
      break
    case St.Tunnel:
      want = !conn.upFull
      break
    default:
      return
  }
  if (want === conn.reading) return
  conn.reading = want
  if (want) conn.sock.resume()
  else conn.sock.pause()
}

const PAIR: Buffer[] = [Buffer.alloc(0), Buffer.alloc(0)]

function append(conn: ClientConn, chunk: Buffer): void {
  const buf = conn.buf
  if (buf === null || conn.off >= buf.length) {
    conn.buf = chunk
  } else {
    PAIR[0] = buf.subarray(conn.off)
    PAIR[1] = chunk
    conn.buf = Buffer.concat(PAIR)
    PAIR[0] = PAIR[1] = EMPTY
  }
  conn.off = 0
}
const EMPTY = Buffer.alloc(0)

function onData(conn: ClientConn, chunk: Buffer): void {
  conn.ctx.now = Date.now()
  switch (conn.state) {
    case St.Head:
      append(conn, chunk)
      UPPER.readHeads(conn)
      return
    case St.Upstream:
      append(conn, chunk)
      if (conn.sent && !conn.reqDone) UPPER.pumpBody(conn)
      else syncReading(conn)
      return
    case St.Tunnel:
      UPPER.tunnelFromClient(conn, chunk)
      return
    default:
      return // Closing: input after our FIN is discarded
  }
}

/** A rejected head: error with `connection: close`, then close. Always false (for readOne). */
export function reject(conn: ClientConn, status: number): false {
  const codes = conn.listener.refused
  codes[codeClass(status)] = (codes[codeClass(status)] as number) + 1
  conn.sock.write(errorResponse(status, true))
  endConn(conn)
  return false
}

/**
 * A response of our own to the current request. Keep-alive when the request
 * was read completely and the client (HTTP/1.1) allows it; otherwise close.
 */
export function respond(conn: ClientConn, status: number): void {
  respondWith(conn, status, null, null)
}

/** respond() with fields and a body of the caller's (route rules); both null: the pre-rendered response. */
export function respondWith(conn: ClientConn, status: number, fields: string | null, body: Buffer | null): void {
  dropUpstream(conn)
  if (!conn.reqDone || conn.version === 10) conn.closeAfter = true
  const res = withHsts(
    conn,
    fields === null ? errorResponse(status, conn.closeAfter, conn.method === Method.Head) : customResponse(status, conn.closeAfter, fields, body ?? EMPTY, conn.method === Method.Head),
  )
  conn.status = status
  conn.bytesOut += res.length
  conn.sock.write(res)
  finishRequest(conn)
}

/**
 * A 308 to `location` (https for a route that takes https only), with the
 * same keep-alive rule as respond(); built per redirect, which is not a hot
 * path.
 */
export function redirect(conn: ClientConn, location: string): void {
  const head = `HTTP/1.1 308 Permanent Redirect\r\nlocation: ${location}\r\ncontent-length: 0\r\n`
  respondWhole(conn, 308, Buffer.from(`${head}\r\n`, 'latin1'), Buffer.from(`${head}connection: close\r\n\r\n`, 'latin1'))
}

/** A whole response of our own, in its keep-alive and closing forms (same rule as respond()). */
export function respondWhole(conn: ClientConn, status: number, keep: Buffer, close: Buffer): void {
  dropUpstream(conn)
  if (!conn.reqDone || conn.version === 10) conn.closeAfter = true
  const res = withHsts(conn, conn.closeAfter ? close : keep)
  conn.status = status
  conn.bytesOut += res.length
  conn.sock.write(res)
  finishRequest(conn)
}

/**
 * Over TLS, the route's Strict-Transport-Security goes on the balancer's own
 * answers (errors, error pages, rule answers) as on relayed ones; inserted
 * after the status line of the whole response. Only when the route has one.
 */
function withHsts(conn: ClientConn, res: Buffer): Buffer {
  const hsts = conn.tls && conn.route !== null ? conn.route.hsts : null
  if (hsts === null) return res
  const eol = res.indexOf(CRLF) + 2
  return Buffer.concat([res.subarray(0, eol), hsts, res.subarray(eol)])
}
const CRLF = Buffer.from('\r\n', 'latin1')

/** The request's upstream connection (HTTP/1.1) or stream (HTTP/2), if any, is given up. */
function dropUpstream(conn: ClientConn): void {
  const uc = conn.uc
  if (uc !== null) {
    conn.uc = null
    discard(uc)
  }
  if (conn.us !== null) UPPER.detachH2(conn)
}

/** The current request is over (response written or abandoned): next request, or close. */
export function finishRequest(conn: ClientConn): void {
  if (conn.state !== St.Upstream) return
  const ctx = conn.ctx
  ctx.inFlight--
  requestEnded(conn)
  conn.state = St.Head
  conn.route = null
  conn.outHead = ''
  // Logged and sent: an idle connection keeps no string of its last request.
  conn.requestId = ''
  // Each length setter is a runtime call, even on an empty array.
  if (conn.kept.length !== 0) conn.kept.length = 0
  if (conn.tried.length !== 0) conn.tried.length = 0
  conn.resPart = null
  conn.sent = false
  conn.upFull = false
  if (conn.closeAfter) {
    endConn(conn)
    return
  }
  arm(conn, Timer.Idle, ctx.opts.idleTimeoutMs)
  // Draining, after a response whose head went out before the drain began
  // (without `connection: close`): its client may reuse the connection at
  // once, so it gets DRAIN_WAIT_MS for one more request, as an idle one does.
  if (ctx.closing || conn.listener.draining) conn.deadline = Math.min(conn.deadline, ctx.now + DRAIN_WAIT_MS)
  syncReading(conn)
  if (conn.buf !== null) UPPER.readHeads(conn)
  // The client sent its FIN: every complete request it sent before is answered, then the connection closes.
  if (conn.clientEnded && conn.state === St.Head) endConn(conn)
}

/**
 * Graceful close. When the client may still send (a keep-alive client the
 * proxy closes on, a request body not read to its end): FIN after pending
 * writes, then input is read and discarded until the client closes or
 * LINGER_MS pass, since closing a socket with unread input makes the kernel
 * reset it and the client can lose the response (RFC 9112 §9.6). When it
 * cannot (it sent its FIN, or asked to close and all it sent is read), the
 * socket closes once pending writes are done.
 */
export function endConn(conn: ClientConn): void {
  if (conn.state >= St.Closing) return
  if (conn.state === St.Upstream) {
    conn.ctx.inFlight--
    requestEnded(conn)
  }
  dropZip(conn)
  dropUpstream(conn)
  const done = conn.clientEnded || (conn.clientClose && conn.reqDone && conn.buf === null)
  conn.state = St.Closing
  conn.buf = null
  conn.off = 0
  arm(conn, Timer.Linger, LINGER_MS)
  if (done) {
    conn.sock.destroySoon()
    return
  }
  conn.sock.end()
  syncReading(conn)
}

/**
 * Drain (listener removed, shutdown): a connection in a request closes after
 * its response when that response says `connection: close` (its head is
 * not sent yet); one whose head went out without it is treated as idle once
 * the response ends. One waiting for a request (just accepted, or idle between
 * keep-alive requests) closes DRAIN_WAIT_MS later, or after the response to
 * a request it sends meanwhile (with `connection: close`): its client may be
 * sending one right now, which an immediate close would lose (the request of
 * a connection accepted a moment before a SIGTERM is typically still unread).
 */
export function drainConn(conn: ClientConn): void {
  // A response head already sent without `connection: close` told the client
  // it may send another request: finishRequest gives it DRAIN_WAIT_MS to,
  // instead of closing under a request the client may be sending already.
  if (conn.state === St.Upstream && conn.status !== 0 && !conn.closeAfter) return
  conn.closeAfter = true
  if (conn.state !== St.Head || conn.buf !== null) return
  if (conn.timer !== Timer.Idle) {
    endConn(conn)
    return
  }
  const ctx = conn.ctx
  ctx.now = Date.now()
  conn.deadline = Math.min(conn.deadline, ctx.now + DRAIN_WAIT_MS)
}

/** Called by the engine's sweep when conn.deadline has passed. */
export function onDeadline(conn: ClientConn): void {
  const t = conn.timer
  conn.timer = Timer.None
  if (conn.us !== null && (t === Timer.Connect || t === Timer.Response)) return UPPER.timedOutH2(conn, t)
  switch (t) {
    case Timer.Idle:
      endConn(conn)
      return
    case Timer.Head:
      reject(conn, 408)
      return
    case Timer.Connect:
      connectTimedOut(conn)
      return
    case Timer.Response:
      responseTimedOut(conn)
      return
    case Timer.Linger:
      conn.sock.destroy()
      return
  }
}

function onEnd(conn: ClientConn): void {
  conn.clientEnded = true
  switch (conn.state) {
    case St.Head:
      endConn(conn)
      return
    case St.Upstream:
      // A complete request still gets its response, and so do complete
      // requests pipelined behind it (finishRequest). A body still being sent
      // may be complete in buf already: pumpBody finds out once it is consumed.
      if (conn.buf === null) {
        conn.closeAfter = true
        if (!conn.reqDone && conn.sent) conn.sock.destroy()
      }
      return
    case St.Tunnel:
      UPPER.tunnelClientEnded(conn)
      return
  }
}

/** A compressed response that will not complete: its coder is freed. */
function dropZip(conn: ClientConn): void {
  const zip = conn.zip
  if (zip === null) return
  conn.zip = null
  conn.zipFull = false
  zip.destroy()
}

function onDrain(conn: ClientConn): void {
  if (!conn.clientFull) return
  conn.clientFull = false
  const zip = conn.zip
  if (zip !== null) zip.resume()
  const uc = conn.uc
  if (uc !== null && !conn.zipFull) uc.sock.resume()
  if (conn.us !== null) UPPER.drainedH2(conn)
  if (conn.timer === Timer.Response) conn.deadline = conn.ctx.now + conn.ctx.opts.responseTimeoutMs
}

function onClose(conn: ClientConn): void {
  const st = conn.state
  conn.state = St.Closed
  conn.timer = Timer.None
  conn.buf = null
  if (st === St.Upstream) {
    conn.ctx.inFlight--
    requestEnded(conn)
  }
  if (conn.waitingOn !== null) leaveQueue(conn)
  if (st === St.Tunnel) UPPER.tunnelClientClosed(conn)
  dropZip(conn)
  dropUpstream(conn)
  conn.listener.remove(conn)
}
