// An HTTP/1.1 upstream's response relayed on an HTTP/2 stream: the head is
// parsed as for HTTP/1.1 clients (http1/parse.ts, the same passive health
// and retry-on-status verdict: http1/relay.ts finalHead), then sent as a
// HEADERS frame: `:status`, the fields minus connection-specific ones (RFC
// 9113 §8.2.2), names lower-cased, X-Request-Id added when the upstream set
// none. The body becomes DATA frames whatever its HTTP/1.1 framing:
// content-length counted, chunked de-chunked (its trailer section becomes
// trailers: a header block with END_STREAM), read-until-close ending with
// END_STREAM when the upstream closes. Interim responses (1xx but 101) go as HEADERS of their own.

import { ResPhase, Timer, passiveOf } from '../exchange.ts'
import { Chunk, ChunkDecoder, advance } from '../http1/chunked.ts'
import { Framing } from '../http1/conn.ts'
import { CONN_TOK, HDR, HF, Kind } from '../http1/fields.ts'
import { ResponseHead, parseResponseHead } from '../http1/parse.ts'
import { equalsLowerBytes } from '../http1/chars.ts'
import { finalHead, framingOf } from '../http1/relay.ts'
import { responseFailed } from '../upstream/passive.ts'
import type { UpConn } from '../upstream/pool.ts'
import { discard, release } from '../upstream/pool.ts'
import { writeEdits, writeInt, writeLiteral, writeStatus } from './hpack.ts'
import { drops } from '../rules/request.ts'
import { errorPage } from '../rules/error-page.ts'
import type { HeaderEditPlan } from '../../compiler/snapshot.ts'
import { ZIP_END, zipFeed, zipHeadH2 } from './zip-relay.ts'
import { H2Error } from './frames.ts'
import { blockScratch, pauseForClient, resetStream, respondLocal, sendBlock, sendData, sendTrailers } from './send.ts'
import type { H2Stream } from './stream.ts'
import { Phase } from './stream.ts'

const PAIR: Buffer[] = [Buffer.alloc(0), Buffer.alloc(0)]
const EMPTY = Buffer.alloc(0)
/**
 * Every stream's response head is parsed here: it is read, relayed and
 * judged within one call (h2UpstreamData), like the field offsets the parse
 * leaves in http1/fields.ts's scratch, so no stream needs a head of its own.
 */
const RES = new ResponseHead()

function badResponse(st: H2Stream, uc: UpConn): void {
  st.uc = null
  discard(uc)
  responseFailed(uc.up, passiveOf(st), st.ctx.now, st.ctx.opts.log, 'bad response')
  if (!st.resStarted) respondLocal(st, 502)
  else resetStream(st, H2Error.InternalError, true)
}

/** Response bytes from the stream's HTTP/1.1 upstream. Returns true when `chunk` is still referenced (queued for the client). */
export function h2UpstreamData(st: H2Stream, uc: UpConn, chunk: Buffer): boolean {
  const ctx = st.ctx
  ctx.now = Date.now()
  if (st.phase !== Phase.Exchange) {
    discard(uc)
    return false
  }
  const conn = st.conn
  conn.refHeld = false
  uc.gotBytes = true
  if (st.timer === Timer.Response) st.deadline = ctx.now + ctx.opts.responseTimeoutMs
  let buf = chunk
  let pos = 0
  while (st.resPhase === ResPhase.Head) {
    if (st.resPart !== null) {
      PAIR[0] = st.resPart
      PAIR[1] = pos === 0 ? buf : buf.subarray(pos)
      buf = Buffer.concat(PAIR)
      PAIR[0] = PAIR[1] = EMPTY
      pos = 0
      st.resPart = null
    }
    const end = parseResponseHead(buf, pos, RES)
    if (end === 0) {
      if (buf.length - pos > ctx.opts.maxHeaderBytes) {
        badResponse(st, uc)
        return conn.refHeld
      }
      st.resPart = Buffer.from(pos === 0 ? buf : buf.subarray(pos))
      return conn.refHeld
    }
    if (end < 0 || end - pos > ctx.opts.maxHeaderBytes) {
      badResponse(st, uc)
      return conn.refHeld
    }
    if (!onHead(st, uc, buf, end)) return conn.refHeld
    pos = end
    if (pos >= buf.length && st.resPhase === ResPhase.Head) return conn.refHeld
  }
  if (st.resPhase === ResPhase.Body && pos < buf.length) {
    pos = body(st, buf, pos)
    if (pos === TOO_LARGE) {
      // Past body.MaxResponseBytes after the head went out: the stream is reset, the upstream dropped.
      st.uc = null
      discard(uc)
      resetStream(st, H2Error.InternalError, true)
      return conn.refHeld
    }
    if (pos < 0) {
      badResponse(st, uc)
      return conn.refHeld
    }
  }
  if (st.resPhase === ResPhase.Done) {
    if (pos < buf.length) uc.reusable = false // bytes after the response: that connection is out of step
    complete(st)
  } else if (st.zip !== null) {
    if (st.resPhase === ResPhase.Body) st.zip.flush() // what this read brought reaches the client now
  } else if (conn.clientFull) {
    pauseForClient(st)
  }
  // A coder may still hold the bytes of this read.
  return conn.refHeld || st.zip !== null
}

/** Handles a parsed head ending at `end`; false when the exchange left the normal path (retry, error). */
function onHead(st: H2Stream, uc: UpConn, buf: Buffer, end: number): boolean {
  const r = RES
  const status = r.status
  if (status < 200) {
    if (status === 101) {
      badResponse(st, uc) // no upgrade over HTTP/2
      return false
    }
    headers(st, buf, status, false, false)
    return true
  }
  const framing = framingOf(st.method, r)
  if (finalHead(st, uc, r, framing, end === buf.length)) return false
  // The route's error page answers instead (nothing of this response has gone to the client).
  if (st.route !== null && st.route.plan.rules !== null && errorPage(st, status)) return false
  // body.MaxResponseBytes: a declared length over it is answered 502 before anything of it is sent.
  const resMax = st.route === null || st.route.plan.rules === null ? 0 : st.route.plan.rules.maxResponseBytes
  st.resMax = resMax
  if (resMax !== 0) {
    st.resSeen = 0
    if (framing === Framing.Length && r.contentLength > resMax) {
      st.uc = null
      discard(uc)
      st.front.respond(st, 502)
      return false
    }
  }
  if (!st.reqDone) uc.reusable = false // answered before the body was sent: the rest cannot be skipped on that connection
  if (framing === Framing.Close || (r.version === 11 ? r.connClose : !r.connKeepAlive || r.connClose)) uc.reusable = false
  st.status = status
  st.framing = framing
  st.resStarted = true
  // The route's compress group: the head's edits, and st.zip when the body goes through a coder (zip-relay.ts).
  const rt = st.route
  const zedits = rt !== null && rt.plan.rules !== null && rt.plan.rules.compress !== null ? zipHeadH2(st, buf, r, framing === Framing.None) : null
  headers(st, buf, status, framing === Framing.None, r.ridCount === 0, zedits, st.zip !== null)
  if (framing === Framing.None) st.resPhase = ResPhase.Done
  else {
    st.resPhase = ResPhase.Body
    if (framing === Framing.Length) st.resLeft = r.contentLength
    else if (framing === Framing.Chunked) {
      st.resChunk ??= new ChunkDecoder(st.ctx.opts.maxHeaderBytes)
      st.resChunk.reset()
    }
  }
  return true
}

/** True when header name [ns, ne) is named by a Connection token of the head just parsed. */
function namedInConnection(buf: Buffer, nTokens: number, ns: number, ne: number): boolean {
  for (let t = 0; t < nTokens; t++) if (equalsLowerBytes(buf, ns, ne, CONN_TOK[t * 2] as number, CONN_TOK[t * 2 + 1] as number)) return true
  return false
}

/** The response head as a header block: `:status`, then the fields an HTTP/2 response may carry. */
function headers(st: H2Stream, buf: Buffer, status: number, endStream: boolean, addId: boolean, zedits: HeaderEditPlan | null = null, dropLength = false): void {
  const r = RES
  const rt = st.route
  // The route's headers.Response, on final responses only (as HTTP/1.1's responseHead); with compression's fields when it applies.
  const edits = zedits !== null ? zedits : status < 200 || rt === null || rt.plan.rules === null ? null : rt.plan.rules.response
  const hb = blockScratch(2 * (r.end - r.start) + 160 + st.requestId.length + (edits === null ? 0 : 2 * edits.lines.length + 8 * edits.fields.length))
  let p = writeStatus(hb, 0, status)
  const n = r.nHeaders
  for (let i = 0; i < n; i++) {
    const o = i * HF
    const kind = HDR[o + 5] as number
    if (kind === Kind.Connection || kind === Kind.Hop || kind === Kind.TransferEncoding || kind === Kind.Upgrade || (dropLength && kind === Kind.ContentLength)) continue
    const ns = HDR[o] as number
    const ne = HDR[o + 1] as number
    if (r.nConnTokens !== 0 && namedInConnection(buf, r.nConnTokens, ns, ne)) continue
    if (edits !== null && drops(edits, buf.latin1Slice(ns, ne).toLowerCase())) continue
    const vs = HDR[o + 2] as number
    const ve = HDR[o + 3] as number
    hb[p++] = 0 // literal without indexing, new name
    p = writeInt(hb, p, ne - ns, 7, 0)
    for (let q = ns; q < ne; q++) {
      const c = buf[q] as number
      hb[p++] = c >= 0x41 && c <= 0x5a ? c + 0x20 : c
    }
    p = writeInt(hb, p, ve - vs, 7, 0)
    p += buf.copy(hb, p, vs, ve)
  }
  if (edits !== null) p = writeEdits(hb, p, edits)
  if (addId && status >= 200) p = writeLiteral(hb, p, 'x-request-id', st.requestId)
  // Over TLS, the route's Strict-Transport-Security is added (as on HTTP/1.1).
  if (status >= 200 && st.conn.tls && rt !== null && rt.hstsValue !== '') p = writeLiteral(hb, p, 'strict-transport-security', rt.hstsValue)
  sendBlock(st, p, endStream)
  if (endStream) st.resDone = true
}

/** Relays body bytes from pos; returns where the response ended (or buf.length), -1 on a framing error, TOO_LARGE past body.MaxResponseBytes. */
function body(st: H2Stream, buf: Buffer, pos: number): number {
  const len = buf.length
  switch (st.framing) {
    case Framing.Length: {
      const n = Math.min(st.resLeft, len - pos)
      st.resLeft -= n
      const last = st.resLeft === 0
      if (last) st.resPhase = ResPhase.Done
      if (n > 0 || last) send(st, pos === 0 && n === len ? buf : buf.subarray(pos, pos + n), last)
      return pos + n
    }
    case Framing.Chunked: {
      const d = st.resChunk as ChunkDecoder
      while (pos < len) {
        const tb = d.trailerBytes
        const p = advance(d, buf, pos, len, true)
        if (d.state === Chunk.Error) return -1
        if (st.resMax !== 0 && d.total > st.resMax) return TOO_LARGE
        const done = d.state === Chunk.Done
        if (done) st.resPhase = ResPhase.Done
        if (d.trailerBytes !== tb) keepTrailer(st, buf, done ? p - 1 : p, tb, d.trailerBytes, done || d.state === Chunk.FinalLf)
        if (d.lastWasData && p > pos) send(st, buf.subarray(pos, p), false)
        pos = p
        if (done) {
          endChunked(st)
          break
        }
      }
      return pos
    }
    default: {
      const data = pos === 0 ? buf : buf.subarray(pos)
      if (st.resMax !== 0 && (st.resSeen += data.length) > st.resMax) return TOO_LARGE
      send(st, data, false)
      return len
    }
  }
}

/** body() found the body past body.MaxResponseBytes. */
const TOO_LARGE = -2

/**
 * Keeps the trailer bytes advance() just walked: the decoder counts, from the
 * LF ending the last chunk's size line to the CR of the final CRLF, trailer
 * byte `from` to `to` (exclusive), ending at buf[end]. Byte 0 (that LF) is
 * never kept; a section that is only the final CRLF (no trailers, the common
 * case) allocates nothing.
 */
function keepTrailer(st: H2Stream, buf: Buffer, end: number, from: number, to: number, atEnd: boolean): void {
  if (st.resTrailer === null && (to < 2 || (to === 2 && atEnd))) return
  const first = Math.max(from, 1)
  const part = buf.subarray(end - (to - first), end)
  st.resTrailer = st.resTrailer === null ? Buffer.from(part) : Buffer.concat([st.resTrailer, part])
}

/** Trailer fields an HTTP/2 response must not carry (connection-specific, framing, routing). */
const NOT_TRAILERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'content-length', 'host', 'trailer'])

/** The last chunk was read: END_STREAM, on the trailers when the upstream sent any (after a coder's last bytes when compressing). */
function endChunked(st: H2Stream): void {
  const zip = st.zip
  if (zip !== null) return zip.end()
  endStream(st)
}

function endStream(st: H2Stream): void {
  const raw = st.resTrailer
  if (raw === null) return send(st, EMPTY, true)
  st.resTrailer = null
  // `name: value\r\n` lines, then the final CR (its LF is not counted).
  const text = raw.toString('latin1', 0, raw.length - 1)
  const hb = blockScratch(2 * text.length + 64)
  let p = 0
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).toLowerCase()
    if (NOT_TRAILERS.has(name)) continue
    p = writeLiteral(hb, p, name, line.slice(colon + 1).trim())
  }
  if (p === 0) return send(st, EMPTY, true)
  st.resDone = true
  sendTrailers(st, p)
}

function send(st: H2Stream, data: Buffer, end: boolean): void {
  if (end) st.resDone = true
  const zip = st.zip
  if (zip === null) {
    sendData(st, data, end)
    return
  }
  zipFeed(st, data)
  if (end) zip.end()
}

ZIP_END.end = endStream

/** The response has been read completely: the upstream connection goes back to the pool (or closes). */
function complete(st: H2Stream): void {
  const uc = st.uc
  st.uc = null
  if (uc !== null) {
    st.upPaused = false
    if (uc.sock.isPaused()) uc.sock.resume()
    const ctx = st.ctx
    if (st.reqDone && uc.reusable) release(uc, ctx.now, ctx.opts.upstreamIdleMs, ctx.opts.maxIdlePerUpstream, ctx.closing)
    else discard(uc)
  }
  st.resDone = true
  if (st.phase === Phase.Exchange) st.phase = Phase.Draining
}

/** A close-delimited response ended with the upstream's close. */
export function closeDelimitedEnd(st: H2Stream, uc: UpConn): void {
  uc.reusable = false
  st.resPhase = ResPhase.Done
  send(st, EMPTY, true)
  complete(st)
}
