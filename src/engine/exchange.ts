// One request's trip upstream: pick, connect (or reuse, or wait for a free
// connection), send, and the single failure path that decides between a
// retry and an error response. Shared by every client protocol: an
// HTTP/1.1 connection's current request (http1/conn.ts) and an HTTP/2
// stream (h2/stream.ts) are both an Exchange, and what differs between
// them (answering, reading the body, writing the response) is their Front.
//
// Retry rules. The request moves to the next pick (other members of the same
// tier first, then lower tiers, then fallbacks; never a target it already
// tried, so at most one attempt per distinct target) when:
//   - the connection could not be made (refused, unreachable, timed out);
//   - the upstream reset, closed, or stayed silent past responseTimeoutMs
//     before any response byte, and the method is idempotent (GET HEAD
//     OPTIONS PUT DELETE TRACE);
//   - the final response status is in the route's retry.statuses and the
//     whole request (head and body) is kept, so it can be sent again
//     (retryOnStatus; the discarded response's connection is pooled only
//     when nothing of it is left to read, otherwise closed). When no other
//     upstream can take it, or no try or budget is left, that response goes
//     to the client as it is.
// A route allows retry.attempts tries in all. Retries that sent the request
// somewhere (all but connect failures, which cost no upstream any work) also
// need a token from the route's retry budget (lb/budget.ts).
// A reused pooled socket that fails before any response byte is the
// keep-alive race (the upstream closed it as we wrote): that is retried once
// on a fresh connection to the same upstream, any method, and is not counted
// against the upstream, the attempts or the budget. Every retry needs the
// body read so far to be kept (up to retryBodyBytes); otherwise the answer is
// 502.
// When nothing is left: 503 with Retry-After if no attempt got the request
// out, otherwise 502 (sent, then the upstream failed) or 504 (it timed out),
// whichever happened last.
//
// Limits. An upstream at the route's MaxConnections (busy connections,
// connecting included) is skipped by pick(); when a whole tier is at its
// limit and MaxPending allows, the request waits in that upstream's FIFO for
// a connection to come free (wait()), at most connectTimeoutMs, then moves on
// to the next pick as if that upstream had refused. Every time an upstream's
// busy count drops, the first live waiter takes the freed slot.

import type { PassivePlan } from '../compiler/snapshot.ts'
import type { EngineCtx } from './context.ts'
import type { RouteRuntime } from './lb/pick.ts'
import { atLimit, pick, soonest } from './lb/pick.ts'
import { connectFailed, responseFailed } from './upstream/passive.ts'
import type { UpConn, UpEvents } from './upstream/pool.ts'
import { UpState, discard, onFreed, open, release, take } from './upstream/pool.ts'
import type { Upstream } from './upstream/registry.ts'
import { UpProto } from './upstream/registry.ts'
import { writeHead } from './upstream/head-write.ts'
import { Method } from './http1/parse.ts'

/** Which deadline an exchange's `deadline` is (the engine's sweep calls the front's onDeadline). */
export const Timer = { None: 0, Idle: 1, Head: 2, Connect: 3, Response: 4, Linger: 5 } as const
/** Where the upstream's response is: its head not yet complete, its body, or all of it relayed. */
export const ResPhase = { Head: 0, Body: 1, Done: 2 } as const

/** What one client protocol does for the exchanges of its requests; one constant object per protocol. */
export interface Front {
  /** The request still waits for its response (neither answered nor gone). */
  live(ex: Exchange): boolean
  /** A response of the balancer's own; the exchange is over. */
  respond(ex: Exchange, status: number): void
  /** respond() with fields and a body of the caller's (route rules: a 401's challenge, a ForwardAuth refusal as the auth service gave it). */
  respondWith(ex: Exchange, status: number, fields: ReadonlyArray<readonly [string, string]>, body: Buffer): void
  /** Reads (or stops reading) the client to match the exchange (backpressure, body). */
  syncReading(ex: Exchange): void
  /** Sends what the client has sent of the body so far to ex.uc (its head is written). */
  pumpBody(ex: Exchange): void
  /** Response bytes from ex.uc; true when `chunk` is still referenced afterwards (a pending client write). */
  data(ex: Exchange, uc: UpConn, chunk: Buffer): boolean
  /** The upstream sent FIN, or its socket is gone (`closed`): a close-delimited end, a tunnel's end, or a failure (failed()). */
  ended(ex: Exchange, uc: UpConn, closed: boolean): void
  /** The response has begun and cannot be completed: the client learns it by its connection (HTTP/1.1) or stream (HTTP/2) being reset. */
  abort(ex: Exchange): void
  /** Sends the request on a stream of an HTTP/2 upstream (`up.protocol` h2c); the front relays it and reports failures to streamFailed. */
  attachH2(ex: Exchange, up: Upstream): void
}

/** The fields of a request the exchange reads and writes; see http1/conn.ts for each one's meaning. */
export interface Exchange {
  readonly ctx: EngineCtx
  readonly front: Front
  route: RouteRuntime | null
  readonly tried: Upstream[]
  uc: UpConn | null
  /** Queued for a connection to this upstream (Limits.MaxPending); null otherwise. */
  waitingOn: Upstream | null
  /** The current attempt has written the request upstream. */
  sent: boolean
  /** The status to answer if no attempt is left: 503 (nothing connected), 502 (sent, then failed), 504 (timed out). */
  giveUpStatus: number
  staleRetried: boolean
  method: number
  upgrade: boolean
  /** The whole request body has been read from the client. */
  reqDone: boolean
  /** Every body byte read so far is in `kept`: the request can be sent again. */
  keptAll: boolean
  readonly kept: Buffer[]
  /** The request head for an HTTP/1.1 upstream. */
  outHead: string
  /** Changes with every request of the exchange's client (HTTP/1.1 keep-alive): an asynchronous route rule (rules/gate.ts) resumes only the request it started for. */
  readonly reqSeq: number
  /** body.MaxRequestBytes of the request's route; -1: no limit. */
  bodyMax: number
  /** The route's error page for this request (rules/error-page.ts PageState). */
  pageState: number
  /** outHead still needs `host: <upstream>` and the blank line (HTTP/1.0 without Host). */
  hostless: boolean
  resPhase: number
  /** A response head split across reads. */
  resPart: Buffer | null
  /** The final response head has gone to the client: errors can no longer be answered. */
  resStarted: boolean
  /** The upstream socket's write buffer is full: client reads wait for its 'drain'. */
  upFull: boolean
  timer: number
  deadline: number
}

export function arm(ex: Exchange, timer: number, ms: number): void {
  ex.timer = timer
  ex.deadline = ex.ctx.now + ms
}

export function startExchange(conn: Exchange): void {
  if (conn.tried.length !== 0) conn.tried.length = 0 // the length setter is a runtime call even on an empty array
  conn.staleRetried = false
  conn.giveUpStatus = 503
  const rt = conn.route
  if (rt !== null) rt.budget.request(rt.plan.retry.budgetPercent)
  nextAttempt(conn)
}

/** Passive ejection off: the plan for a request without a route (a request in an exchange always has one). */
const NO_ROUTE_PASSIVE: PassivePlan = Object.freeze({ failures: 0, ejectionMs: 0, maxEjectionMs: 0, on5xx: false })

/** The passive plan of the request's route (every request in an exchange has one). */
export function passiveOf(conn: Exchange): PassivePlan {
  const rt = conn.route
  return rt === null ? NO_ROUTE_PASSIVE : rt.plan.passive
}

function nextAttempt(conn: Exchange): void {
  const rt = conn.route
  if (rt === null) return conn.front.respond(conn, 502)
  let up = pick(rt, conn.ctx.now, conn.tried)
  // Everything is ejected: probe the upstream that comes back first rather than fail without trying.
  if (up === null && conn.tried.length === 0) up = soonest(rt, conn.tried)
  if (up === null) return conn.front.respond(conn, conn.giveUpStatus)
  go(conn, up)
}

/** Sends the request to `up` (already picked): at once, or after waiting for a connection slot. */
function go(conn: Exchange, up: Upstream): void {
  if (conn.tried.length !== 0) up.retries++
  conn.tried.push(up)
  if (conn.route !== null && atLimit(conn.route, up)) return wait(conn, up)
  attach(conn, up, false)
}

function wait(conn: Exchange, up: Upstream): void {
  conn.waitingOn = up
  up.waiters.push(conn)
  arm(conn, Timer.Connect, conn.ctx.opts.connectTimeoutMs)
}

/** The client went away (or gave up) while waiting: leave the queue. */
export function leaveQueue(conn: Exchange): void {
  const up = conn.waitingOn
  if (up === null) return
  conn.waitingOn = null
  const i = up.waiters.indexOf(conn)
  if (i >= 0) up.waiters.splice(i, 1)
}

/** A connection slot of `up` came free: the first live waiter takes it (a waiter whose own limit is lower keeps waiting). */
function wake(up: Upstream): void {
  const ws = up.waiters
  while (ws.length !== 0) {
    const conn = ws[0] as Exchange
    if (conn.waitingOn !== up || !conn.front.live(conn)) {
      ws.shift()
      conn.waitingOn = null
      continue
    }
    if (conn.route !== null && atLimit(conn.route, up)) return
    ws.shift()
    conn.waitingOn = null
    conn.ctx.now = Date.now()
    attach(conn, up, false)
    return
  }
}
onFreed(wake)

function attach(conn: Exchange, up: Upstream, fresh: boolean): void {
  if (up.protocol !== UpProto.Http1) return conn.front.attachH2(conn, up)
  conn.sent = false
  conn.upFull = false
  const idle = fresh ? null : take(up, conn)
  if (idle !== null) {
    conn.uc = idle
    send(conn)
    return
  }
  conn.uc = open(up, UP_EVENTS, conn, conn.ctx.tlsContextOf)
  arm(conn, Timer.Connect, conn.ctx.opts.connectTimeoutMs)
}

/** Writes the head and the kept body to the attached connection, then streams the rest of the body. */
function send(conn: Exchange): void {
  const uc = conn.uc as UpConn
  const sock = uc.sock
  uc.gotBytes = false
  uc.reusable = true
  uc.up.requests++
  conn.sent = true
  conn.resPhase = ResPhase.Head
  conn.resPart = null
  let ok: boolean
  const kept = conn.kept
  const head = conn.hostless ? `${conn.outHead}host: ${uc.up.key}\r\n\r\n` : conn.outHead
  if (kept.length === 0) {
    ok = writeHead(uc, head)
  } else {
    sock.cork()
    sock.write(head, 'latin1')
    for (let i = 0; i < kept.length - 1; i++) sock.write(kept[i] as Buffer)
    ok = sock.write(kept[kept.length - 1] as Buffer)
    sock.uncork()
  }
  if (!ok) conn.upFull = true
  arm(conn, Timer.Response, conn.ctx.opts.responseTimeoutMs)
  if (!conn.reqDone) conn.front.pumpBody(conn)
  else conn.front.syncReading(conn)
}

function idempotent(method: number): boolean {
  return method === Method.Get || method === Method.Head || method === Method.Options || method === Method.Put || method === Method.Delete || method === Method.Trace
}

/**
 * After a failed attempt: the next pick, if the body is kept, a try is left
 * and (when the failed attempt reached the upstream) the budget allows.
 */
function retry(conn: Exchange, spends: boolean): void {
  const rt = conn.route
  if (!conn.keptAll || rt === null || conn.tried.length >= rt.plan.retry.attempts) return conn.front.respond(conn, conn.giveUpStatus)
  if (spends && !rt.budget.spend(conn.ctx.now)) return conn.front.respond(conn, conn.giveUpStatus)
  nextAttempt(conn)
}

/**
 * A final response whose status is in retry.statuses has arrived on `uc`
 * (its head parsed, nothing sent to the client). Returns false to forward it
 * as it is; true when the request went on to another upstream, `uc` having
 * been pooled (`idle`: nothing of the response is left to read and the
 * connection may be kept) or closed.
 */
export function retryOnStatus(conn: Exchange, uc: UpConn, idle: boolean): boolean {
  const rt = conn.route
  if (rt === null || !conn.reqDone || !conn.keptAll || conn.upgrade || conn.tried.length >= rt.plan.retry.attempts) return false
  const ctx = conn.ctx
  if (!rt.budget.can(ctx.now)) return false
  const next = pick(rt, ctx.now, conn.tried)
  if (next === null) return false
  rt.budget.spend(ctx.now)
  conn.uc = null
  if (idle) release(uc, ctx.now, ctx.opts.upstreamIdleMs, ctx.opts.maxIdlePerUpstream, ctx.closing)
  else discard(uc)
  go(conn, next)
  return true
}

/** The attached connection failed (closed, reset, EOF where a response was due). */
export function failed(conn: Exchange, uc: UpConn): void {
  const ctx = conn.ctx
  ctx.now = Date.now()
  const up = uc.up
  const connecting = uc.state === UpState.Connecting
  const reused = uc.reused
  const got = uc.gotBytes
  conn.uc = null
  discard(uc)
  if (connecting) {
    connectFailed(up, passiveOf(conn), ctx.now, ctx.opts.log, uc.error === '' ? 'connect failed' : uc.error)
    return retry(conn, false)
  }
  if (!got) {
    conn.giveUpStatus = 502
    if (reused && !conn.staleRetried && conn.keptAll) {
      conn.staleRetried = true
      return attach(conn, up, true)
    }
    if (!reused) responseFailed(up, passiveOf(conn), ctx.now, ctx.opts.log, 'closed before responding')
    if (idempotent(conn.method)) return retry(conn, true)
    return conn.front.respond(conn, 502)
  }
  responseFailed(up, passiveOf(conn), ctx.now, ctx.opts.log, 'closed mid-response')
  if (!conn.resStarted) return conn.front.respond(conn, 502)
  conn.front.abort(conn) // the response has begun: the client can only learn of the failure by a reset
}

/** How a stream on an HTTP/2 upstream failed (streamFailed). */
export const StreamFail = { Connect: 0, Refused: 1, Reset: 2 } as const

/**
 * A request on an HTTP/2 upstream failed before its response head:
 * Connect (the session never came up) and Refused (REFUSED_STREAM, or above
 * a GOAWAY's last stream id: never processed) retry like a connect failure;
 * Reset (the stream or its connection died) retries like a reset before any
 * response byte, idempotent methods only, and never a request whose body
 * was partly sent (`sentBody`).
 */
export function streamFailed(conn: Exchange, up: Upstream, how: number, sentBody: boolean, reason: string): void {
  const ctx = conn.ctx
  ctx.now = Date.now()
  if (how === StreamFail.Connect) {
    connectFailed(up, passiveOf(conn), ctx.now, ctx.opts.log, reason)
    return retry(conn, false)
  }
  if (how === StreamFail.Refused && !sentBody) return retry(conn, false)
  conn.giveUpStatus = 502
  responseFailed(up, passiveOf(conn), ctx.now, ctx.opts.log, reason)
  if (!sentBody && idempotent(conn.method)) return retry(conn, true)
  conn.front.respond(conn, 502)
}

/** The connect timer ran out: the connection was not made, or no slot came free while waiting for one. */
export function connectTimedOut(conn: Exchange): void {
  if (conn.waitingOn !== null) {
    leaveQueue(conn)
    return nextAttempt(conn)
  }
  const uc = conn.uc
  if (uc === null) return
  conn.uc = null
  discard(uc)
  connectFailed(uc.up, passiveOf(conn), conn.ctx.now, conn.ctx.opts.log, 'connect timeout')
  retry(conn, false)
}

/** No response byte (or no further byte) within responseTimeoutMs. */
export function responseTimedOut(conn: Exchange): void {
  const uc = conn.uc
  if (uc === null) return
  conn.uc = null
  discard(uc)
  responseFailed(uc.up, passiveOf(conn), conn.ctx.now, conn.ctx.opts.log, 'response timeout')
  if (conn.resStarted) {
    conn.front.abort(conn)
    return
  }
  conn.giveUpStatus = 504
  if (!uc.gotBytes && idempotent(conn.method)) return retry(conn, true)
  conn.front.respond(conn, 504)
}

function owner(uc: UpConn): Exchange | null {
  const conn = uc.owner as Exchange | null
  return conn !== null && conn.uc === uc ? conn : null
}

/** Socket events of attached upstream connections; one constant object, no per-request closures. */
export const UP_EVENTS: UpEvents = {
  connected(uc) {
    const conn = owner(uc)
    if (conn === null || !conn.front.live(conn)) return discard(uc)
    conn.ctx.now = Date.now()
    send(conn)
  },
  data(uc, chunk) {
    const conn = owner(uc)
    if (conn === null) {
      discard(uc)
      return false
    }
    return conn.front.data(conn, uc, chunk)
  },
  drain(uc) {
    const conn = owner(uc)
    if (conn === null || !conn.upFull) return
    conn.upFull = false
    conn.front.syncReading(conn)
  },
  ended(uc) {
    const conn = owner(uc)
    if (conn === null) return discard(uc)
    conn.front.ended(conn, uc, false)
  },
  closed(uc) {
    const conn = owner(uc)
    if (conn === null) return discard(uc)
    conn.front.ended(conn, uc, true)
  },
}
