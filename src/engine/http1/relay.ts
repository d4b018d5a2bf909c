// Response relay: upstream bytes to the client, head first (interim 1xx
// responses relayed as they come), then the body framed exactly as the
// upstream framed it: Content-Length counted, chunked validated and forwarded
// raw, or read-until-close. A close-delimited body goes to an HTTP/1.1
// client chunked (`rechunk`), so the client keeps its connection; to an
// HTTP/1.0 client it stays close-delimited, and for an HTTP/1.0 client a
// chunked body is de-chunked and close-delimited.
//
// The status line is the balancer's: an HTTP/1.0 upstream's `HTTP/1.0`
// becomes `HTTP/1.1` (RFC 9110 §6.2: a server sends its own version), by
// rewriting that one byte in the read buffer before anything is copied.
//
// A head with no hop-by-hop field, to a client that needs no Connection
// header, is written as the received bytes; otherwise it is rebuilt
// (forward.ts). The upstream connection goes back to the pool only after a
// complete, correctly framed response to a completely sent request.
// A final response whose status is in the route's retry.statuses is first
// offered to exchange.ts (retryOnStatus): it may be dropped, unsent, and the
// request sent to another upstream.

import { succeeded, responseFailed } from '../upstream/passive.ts'
import type { Exchange } from '../exchange.ts'
import { passiveOf, retryOnStatus } from '../exchange.ts'
import type { UpConn } from '../upstream/pool.ts'
import { discard, release } from '../upstream/pool.ts'
import { Chunk, advance } from './chunked.ts'
import type { ClientConn } from './conn.ts'
import { Framing, ResPhase, St, Timer, arm, chunkDecoder, finishRequest, respond } from './conn.ts'
import { Conn, responseHead, withRequestId } from './forward.ts'
import { Method, ResponseHead, parseResponseHead } from './parse.ts'
import { startTunnel, tunnelFromUpstream } from './tunnel.ts'
import { errorPage } from '../rules/error-page.ts'
import { TOO_LARGE, zipBody, zipHead } from './zip-relay.ts'

const PAIR: Buffer[] = [Buffer.alloc(0), Buffer.alloc(0)]
const EMPTY = Buffer.alloc(0)
/**
 * Every connection's response head is parsed here: it is read, relayed and
 * judged within one call (onHead), as in h2/relay.ts, so an idle keep-alive
 * connection holds no head (240 bytes each).
 */
const RES = new ResponseHead()

function toClient(conn: ClientConn, uc: UpConn, data: Buffer): void {
  conn.bytesOut += data.length
  if (!conn.sock.write(data) && !conn.clientFull) {
    conn.clientFull = true
    uc.sock.pause()
  }
}

/** Bytes after a head in the same read will be written too: gather them into one writev. */
function corkIfMore(conn: ClientConn, buf: Buffer, next: number): void {
  if (next < buf.length && !conn.corked) {
    conn.corked = true
    conn.sock.cork()
  }
}

/**
 * A body past the route's body.MaxResponseBytes, its head already sent:
 * nothing more of it goes out, and the client's connection is reset (not
 * closed with a FIN, which would end a close-delimited body as if complete).
 */
function cutResponse(conn: ClientConn, uc: UpConn): void {
  conn.uc = null
  discard(uc)
  conn.sock.resetAndDestroy()
}

/** A response that breaks the rules (bad head, bad chunk, 101 nobody asked for): drop it and the connection. */
function badResponse(conn: ClientConn, uc: UpConn): void {
  conn.uc = null
  discard(uc)
  responseFailed(uc.up, passiveOf(conn), conn.ctx.now, conn.ctx.opts.log, 'bad response')
  if (!conn.resStarted) respond(conn, 502)
  else conn.sock.destroy()
}

export function onUpstreamData(conn: ClientConn, uc: UpConn, chunk: Buffer): void {
  const ctx = conn.ctx
  ctx.now = Date.now()
  if (conn.state === St.Tunnel) return tunnelFromUpstream(conn, uc, chunk)
  if (conn.state !== St.Upstream) return discard(uc)
  uc.gotBytes = true
  conn.deadline = ctx.now + ctx.opts.responseTimeoutMs
  let buf = chunk
  let pos = 0
  while (conn.resPhase === ResPhase.Head) {
    if (conn.resPart !== null) {
      PAIR[0] = conn.resPart
      PAIR[1] = pos === 0 ? buf : buf.subarray(pos)
      buf = Buffer.concat(PAIR)
      PAIR[0] = PAIR[1] = EMPTY
      pos = 0
      conn.resPart = null
    }
    const end = parseResponseHead(buf, pos, RES)
    if (end === 0) {
      if (buf.length - pos > ctx.opts.maxHeaderBytes) return uncorkThen(conn, badResponse, uc)
      conn.resPart = Buffer.from(pos === 0 ? buf : buf.subarray(pos)) // a copy: buf is the connection's read buffer
      return uncorkThen(conn, null, uc)
    }
    if (end < 0 || end - pos > ctx.opts.maxHeaderBytes) {
      return uncorkThen(conn, badResponse, uc)
    }
    const next = onHead(conn, uc, buf, pos, end)
    if (next < 0) return uncorkThen(conn, null, uc)
    pos = next
    if (pos >= buf.length && conn.resPhase === ResPhase.Head) return uncorkThen(conn, null, uc)
  }
  if (conn.resPhase === ResPhase.Body && pos < buf.length) {
    pos = body(conn, uc, buf, pos)
    if (pos === TOO_LARGE) return uncorkThen(conn, cutResponse, uc)
    if (pos < 0) return uncorkThen(conn, badResponse, uc)
  }
  uncorkThen(conn, null, uc)
  if (conn.resPhase === ResPhase.Done) {
    if (pos < buf.length) uc.reusable = false // bytes after the response: that connection is out of step
    completeResponse(conn)
  } else if (conn.zip !== null && conn.resPhase === ResPhase.Body) conn.zip.flush() // what this read brought reaches the client now
}

function uncorkThen(conn: ClientConn, then: ((c: ClientConn, u: UpConn) => void) | null, uc: UpConn): void {
  if (conn.corked) {
    conn.corked = false
    conn.sock.uncork()
  }
  if (then !== null) then(conn, uc)
}

function retriable(statuses: readonly number[], status: number): boolean {
  for (let i = 0; i < statuses.length; i++) if (statuses[i] === status) return true
  return false
}

/** How the body of the final response head `r` to a `method` request is framed (RFC 9112 §6.3). */
export function framingOf(method: number, r: ResponseHead): number {
  const status = r.status
  if (method === Method.Head || status === 204 || status === 304) return Framing.None
  if (r.teCount > 0) return r.teChunkedLast ? Framing.Chunked : Framing.Close
  if (r.clCount === 1) return r.contentLength === 0 ? Framing.None : Framing.Length
  return Framing.Close
}

/**
 * What a final response head from an HTTP/1.1 upstream means before it is
 * relayed, whatever the client's protocol: the upstream's passive health,
 * and a retry when its status is in the route's retry.statuses (true: the
 * request went on to another upstream; `headOnly`: nothing follows the
 * head in what was read).
 */
export function finalHead(ex: Exchange, uc: UpConn, r: ResponseHead, framing: number, headOnly: boolean): boolean {
  const status = r.status
  const rt = ex.route
  if (status >= 500 && rt !== null && rt.plan.passive.on5xx) responseFailed(uc.up, rt.plan.passive, ex.ctx.now, ex.ctx.opts.log, '5xx')
  else succeeded(uc.up)
  if (rt === null || !retriable(rt.plan.retry.statuses, status)) return false
  // Kept only when nothing of this response is left to read and the upstream keeps the connection.
  const idle = framing === Framing.None && headOnly && uc.reusable && (r.version === 11 ? !r.connClose : r.connKeepAlive && !r.connClose)
  return retryOnStatus(ex, uc, idle)
}

/**
 * Largest body copied behind a rebuilt head so both go out in one write
 * (Buffer.allocUnsafe takes anything under 4 KiB from its shared pool).
 */
const INLINE_MAX = 2048

/**
 * Handles a parsed head ending at `end`; returns where the next bytes start
 * (after a body sent along with the head), or -1 when the exchange left the
 * normal path (tunnel, error, retry).
 */
function onHead(conn: ClientConn, uc: UpConn, buf: Buffer, start: number, end: number): number {
  const r = RES
  const status = r.status
  if (r.version !== 11) buf[start + 7] = 0x31 // `HTTP/1.0` -> `HTTP/1.1`: the read buffer is ours, and the line is relayed from it
  if (status < 200) {
    if (status === 101) {
      if (!conn.upgrade) {
        badResponse(conn, uc)
        return -1
      }
      succeeded(uc.up)
      conn.status = 101
      toClient(conn, uc, responseHead(buf, r, Conn.Upgrade, false, true, 0, 0, r.ridCount === 0 ? conn.requestId : ''))
      startTunnel(conn, uc, buf, end)
      return -1
    }
    // Interim responses (100, 103, ...) go to HTTP/1.1 clients only (RFC 9110 §15.2).
    if (conn.version === 11) {
      corkIfMore(conn, buf, end)
      if (r.hopCount === 0) toClient(conn, uc, buf.subarray(start, end))
      else toClient(conn, uc, responseHead(buf, r, Conn.None, false, false, 0, 0, ''))
    }
    return end
  }
  const framing = framingOf(conn.method, r)
  if (finalHead(conn, uc, r, framing, end === buf.length)) return -1
  // The route's error page answers instead (nothing of this response has gone to the client).
  if (conn.route !== null && conn.route.plan.rules !== null && errorPage(conn, status)) return -1
  const rt = conn.route
  // body.MaxResponseBytes: a declared length over it is answered 502 before anything of it is sent.
  const resMax = rt === null || rt.plan.rules === null ? 0 : rt.plan.rules.maxResponseBytes
  conn.resMax = resMax
  if (resMax !== 0) {
    conn.resSeen = 0
    if (framing === Framing.Length && r.contentLength > resMax) {
      conn.uc = null
      discard(uc)
      conn.front.respond(conn, 502)
      return -1
    }
  }
  // The route's compress group: the head's edits, and conn.zip when the body goes through a coder (zip-relay.ts).
  const zipEdits = rt !== null && rt.plan.rules !== null && rt.plan.rules.compress !== null ? zipHead(conn, buf, r, framing) : null
  const zipped = conn.zip !== null
  // A body delimited by the upstream's close goes to an HTTP/1.1 client chunked, keeping its connection.
  const rechunk = framing === Framing.Close && conn.version === 11 && r.teCount === 0 && !zipped
  let close = conn.closeAfter || conn.ctx.closing || conn.listener.draining || (framing === Framing.Close && !rechunk && !zipped) || (zipped && conn.version === 10)
  if (framing === Framing.Chunked && conn.version === 10 && !zipped) {
    if (r.teOther) {
      badResponse(conn, uc) // a coding an HTTP/1.0 client cannot be told about once de-chunked
      return -1
    }
    conn.dechunk = true
    close = true
  }
  if (!conn.reqDone) {
    // Answered before the request body was read: the rest of it cannot be skipped safely.
    close = true
    uc.reusable = false
  }
  if (framing === Framing.Close || (r.version === 11 ? r.connClose : !r.connKeepAlive || r.connClose)) uc.reusable = false
  conn.closeAfter = close
  conn.status = status
  conn.rechunk = rechunk
  // The client gets the request id back, unless the upstream's response carries one.
  const rid = r.ridCount === 0 ? conn.requestId : ''
  const chunks = rechunk || (zipped && conn.version === 11)
  const mode = chunks ? (close ? Conn.ChunkedClose : Conn.Chunked) : close ? Conn.Close : conn.version === 10 ? Conn.KeepAlive : Conn.None
  // Over TLS, the route's Strict-Transport-Security is added.
  const hsts = conn.tls && conn.route !== null ? conn.route.hsts : null
  // A whole Content-Length body that came with the head goes out in the same write.
  let inline = framing === Framing.Length && r.contentLength <= buf.length - end && !zipped ? r.contentLength : 0
  const edits = zipEdits !== null ? zipEdits : rt === null || rt.plan.rules === null ? null : rt.plan.rules.response
  if (mode === Conn.None && r.hopCount === 0 && edits === null && hsts === null) {
    if (rid === '') {
      corkIfMore(conn, buf, end + inline)
      toClient(conn, uc, buf.subarray(start, end + inline))
    } else {
      if (inline > INLINE_MAX) inline = 0
      corkIfMore(conn, buf, end + inline)
      toClient(conn, uc, withRequestId(buf, start, end, end + inline, rid))
    }
  } else {
    if (inline > INLINE_MAX) inline = 0
    corkIfMore(conn, buf, end + inline)
    toClient(conn, uc, responseHead(buf, r, mode, framing === Framing.Chunked && !conn.dechunk && !zipped, false, end, inline, rid, edits, hsts, zipped))
  }
  conn.resStarted = true
  conn.framing = framing
  if (framing === Framing.None || inline !== 0) conn.resPhase = ResPhase.Done
  else {
    conn.resPhase = ResPhase.Body
    if (framing === Framing.Length) conn.resLeft = r.contentLength
    else if (framing === Framing.Chunked) conn.resChunk = chunkDecoder(conn, conn.resChunk)
  }
  return end + inline
}

/** Relays body bytes from pos; returns where the response ended (or buf.length), -1 on a framing error. */
function body(conn: ClientConn, uc: UpConn, buf: Buffer, pos: number): number {
  const zip = conn.zip
  if (zip !== null) return zipBody(conn, uc, zip, buf, pos)
  const len = buf.length
  switch (conn.framing) {
    case Framing.Length: {
      const n = Math.min(conn.resLeft, len - pos)
      toClient(conn, uc, pos === 0 && n === len ? buf : buf.subarray(pos, pos + n))
      conn.resLeft -= n
      if (conn.resLeft === 0) conn.resPhase = ResPhase.Done
      return pos + n
    }
    case Framing.Chunked: {
      const d = conn.resChunk
      if (d === null) return -1 // not reached: a chunked response made it above
      if (!conn.dechunk) {
        const p = advance(d, buf, pos, len, false)
        if (conn.resMax !== 0 && d.total > conn.resMax) return TOO_LARGE
        if (p > pos) toClient(conn, uc, pos === 0 && p === len ? buf : buf.subarray(pos, p))
        if (d.state === Chunk.Error) return -1
        if (d.state === Chunk.Done) conn.resPhase = ResPhase.Done
        return p
      }
      while (pos < len) {
        const p = advance(d, buf, pos, len, true)
        if (d.state === Chunk.Error) return -1
        if (conn.resMax !== 0 && d.total > conn.resMax) return TOO_LARGE
        if (d.lastWasData && p > pos) toClient(conn, uc, buf.subarray(pos, p))
        pos = p
        if (d.state === Chunk.Done) {
          conn.resPhase = ResPhase.Done
          break
        }
      }
      return pos
    }
    default: {
      const data = pos === 0 ? buf : buf.subarray(pos)
      if (conn.resMax !== 0 && (conn.resSeen += data.length) > conn.resMax) return TOO_LARGE
      if (!conn.rechunk) {
        toClient(conn, uc, data)
        return len
      }
      if (!conn.corked) {
        conn.corked = true
        conn.sock.cork()
      }
      toClient(conn, uc, Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'))
      toClient(conn, uc, data)
      toClient(conn, uc, CRLF)
      return len
    }
  }
}

const CRLF = Buffer.from('\r\n', 'latin1')
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1')

/** The response has been relayed completely: pool or drop the upstream connection, then the next request. */
export function completeResponse(conn: ClientConn): void {
  const uc = conn.uc
  const ctx = conn.ctx
  if (conn.rechunk) {
    // The upstream closed: the end of the body it delimited so.
    conn.rechunk = false
    conn.bytesOut += LAST_CHUNK.length
    conn.sock.write(LAST_CHUNK)
  }
  conn.uc = null
  if (uc !== null) {
    if (conn.reqDone && uc.reusable) release(uc, ctx.now, ctx.opts.upstreamIdleMs, ctx.opts.maxIdlePerUpstream, ctx.closing)
    else discard(uc)
  }
  const zip = conn.zip
  // A compressed body: the request ends when the coder's last bytes are out
  // (zip-relay.ts). Meanwhile a client that takes nothing for
  // responseTimeoutMs is cut, as it would be with the upstream paused for it.
  if (zip !== null) {
    conn.zipFull = false
    arm(conn, Timer.Linger, ctx.opts.responseTimeoutMs)
    return zip.end()
  }
  finishRequest(conn)
}
