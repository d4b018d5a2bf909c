// A stream's response on its way to the client: HEADERS (with CONTINUATION
// when a block is larger than a frame), DATA under the client's flow
// control, and the end of a stream (END_STREAM, RST_STREAM), after which it
// is counted, logged and forgotten.
//
// Flow control: DATA goes out while both the stream's and the connection's
// windows allow; the rest waits in the stream's queue (by reference: it is
// one upstream read at most, as the upstream is paused until the queue
// empties) and leaves when a WINDOW_UPDATE opens the window. The same pause
// applies while the client's socket is full.

import { Timer } from '../exchange.ts'
import { requestEnded } from '../http1/ended.ts'
import { leaveQueue } from '../exchange.ts'
import { Method } from '../http1/parse.ts'
import { discard } from '../upstream/pool.ts'
import { REASON_PHRASES } from '../responses.ts'
import type { H2Conn } from './conn.ts'
import { FRAME_HEADER, Flag, FrameType, H2Error, appendRef, at, done, frame32, header, reserve } from './frames.ts'
import { literalBound, writeLiteral, writeStatus } from './hpack.ts'
import type { H2Stream } from './stream.ts'
import { Phase, STREAM_UPPER } from './stream.ts'
import { creditUp, detachUp } from './upstream.ts'

/** Payloads up to this are copied into the frame output; larger ones are queued by reference. */
const COPY_MAX = 4096

/** Header block scratch: a block is built here, then framed. */
let HB = Buffer.allocUnsafeSlow(64 * 1024)

/** Room for a header block of `bound` bytes; returns the scratch to build it in from 0. */
export function blockScratch(bound: number): Buffer {
  if (HB.length < bound) HB = Buffer.allocUnsafeSlow(bound)
  return HB
}

/** Frames HB[0, len) as HEADERS (+ CONTINUATION) on the stream. */
export function sendBlock(st: H2Stream, len: number, endStream: boolean): void {
  const conn = st.conn
  const max = conn.peerMaxFrame
  let off = 0
  let first = true
  do {
    const n = Math.min(max, len - off)
    const last = off + n === len
    const out = reserve(conn, FRAME_HEADER + n)
    const type = first ? FrameType.Headers : FrameType.Continuation
    const flags = (last ? Flag.EndHeaders : 0) | (first && endStream ? Flag.EndStream : 0)
    const p = header(at(), n, type, flags, st.id)
    HB.copy(out, p, off, off + n)
    done(p + n)
    st.bytesOut += FRAME_HEADER + n
    off += n
    first = false
  } while (off < len)
}

/** A response of the balancer's own (404, 502, 503, 504, 431...): a short text body, like HTTP/1.1's. */
/** Over TLS, the route's Strict-Transport-Security on the balancer's own answers too (as relay.ts adds it to relayed ones). */
function writeHsts(st: H2Stream, hb: Buffer, p: number): number {
  const rt = st.route
  return st.conn.tls && rt !== null && rt.hstsValue !== '' ? writeLiteral(hb, p, 'strict-transport-security', rt.hstsValue) : p
}

function hstsBound(st: H2Stream): number {
  const rt = st.route
  return rt === null || rt.hstsValue === '' ? 0 : literalBound(25, rt.hstsValue.length)
}

export function respondLocal(st: H2Stream, status: number): void {
  const uc = st.uc
  if (uc !== null) {
    st.uc = null
    discard(uc)
  }
  if (st.waitingOn !== null) leaveQueue(st)
  if (st.phase === Phase.Done) return
  const reason = REASON_PHRASES[status] ?? 'Error'
  const body = `${status} ${reason}\n`
  const hb = blockScratch(256 + st.requestId.length + hstsBound(st))
  let p = writeStatus(hb, 0, status)
  p = writeLiteral(hb, p, 'content-type', 'text/plain; charset=utf-8')
  p = writeLiteral(hb, p, 'content-length', String(body.length))
  if (status === 503) p = writeLiteral(hb, p, 'retry-after', '1')
  if (st.requestId !== '') p = writeLiteral(hb, p, 'x-request-id', st.requestId)
  p = writeHsts(st, hb, p)
  st.status = status
  st.resStarted = true
  st.resDone = true
  st.timer = Timer.None
  if (st.method === Method.Head) {
    sendBlock(st, p, true)
    return responseSent(st)
  }
  if (st.phase === Phase.New) st.phase = Phase.Draining
  sendBlock(st, p, false)
  sendData(st, Buffer.from(body, 'latin1'), true)
  if (st.phase === Phase.Exchange) st.phase = Phase.Draining
}

/** respondLocal with fields and a body of the caller's (route rules: a 401's challenge, a ForwardAuth refusal). */
export function respondLocalWith(st: H2Stream, status: number, fields: ReadonlyArray<readonly [string, string]>, body: Buffer): void {
  const uc = st.uc
  if (uc !== null) {
    st.uc = null
    discard(uc)
  }
  if (st.waitingOn !== null) leaveQueue(st)
  if (st.phase === Phase.Done) return
  let bound = 256 + st.requestId.length + hstsBound(st)
  for (const [n, v] of fields) bound += literalBound(n.length, v.length)
  const hb = blockScratch(bound)
  let p = writeStatus(hb, 0, status)
  for (const [n, v] of fields) if (!CONNECTION_SPECIFIC.has(n)) p = writeLiteral(hb, p, n, v)
  p = writeLiteral(hb, p, 'content-length', String(body.length))
  if (st.requestId !== '') p = writeLiteral(hb, p, 'x-request-id', st.requestId)
  p = writeHsts(st, hb, p)
  st.status = status
  st.resStarted = true
  st.resDone = true
  st.timer = Timer.None
  const empty = st.method === Method.Head || body.length === 0
  if (st.phase === Phase.New) st.phase = Phase.Draining
  sendBlock(st, p, empty)
  if (empty) return responseSent(st)
  sendData(st, body, true)
  if (st.phase === Phase.Exchange) st.phase = Phase.Draining
}

/** Fields an HTTP/2 response never carries (RFC 9113 §8.2.2), and content-length, which is written from the body. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'content-length'])

/** Writes one DATA frame of data[off, off+n). */
function dataFrame(conn: H2Conn, st: H2Stream, data: Buffer, off: number, n: number, end: boolean): void {
  const flags = end ? Flag.EndStream : 0
  if (n <= COPY_MAX) {
    const out = reserve(conn, FRAME_HEADER + n)
    const p = header(at(), n, FrameType.Data, flags, st.id)
    data.copy(out, p, off, off + n)
    done(p + n)
  } else {
    reserve(conn, FRAME_HEADER)
    done(header(at(), n, FrameType.Data, flags, st.id))
    appendRef(conn, off === 0 && n === data.length ? data : data.subarray(off, off + n))
    conn.refHeld = true
  }
  st.bytesOut += FRAME_HEADER + n
}

/**
 * Sends `data` (and END_STREAM after it when `end`) as far as the windows
 * allow; the rest is queued. Returns false when something is queued (the
 * caller's upstream should pause).
 */
export function sendData(st: H2Stream, data: Buffer, end: boolean): boolean {
  if (st.phase === Phase.Done) return true
  if (st.outqBytes !== 0 || st.outq.length !== 0) {
    queue(st, data, end)
    return false
  }
  const conn = st.conn
  const len = data.length
  let off = 0
  while (off < len) {
    const win = Math.min(conn.sendWindow, st.sendWindow, conn.peerMaxFrame)
    if (win <= 0) break
    const n = Math.min(win, len - off)
    dataFrame(conn, st, data, off, n, end && off + n === len)
    conn.sendWindow -= n
    st.sendWindow -= n
    off += n
  }
  if (off < len) {
    queue(st, off === 0 ? data : data.subarray(off), end)
    return false
  }
  if (end) {
    if (len === 0) dataFrame(conn, st, data, 0, 0, true)
    responseSent(st)
  }
  return true
}

function queue(st: H2Stream, data: Buffer, end: boolean): void {
  if (data.length !== 0) {
    st.outq.push(data)
    st.outqBytes += data.length
    st.conn.refHeld = true
  }
  if (end) st.endQueued = true
  block(st)
}

/** The stream waits for window: its upstream pauses, and the stream's idle timer runs (a client that never reads). */
function block(st: H2Stream): void {
  const conn = st.conn
  if (conn.sendWindow <= 0 && !conn.blocked.includes(st)) conn.blocked.push(st)
  const uc = st.uc
  if (uc !== null && !st.upPaused) {
    st.upPaused = true
    uc.sock.pause()
  }
  if (st.timer !== Timer.Idle) {
    // Waiting on the client now, not on the upstream.
    st.timer = Timer.Idle
    st.deadline = st.ctx.now + st.ctx.opts.idleTimeoutMs
  }
}

/** Window opened (WINDOW_UPDATE, SETTINGS): sends what the stream has queued, as far as it now may. */
export function drainBlocked(st: H2Stream): void {
  if (st.phase === Phase.Done) return
  const q = st.outq
  if (q.length === 0 && !st.endQueued) return
  const conn = st.conn
  let lastSentEnded = false
  while (q.length !== 0) {
    const data = q[0] as Buffer
    const win = Math.min(conn.sendWindow, st.sendWindow, conn.peerMaxFrame)
    if (win <= 0) break
    const n = Math.min(win, data.length)
    const last = n === data.length && q.length === 1 && st.endQueued && st.trailers === null
    if (last) lastSentEnded = true
    dataFrame(conn, st, data, 0, n, last)
    conn.sendWindow -= n
    st.sendWindow -= n
    st.outqBytes -= n
    if (n === data.length) q.shift()
    else q[0] = data.subarray(n)
  }
  if (q.length !== 0) {
    if (st.timer === Timer.Idle) st.deadline = st.ctx.now + st.ctx.opts.idleTimeoutMs // progress
    block(st)
    return
  }
  if (st.us !== null || st.upHeld !== 0) creditHeld(st)
  if (st.endQueued) {
    st.endQueued = false
    const t = st.trailers
    if (t !== null) {
      // Trailers waited behind the DATA.
      st.trailers = null
      const hb = blockScratch(t.length)
      t.copy(hb, 0)
      sendBlock(st, t.length, true)
    } else if (!lastSentEnded) dataFrame(conn, st, EMPTY, 0, 0, true)
    responseSent(st)
    return
  }
  if (st.timer === Timer.Idle) st.timer = st.uc === null ? Timer.None : Timer.Response
  st.deadline = st.ctx.now + st.ctx.opts.responseTimeoutMs
  resumeUpstream(st)
}
const EMPTY = Buffer.alloc(0)

function resumeUpstream(st: H2Stream): void {
  if (st.conn.clientFull) return
  const zip = st.zip
  if (zip !== null) zip.resume()
  if (!st.upPaused) return
  st.upPaused = false
  const uc = st.uc
  if (uc !== null && !st.zipFull) uc.sock.resume()
}

/** Response bytes of an HTTP/2 upstream the client has now taken: the upstream's stream window gets them back. */
function creditHeld(st: H2Stream): void {
  const n = st.upHeld
  st.upHeld = 0
  const us = st.us
  if (us !== null && n > 0) creditUp(us, n)
}

/** After an upstream read while the client's socket is full: that upstream waits for its drain. */
export function pauseForClient(st: H2Stream): void {
  const uc = st.uc
  if (uc === null || st.upPaused) return
  st.upPaused = true
  uc.sock.pause()
  st.conn.paused.push(st)
}

/** The client's socket drained: paused upstreams read again (those not waiting for window). */
export function resumeForClient(conn: H2Conn): void {
  const ps = conn.paused
  for (let i = 0; i < ps.length; i++) {
    const st = ps[i] as H2Stream
    if (st.outq.length === 0) resumeUpstream(st)
  }
  ps.length = 0
}

/**
 * Response trailers: HB[0, len) as a header block with END_STREAM, now, or
 * after the DATA still queued for the client's window.
 */
export function sendTrailers(st: H2Stream, len: number): void {
  if (st.phase === Phase.Done) return
  if (st.outq.length === 0 && !st.endQueued) {
    sendBlock(st, len, true)
    responseSent(st)
    return
  }
  st.trailers = Buffer.from(HB.subarray(0, len))
  st.endQueued = true
}

/** The response's END_STREAM is out. A request body still coming is refused (RST_STREAM NO_ERROR, RFC 9113 §8.1). */
export function responseSent(st: H2Stream): void {
  if (!st.reqEnd && st.phase !== Phase.Done) frame32(st.conn, FrameType.RstStream, 0, st.id, H2Error.NoError)
  finishStream(st)
}

/** Resets the stream: its upstream side is dropped; `send`: tell the client (RST_STREAM with `code`). */
export function resetStream(st: H2Stream, code: number, send: boolean): void {
  if (st.phase === Phase.Done) return
  if (st.waitingOn !== null) leaveQueue(st)
  const uc = st.uc
  if (uc !== null) {
    st.uc = null
    discard(uc)
  }
  const us = st.us
  if (us !== null) {
    st.us = null
    detachUp(us, true) // RST_STREAM CANCEL to the upstream: the client gave up, or its stream failed
  }
  st.outq.length = 0
  st.outqBytes = 0
  st.endQueued = false
  st.trailers = null
  if (send) frame32(st.conn, FrameType.RstStream, 0, st.id, code)
  finishStream(st)
}

/** The stream is over: counted and logged (if it was routed), forgotten by its connection. */
export function finishStream(st: H2Stream): void {
  if (st.phase === Phase.Done) return
  const routed = st.phase !== Phase.New
  st.phase = Phase.Done
  const zip = st.zip
  if (zip !== null) {
    // A compressed response cut short: its coder is freed (zip-relay.ts).
    st.zip = null
    st.zipFull = false
    st.conn.zipping--
    zip.destroy()
  }
  const us = st.us
  if (us !== null) {
    st.us = null
    detachUp(us, true)
  }
  st.timer = Timer.None
  st.pend.length = 0
  st.kept.length = 0
  const conn = st.conn
  if (routed) {
    st.ctx.inFlight--
    requestEnded(st)
  }
  const i = conn.blocked.indexOf(st)
  if (i >= 0) conn.blocked.splice(i, 1)
  STREAM_UPPER.forget(st)
}
