// Request intake: complete heads in the client's buffer become routed
// requests. Reads the listener's plan once per request; strings are made
// only for the host (always), the path (only when some route has a
// PathPrefix) and the rewritten head.

import { matchRoute } from '../match.ts'
import { Scheme } from '../../compiler/snapshot.ts'
import { CR, LF, equalsLower } from './chars.ts'
import type { ClientConn } from './conn.ts'
import { BodyKind, ResPhase, St, Timer, arm, chunkDecoder, redirect, reject, respond, respondWhole, syncReading } from './conn.ts'
import { startExchange } from '../exchange.ts'
import { PARTS } from '../parts.ts'
import type { H2Part } from '../parts.ts'
import { hostless, requestHead } from './forward.ts'
import { Form, HeadScan, RequestHead, parseRequestHead, quickRequestHead, scanHead } from './parse.ts'
import { requestIdOf } from './request-id.ts'
import { gateH1 } from './rules-gate.ts'
import { zipAccepted } from './zip-relay.ts'
import type { RulesRuntime } from '../rules/runtime.ts'

/**
 * Every connection's request head is parsed here: dispatch() reads it before
 * anything it calls can end the request or read the next head (readHeads
 * never recurses), like the field offsets in fields.ts's scratch, so an idle
 * keep-alive connection holds no head (304 bytes each).
 */
const REQ = new RequestHead()
/** The search of a head that starts in this read; copied to conn.scan only when the head goes on in a later read. */
const SCAN = new HeadScan()

const XFP_HTTP = 'x-forwarded-proto: http\r\n'
const XFP_HTTPS = 'x-forwarded-proto: https\r\n'

/** Reads and dispatches heads while requests complete synchronously (local responses); never recurses. */
export function readHeads(conn: ClientConn): void {
  if (conn.inRead) return
  conn.inRead = true
  while (conn.state === St.Head && conn.buf !== null && readOne(conn));
  conn.inRead = false
}

/** One head from `buf`: false when more bytes are needed or the connection is being closed. */
function readOne(conn: ClientConn): boolean {
  const ctx = conn.ctx
  const buf = conn.buf as Buffer
  let off = conn.off
  if (conn.first && buf[off] === 0x50 && conn.listener.plan.plan.h2c) {
    // An h2c listener's snapshot loaded the HTTP/2 part (parts.ts).
    const h2 = (PARTS.h2 as H2Part).takeH2c(conn, buf, off)
    if (h2 !== 0) return false
  }
  const split = conn.scan
  if (split === null) {
    // Empty lines before a request line are ignored (RFC 9112 §2.2); a bare LF is not.
    while (off + 1 < buf.length && buf[off] === CR && buf[off + 1] === LF) off += 2
    conn.off = off
    if (off >= buf.length) {
      conn.buf = null
      conn.off = 0
      return false
    }
    if (buf[off] === LF || (buf[off] === CR && off + 1 < buf.length)) return reject(conn, 400)
    if (buf[off] === CR) return false
  }
  if (conn.timer === Timer.Idle) arm(conn, Timer.Head, ctx.opts.headersTimeoutMs)
  // A whole valid head in this read, the usual case, is parsed in one walk; everything else takes the careful path below.
  const quick = split === null ? quickRequestHead(buf, off, ctx.lineMax, ctx.opts.maxHeaderBytes, REQ) : 0
  if (quick !== 0) return headRead(conn, buf, quick)
  const r = scanHead(split ?? SCAN, buf, off, ctx.lineMax, ctx.opts.maxHeaderBytes, REQ)
  if (r === 0 && split === null) conn.scan = kept(SCAN)
  else if (r !== 0 && split !== null) conn.scan = null
  SCAN.reset()
  if (r === 0) return false
  if (r < 0) return reject(conn, -r)
  const st = parseRequestHead(buf, off, r, ctx.lineMax, ctx.opts.maxHeaderBytes, REQ)
  if (st !== 0) return reject(conn, st)
  return headRead(conn, buf, r)
}

/** A head ends at `end` of `buf`: what follows it stays for the next read; the request goes on. */
function headRead(conn: ClientConn, buf: Buffer, end: number): true {
  conn.off = end
  if (end >= buf.length) {
    conn.buf = null
    conn.off = 0
  }
  dispatch(conn, buf)
  return true
}

/** A copy of the search state, for a connection whose head goes on in a later read. */
function kept(s: HeadScan): HeadScan {
  const k = new HeadScan()
  k.pos = s.pos
  k.firstLineEnd = s.firstLineEnd
  k.lineChecked = s.lineChecked
  return k
}

/** The routing host: absolute-form authority or Host, lower-cased, port stripped. */
function routingHost(buf: Buffer, h: RequestHead): string {
  let s = h.hostStart
  let e = h.hostEnd
  if (h.form === Form.Absolute) {
    s = h.authStart
    e = h.authEnd
  } else if (h.hostCount === 0) return ''
  let upper = false
  let colon = -1
  for (let p = s; p < e; p++) {
    const b = buf[p] as number
    if (b === 0x3a) colon = p
    else if (b === 0x5d)
      colon = -1 // `]` closes an IPv6 literal: colons before it are not the port's
    else if (b >= 0x41 && b <= 0x5a) upper = true
  }
  if (colon >= 0) e = colon
  const host = buf.latin1Slice(s, e)
  return upper ? host.toLowerCase() : host
}

const ACME_PATH = '/.well-known/acme-challenge/'

/** Answers an http-01 validation request for a pending token; false when the path is something else. */
function acmeAnswer(conn: ClientConn, buf: Buffer, h: RequestHead): boolean {
  const s = h.pathStart
  if (h.pathEnd - s <= ACME_PATH.length || buf.latin1Slice(s, s + ACME_PATH.length) !== ACME_PATH) return false
  const a = conn.ctx.acmeTokens.get(buf.latin1Slice(s + ACME_PATH.length, h.pathEnd))
  if (a === undefined) return false
  respondWhole(conn, 200, a.keep, a.close)
  return true
}

/**
 * A plain request no route takes: when a route that takes https only
 * would take it over TLS, a 308 to the same URL on https (the port of the
 * TLS server that routes it, left out when 443); else 404.
 */
function toHttps(conn: ClientConn, buf: Buffer, h: RequestHead, host: string, path: string): void {
  const secure = matchRoute(conn.listener.plan.plan, host, path, Scheme.Https)
  if (secure === null || secure.httpsPort === 0 || host === '') return respond(conn, 404)
  const target = h.form === Form.Absolute ? (h.pathStart === h.targetEnd ? '/' : buf.latin1Slice(h.pathStart, h.targetEnd)) : buf.latin1Slice(h.targetStart, h.targetEnd)
  redirect(conn, `https://${host}${secure.httpsPort === 443 ? '' : `:${secure.httpsPort}`}${target.startsWith('/') ? target : `/${target}`}`)
}

/** The Upgrade value mentions h2c in any case (deliberately broad: only upgrade requests get here). */
function isH2c(buf: Buffer, h: RequestHead): boolean {
  for (let p = h.upgradeStart; p + 3 <= h.upgradeEnd; p++) if (equalsLower(buf, p, p + 3, 'h2c')) return true
  return false
}

function dispatch(conn: ClientConn, buf: Buffer): void {
  const h = REQ
  const ctx = conn.ctx
  conn.state = St.Upstream
  conn.timer = Timer.None
  conn.first = false
  ctx.inFlight++
  ctx.requestsH1++
  conn.version = h.version
  conn.method = h.method
  conn.teTrailers = h.teTrailers
  const keepAlive = h.version === 11 ? !h.connClose : h.connKeepAlive && !h.connClose
  conn.clientClose = !keepAlive
  // After the client's FIN, the last request buffered is answered with `connection: close` (finishRequest closes after it).
  conn.closeAfter = !keepAlive || (conn.clientEnded && conn.buf === null) || conn.listener.draining || ctx.closing
  // h2c upgrades are not passed on: a cleartext HTTP/2 tunnel would carry requests this proxy never sees.
  conn.upgrade = h.version === 11 && h.connUpgrade && h.upgradeCount === 1 && !isH2c(buf, h)
  if (h.teChunked === 1) {
    conn.bodyKind = BodyKind.Chunked
    conn.reqChunk = chunkDecoder(conn, conn.reqChunk)
    conn.reqDone = false
  } else if (h.clCount === 1 && h.contentLength > 0) {
    conn.bodyKind = BodyKind.Length
    conn.bodyLeft = h.contentLength
    conn.reqDone = false
  } else {
    conn.bodyKind = BodyKind.None
    conn.reqDone = true
  }
  if (conn.kept.length !== 0) conn.kept.length = 0 // the length setter is a runtime call even on an empty array
  conn.keptBytes = 0
  conn.keptAll = true
  conn.sent = false
  conn.resStarted = false
  conn.resPhase = ResPhase.Head
  conn.resPart = null
  conn.dechunk = false
  conn.rechunk = false
  conn.status = 0
  conn.startedAt = performance.now()
  conn.bytesIn = h.end - h.start
  conn.bytesOut = 0
  conn.requestId = requestIdOf(buf, h)
  conn.reqSeq++
  conn.bodyMax = -1
  conn.pageState = 0
  const log = ctx.accessLog
  conn.logged = log !== null && (log.sample >= 1 || Math.random() < log.sample)
  if (conn.logged) {
    conn.logMethod = buf.latin1Slice(h.start, h.methodEnd)
    conn.logHost = h.form === Form.Absolute ? buf.latin1Slice(h.authStart, h.authEnd) : h.hostCount === 0 ? '' : buf.latin1Slice(h.hostStart, h.hostEnd)
    conn.logTarget = buf.latin1Slice(h.targetStart, h.targetEnd)
  }
  syncReading(conn)

  // ACME http-01 validation, before any routing: the token's key authorization, if it is ours.
  if (!conn.tls && ctx.acmeTokens.size !== 0 && acmeAnswer(conn, buf, h)) return
  const lr = conn.listener.plan
  const path = lr.anyPath ? '' : h.pathStart === h.pathEnd ? '/' : buf.latin1Slice(h.pathStart, h.pathEnd)
  const host = routingHost(buf, h)
  const route = matchRoute(lr.plan, host, path, conn.tls ? Scheme.Https : Scheme.Http)
  if (route === null) return conn.tls ? respond(conn, 404) : toHttps(conn, buf, h, host, path)
  conn.route = lr.routes[lr.plan.routes.indexOf(route)] ?? null
  if (conn.route === null) return respond(conn, 404)
  const rules = route.rules
  conn.zipAccept = rules === null || rules.compress === null ? 0 : zipAccepted(conn, buf, h)
  const rq = rules === null ? null : rules.request
  conn.outHead = requestHead(buf, h, conn, conn.tls ? XFP_HTTPS : XFP_HTTP, conn.upgrade, conn.bodyKind === BodyKind.Chunked, conn.requestId, rq)
  conn.hostless = hostless(h, rq)
  // Access (and later rate limit, body) rules decide before anything goes upstream; they may answer or wait.
  if (rules !== null && rules.gated && !gateH1(conn, buf, h, conn.route.rules as RulesRuntime)) return
  startExchange(conn)
}
