// An HTTP/1.1 client's request relayed to an HTTP/2 upstream (Protocol
// "h2c" or "h2"): the request becomes a stream on the upstream's
// multiplexed connections (../h2/upstream.ts), its response an HTTP/1.1
// response.
//
// Request: the head the connection would send an HTTP/1.1 upstream (so the
// forwarding fields and route rules are the same), as a header block: Host
// becomes :authority, connection-specific fields are dropped (RFC 9113
// §8.2.2), `te: trailers` is sent when the client sent it. The body goes
// as DATA: a Content-Length body as it comes, a chunked one de-chunked (its
// trailer section dropped), under the upstream's flow control: while the
// stream's window is shut the client is not read, so at most one read of
// the body waits in the balancer.
//
// Response: the balancer's status line (HTTP/1.1), the fields minus
// pseudo-fields, with the route's response edits, x-request-id and HSTS as
// for an HTTP/1.1 upstream. A body with a content-length goes as it is;
// without one, chunked to an HTTP/1.1 client (its trailers, such as
// grpc-status, become the chunked trailer section when the client sent
// `TE: trailers`, and are dropped otherwise) and read until close for an
// HTTP/1.0 client. The upstream's window is given back only as the client's
// socket takes the data.
//
// Failures are the exchange's (../exchange.ts streamFailed), as for an
// HTTP/2 client: retried where the request can be sent again, 502 or 504
// before the response head, the client connection closed mid-body after it.
// An Upgrade request (WebSocket) cannot be carried on an HTTP/2 stream
// here: 501. CONNECT is refused before routing (501).

import { StreamFail, Timer, arm, streamFailed } from '../exchange.ts'
import { H2Error } from '../h2/frames.ts'
import { blockScratch } from '../h2/send.ts'
import { DROP, headBlock } from '../h2/up-relay.ts'
import type { UpStream, UpStreamEvents } from '../h2/upstream.ts'
import { FULL, creditUp, detachUp, drainUp, openStream, sendHead, sendUpData } from '../h2/upstream.ts'
import { errorPage } from '../rules/error-page.ts'
import { drops } from '../rules/request.ts'
import { responseFailed, succeeded } from '../upstream/passive.ts'
import type { Upstream } from '../upstream/registry.ts'
import { passiveOf } from '../exchange.ts'
import { Chunk, advance } from './chunked.ts'
import type { ClientConn } from './conn.ts'
import { BodyKind, Framing, St, finishRequest, respond, syncReading } from './conn.ts'
import { own } from './input.ts'
import { Method } from './parse.ts'

const EMPTY = Buffer.alloc(0)
const CRLF = Buffer.from('\r\n', 'latin1')

/** Sends the connection's current request on a stream of `up` (the exchange picked it). */
export function attachH2(conn: ClientConn, up: Upstream): void {
  if (conn.upgrade) return respond(conn, 501)
  conn.sent = false
  conn.upFull = false
  arm(conn, Timer.Connect, conn.ctx.opts.connectTimeoutMs)
  // On a session already up, ready() runs before openStream returns.
  const us = openStream(up, conn.ctx, conn, EVENTS)
  if (us.owner === conn) conn.us = us
}

/** The connection gives its stream up (a response of its own, the client gone): RST_STREAM CANCEL unless it ended. */
export function detachH2(conn: ClientConn): void {
  const us = conn.us
  if (us === null) return
  conn.us = null
  detachUp(us, true)
}

/** The client's socket took what was written: the upstream may send as much more. */
export function drainedH2(conn: ClientConn): void {
  const us = conn.us
  if (us === null || conn.upHeld === 0) return
  const n = conn.upHeld
  conn.upHeld = 0
  creditUp(us, n)
}

/** The connect or response deadline passed while on an HTTP/2 upstream. */
export function timedOutH2(conn: ClientConn, timer: number): void {
  const us = conn.us
  if (us === null) return
  conn.us = null
  detachUp(us, true)
  const up = us.session.up
  if (timer === Timer.Connect) return streamFailed(conn, up, StreamFail.Connect, us.sentBody, 'connect timeout')
  responseFailed(up, passiveOf(conn), conn.ctx.now, conn.ctx.opts.log, 'response timeout')
  if (conn.resStarted) return conn.sock.destroy()
  conn.giveUpStatus = 504
  conn.front.respond(conn, 504)
}

/** Body bytes taken from the client for the stream: they cannot be sent again, so no retry may need them. */
function sendPart(conn: ClientConn, us: UpStream, part: Buffer, end: boolean): void {
  us.sentBody = true
  if (conn.keptAll) {
    conn.keptAll = false
    conn.kept.length = 0
    conn.keptBytes = 0
  }
  sendUpData(us, part, end)
}

/** Sends what the client's buffer holds of the body, as DATA, while the stream's window is open. */
export function pumpH2Body(conn: ClientConn): void {
  const us = conn.us
  const buf = conn.buf
  if (us === null || !conn.sent || conn.reqDone || us.outq.length !== 0) return syncReading(conn)
  if (buf === null) {
    if (conn.clientEnded)
      conn.sock.destroy() // the body can never complete
    else syncReading(conn)
    return
  }
  const start = conn.off
  const len = buf.length
  let pos = start
  if (conn.bodyKind === BodyKind.Length) {
    const n = Math.min(conn.bodyLeft, len - start)
    conn.bodyLeft -= n
    if (conn.bodyLeft === 0) conn.reqDone = true
    if (n > 0) sendPart(conn, us, own(buf.subarray(start, start + n)), conn.reqDone)
    pos = start + n
  } else {
    const d = conn.reqChunk
    if (d === null) return bodyRefused(conn, 400) // not reached: a chunked request made it (request.ts)
    while (pos < len && !conn.reqDone) {
      const p = advance(d, buf, pos, len, true)
      if (d.state === Chunk.Error) return bodyRefused(conn, 400)
      if (conn.bodyMax >= 0 && d.total > conn.bodyMax) return bodyRefused(conn, 413)
      if (d.lastWasData && p > pos) sendPart(conn, us, own(buf.subarray(pos, p)), false)
      pos = p
      if (d.state === Chunk.Done) {
        conn.reqDone = true
        sendPart(conn, us, EMPTY, true)
      }
    }
  }
  conn.bytesIn += pos - start
  if (pos >= len) {
    conn.buf = null
    conn.off = 0
    if (!conn.reqDone && conn.clientEnded) return conn.sock.destroy() // the client closed mid-body
  } else conn.off = pos
  // The response timer measures upstream silence: it restarts with each body byte sent.
  if (conn.state === St.Upstream && conn.timer === Timer.Response) arm(conn, Timer.Response, conn.ctx.opts.responseTimeoutMs)
  conn.upFull = us.outq.length !== 0 || us.endQueued
  syncReading(conn)
}

/** A body that breaks its framing or the route's size limit: nothing more goes upstream. */
function bodyRefused(conn: ClientConn, status: number): void {
  if (conn.resStarted) return conn.sock.destroy()
  respond(conn, status)
}

/** A field name HTTP/1.1 can carry (RFC 9110 §5.1 token, lower case as HTTP/2 has it). */
const NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/
/** A field value without CR, LF or NUL (RFC 9113 §8.2.1): anything else would split the HTTP/1.1 head. */
const VALUE = /^[^\r\n\0]*$/

/** Every field of the decoded block can be written as an HTTP/1.1 field line. */
function writable(us: UpStream): boolean {
  const d = us.session.hpack
  for (let i = 0; i < d.count; i++) {
    const name = d.names[i] as string
    if ((name.charCodeAt(0) !== 0x3a && !NAME.test(name)) || !VALUE.test(d.values[i] as string)) return false
  }
  return true
}

/**
 * The fields of the decoded block minus pseudo-fields and connection-specific
 * ones, as HTTP/1.1 lines; for a final head also the route's response
 * edits, x-request-id when the upstream set none, and HSTS over TLS.
 */
function fieldLines(us: UpStream, conn: ClientConn, final: boolean): string {
  const d = us.session.hpack
  const rt = conn.route
  const edits = !final || rt === null || rt.plan.rules === null ? null : rt.plan.rules.response
  let out = ''
  let rid = false
  for (let i = 0; i < d.count; i++) {
    const name = d.names[i] as string
    if (name.charCodeAt(0) === 0x3a || DROP.has(name)) continue
    if (edits !== null && drops(edits, name)) continue
    if (name === 'x-request-id') rid = true
    out += `${name}: ${d.values[i] as string}\r\n`
  }
  if (!final) return out
  if (!rid) out += `x-request-id: ${conn.requestId}\r\n`
  if (edits !== null) out += edits.lines
  if (conn.tls && rt !== null && rt.hsts !== null) out += rt.plan.hsts
  return out
}

function write(conn: ClientConn, data: Buffer): boolean {
  conn.bytesOut += data.length
  return conn.sock.write(data)
}

/**
 * node:http's reason phrases, taken with the first response relayed this way:
 * a static import of node:http runs its export getters (WebSocket among
 * them), which loads undici, 16 MiB of RSS in every worker at rest.
 */
let reasons: Readonly<Record<number, string | undefined>> | null = null

function statusLine(status: number): string {
  reasons ??= process.getBuiltinModule('node:http').STATUS_CODES
  return `HTTP/1.1 ${status} ${reasons[status] ?? 'Unknown'}\r\n`
}

const EVENTS: UpStreamEvents = {
  ready(us) {
    const conn = us.owner as ClientConn
    if (conn.state !== St.Upstream) return detachUp(us, true)
    conn.us = us
    conn.ctx.now = Date.now()
    conn.sent = true
    const len = headBlock(conn.outHead, conn.hostless, us.session.up, conn.teTrailers)
    // Body bytes an HTTP/1.1 attempt before this one took (kept for a retry): as they are for a
    // Content-Length body; a chunked one's are framed for HTTP/1.1 and are not sent here.
    const kept = conn.kept.slice() // sendPart empties conn.kept: these bytes go out now and cannot go again
    if (kept.length !== 0 && conn.bodyKind === BodyKind.Chunked) {
      conn.us = null
      detachUp(us, true)
      return conn.front.respond(conn, 502)
    }
    sendHead(us, blockScratch(0), len, conn.reqDone && kept.length === 0)
    for (let i = 0; i < kept.length; i++) sendPart(conn, us, kept[i] as Buffer, conn.reqDone && i === kept.length - 1)
    arm(conn, Timer.Response, conn.ctx.opts.responseTimeoutMs)
    if (!conn.reqDone) pumpH2Body(conn)
    else syncReading(conn)
  },
  head(us, status, end) {
    const conn = us.owner as ClientConn
    const ctx = conn.ctx
    ctx.now = Date.now()
    if (status === 101 || !writable(us)) {
      // A 101 has no meaning on HTTP/2 (RFC 9113 §8.6); a field HTTP/1.1 cannot carry makes the response malformed.
      conn.us = null
      detachUp(us, true)
      responseFailed(us.session.up, passiveOf(conn), ctx.now, ctx.opts.log, 'bad response')
      return conn.front.respond(conn, 502)
    }
    if (status < 200) {
      // Interim responses (100, 103, ...) go to HTTP/1.1 clients only (RFC 9110 §15.2).
      if (conn.version === 11) write(conn, Buffer.from(`${statusLine(status)}${fieldLines(us, conn, false)}\r\n`, 'latin1'))
      return
    }
    succeeded(us.session.up)
    if (errorPage(conn, status)) {
      // The route's error page answers instead: this upstream stream is given up.
      if (conn.us === us) conn.us = null
      return detachUp(us, true)
    }
    let length = -1
    const d = us.session.hpack
    for (let i = 0; i < d.count; i++) if (d.names[i] === 'content-length') length = Number(d.values[i])
    if (!(length >= -1 && Number.isSafeInteger(length))) length = -1
    // body.MaxResponseBytes: a declared length over it is answered 502; DATA is counted against it (data()).
    const rules = conn.route === null ? null : conn.route.plan.rules
    conn.resMax = rules === null ? 0 : rules.maxResponseBytes
    conn.resSeen = 0
    if (conn.resMax !== 0 && length > conn.resMax) {
      conn.us = null
      detachUp(us, true)
      return conn.front.respond(conn, 502)
    }
    const noBody = conn.method === Method.Head || status === 204 || status === 304
    let close = conn.closeAfter || ctx.closing || conn.listener.draining || !conn.reqDone
    let framing: number = Framing.Length
    let frame = ''
    if (noBody) framing = Framing.None
    else if (length < 0) {
      if (end) {
        framing = Framing.None
        frame = 'content-length: 0\r\n'
      } else if (conn.version === 11) {
        framing = Framing.Chunked
        frame = 'transfer-encoding: chunked\r\n'
      } else {
        framing = Framing.Close
        close = true
      }
    }
    conn.closeAfter = close
    conn.status = status
    conn.framing = framing
    conn.resLeft = length
    conn.resStarted = true
    const tail = close ? 'connection: close\r\n\r\n' : conn.version === 10 ? 'connection: keep-alive\r\n\r\n' : '\r\n'
    write(conn, Buffer.from(`${statusLine(status)}${fieldLines(us, conn, true)}${frame}${tail}`, 'latin1'))
    arm(conn, Timer.Response, ctx.opts.responseTimeoutMs)
    if (end) {
      if (framing === Framing.Length && length !== 0) return mismatch(conn, us)
      complete(conn, us, '')
    }
  },
  data(us, data, end) {
    const conn = us.owner as ClientConn
    const ctx = conn.ctx
    ctx.now = Date.now()
    if (conn.timer === Timer.Response) conn.deadline = ctx.now + ctx.opts.responseTimeoutMs
    const n = data.length
    if (conn.framing === Framing.Length && (conn.resLeft -= n) < 0) return mismatch(conn, us)
    if (conn.resMax !== 0 && (conn.resSeen += n) > conn.resMax) {
      // Past body.MaxResponseBytes after the head went out: the client's connection is reset (relay.ts cutResponse).
      conn.us = null
      detachUp(us, true)
      return conn.sock.resetAndDestroy()
    }
    if (n !== 0 && conn.framing !== Framing.None) {
      let ok: boolean
      if (conn.framing === Framing.Chunked) {
        conn.sock.cork()
        write(conn, Buffer.from(`${n.toString(16)}\r\n`, 'latin1'))
        write(conn, data)
        ok = write(conn, CRLF)
        conn.sock.uncork()
      } else ok = write(conn, data)
      if (ok && !conn.clientFull) creditUp(us, n)
      else {
        // Given back when the client's socket drains (drainedH2).
        conn.clientFull = true
        conn.upHeld += n
      }
    } else creditUp(us, n)
    if (end) {
      // Shorter than its content-length (RFC 9113 §8.1.1): the client must not take it for the whole body.
      if (conn.framing === Framing.Length && conn.resLeft !== 0) return mismatch(conn, us)
      complete(conn, us, '')
    }
  },
  trailers(us) {
    const conn = us.owner as ClientConn
    if ((conn.framing === Framing.Length && conn.resLeft !== 0) || !writable(us)) return mismatch(conn, us)
    complete(conn, us, conn.framing === Framing.Chunked && conn.teTrailers ? fieldLines(us, conn, false) : '')
  },
  failed(us, code, owner) {
    const conn = owner as ClientConn
    if (conn.us !== us && conn.us !== null) return
    conn.us = null
    conn.ctx.now = Date.now()
    if (conn.state !== St.Upstream) return
    const up = us.session.up
    // Never sent (its session was full), or refused unprocessed once: the same upstream again, on another stream.
    if (code === FULL) return attachH2(conn, up)
    if (code === H2Error.RefusedStream && !us.sentBody && !conn.staleRetried) {
      conn.staleRetried = true
      return attachH2(conn, up)
    }
    // After the head the client can only learn of it by its connection closing before the body's end.
    if (conn.resStarted) {
      responseFailed(up, passiveOf(conn), conn.ctx.now, conn.ctx.opts.log, 'closed mid-response')
      return conn.sock.destroy()
    }
    const how = code === -1 ? StreamFail.Connect : code === H2Error.RefusedStream ? StreamFail.Refused : StreamFail.Reset
    const reason = code === -1 ? (us.session.error === '' ? 'connect failed' : us.session.error) : code === -2 ? 'connection lost' : `stream reset (${code})`
    streamFailed(conn, up, how, us.sentBody, reason)
  },
  writable(us) {
    const conn = us.owner as ClientConn
    if (conn === null || !drainUp(us)) return
    conn.upFull = false
    pumpH2Body(conn)
  },
}

/** DATA that does not add up to the content-length: the stream is dropped, the client's connection closed before the body's end. */
function mismatch(conn: ClientConn, us: UpStream): void {
  conn.us = null
  detachUp(us, true)
  responseFailed(us.session.up, passiveOf(conn), conn.ctx.now, conn.ctx.opts.log, 'bad response')
  conn.sock.destroy()
}

/** The response ended upstream: the last chunk (with `trailerLines`) when chunked, then the connection's next request. */
function complete(conn: ClientConn, us: UpStream, trailerLines: string): void {
  conn.us = null
  conn.timer = Timer.None
  conn.upHeld = 0
  detachUp(us, true) // RST_STREAM CANCEL only when the request body was not all sent: the upstream answered early
  if (conn.framing === Framing.Chunked) write(conn, Buffer.from(`0\r\n${trailerLines}\r\n`, 'latin1'))
  if (!conn.reqDone) conn.closeAfter = true
  finishRequest(conn)
}
