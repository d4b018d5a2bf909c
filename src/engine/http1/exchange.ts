// One request's trip upstream: pick, connect (or reuse), send, and the single
// failure path that decides between a retry and an error response.
//
// Retry rules. The request moves to the next pick (other members of the same
// tier first, then lower tiers, then fallbacks; never a target it already
// tried, so at most one attempt per distinct target) when:
//   - the connection could not be made (refused, unreachable, timed out);
//   - the upstream reset, closed, or stayed silent past responseTimeoutMs
//     before any response byte, and the method is idempotent (GET HEAD
//     OPTIONS PUT DELETE TRACE).
// A reused pooled socket that fails before any response byte is the
// keep-alive race (the upstream closed it as we wrote): that is retried once
// on a fresh connection to the same upstream, any method, and is not counted
// against the upstream. Every retry needs the body read so far to be kept
// (up to retryBodyBytes); otherwise the answer is 502.
// When nothing is left: 503 with Retry-After if no attempt got the request
// out, otherwise 502 (sent, then the upstream failed) or 504 (it timed out),
// whichever happened last.

import { pick, soonest } from '../lb/pick.ts'
import { connectFailed, responseFailed } from '../upstream/passive.ts'
import type { UpConn, UpEvents } from '../upstream/pool.ts'
import { UpState, discard, open, take } from '../upstream/pool.ts'
import type { Upstream } from '../upstream/registry.ts'
import type { ClientConn } from './conn.ts'
import { Framing, ResPhase, St, Timer, arm, respond, syncReading } from './conn.ts'
import { pumpBody } from './body.ts'
import { Method } from './parse.ts'
import { completeResponse, onUpstreamData } from './relay.ts'
import { tunnelUpstreamClosed, tunnelUpstreamEnded } from './tunnel.ts'

export function startExchange(conn: ClientConn): void {
  conn.tried.length = 0
  conn.staleRetried = false
  conn.giveUpStatus = 503
  nextAttempt(conn)
}

function nextAttempt(conn: ClientConn): void {
  const rt = conn.route
  if (rt === null) return respond(conn, 502)
  let up = pick(rt, conn.ctx.now, conn.tried)
  // Everything is ejected: probe the upstream that comes back first rather than fail without trying.
  if (up === null && conn.tried.length === 0) up = soonest(rt, conn.tried)
  if (up === null) return respond(conn, conn.giveUpStatus)
  conn.tried.push(up)
  attach(conn, up, false)
}

function attach(conn: ClientConn, up: Upstream, fresh: boolean): void {
  conn.sent = false
  conn.upFull = false
  const idle = fresh ? null : take(up, conn)
  if (idle !== null) {
    conn.uc = idle
    send(conn)
    return
  }
  conn.uc = open(up, UP_EVENTS, conn)
  arm(conn, Timer.Connect, conn.ctx.opts.connectTimeoutMs)
}

/** Writes the head and the kept body to the attached connection, then streams the rest of the body. */
function send(conn: ClientConn): void {
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
    ok = sock.write(head, 'latin1')
  } else {
    sock.cork()
    sock.write(head, 'latin1')
    for (let i = 0; i < kept.length - 1; i++) sock.write(kept[i] as Buffer)
    ok = sock.write(kept[kept.length - 1] as Buffer)
    sock.uncork()
  }
  if (!ok) conn.upFull = true
  arm(conn, Timer.Response, conn.ctx.opts.responseTimeoutMs)
  if (!conn.reqDone) pumpBody(conn)
  else syncReading(conn)
}

function idempotent(method: number): boolean {
  return method === Method.Get || method === Method.Head || method === Method.Options || method === Method.Put || method === Method.Delete || method === Method.Trace
}

function retry(conn: ClientConn): void {
  if (!conn.keptAll) return respond(conn, conn.giveUpStatus)
  nextAttempt(conn)
}

/** The attached connection failed (closed, reset, EOF where a response was due). */
function failed(conn: ClientConn, uc: UpConn): void {
  const ctx = conn.ctx
  ctx.now = Date.now()
  const up = uc.up
  const connecting = uc.state === UpState.Connecting
  const reused = uc.reused
  const got = uc.gotBytes
  conn.uc = null
  discard(uc)
  if (connecting) {
    connectFailed(up, ctx.now)
    return retry(conn)
  }
  if (!got) {
    conn.giveUpStatus = 502
    if (reused && !conn.staleRetried && conn.keptAll) {
      conn.staleRetried = true
      return attach(conn, up, true)
    }
    if (!reused) responseFailed(up, ctx.now)
    if (idempotent(conn.method)) return retry(conn)
    return respond(conn, 502)
  }
  responseFailed(up, ctx.now)
  if (!conn.resStarted) return respond(conn, 502)
  conn.sock.destroy() // the response has begun: the client can only learn of the failure by the connection dying
}

export function connectTimedOut(conn: ClientConn): void {
  const uc = conn.uc
  if (uc === null) return
  conn.uc = null
  discard(uc)
  connectFailed(uc.up, conn.ctx.now)
  retry(conn)
}

/** No response byte (or no further byte) within responseTimeoutMs. */
export function responseTimedOut(conn: ClientConn): void {
  const uc = conn.uc
  if (uc === null) return
  conn.uc = null
  discard(uc)
  responseFailed(uc.up, conn.ctx.now)
  if (conn.resStarted) {
    conn.sock.destroy()
    return
  }
  conn.giveUpStatus = 504
  if (!uc.gotBytes && idempotent(conn.method)) return retry(conn)
  respond(conn, 504)
}

function owner(uc: UpConn): ClientConn | null {
  const conn = uc.owner as ClientConn | null
  return conn !== null && conn.uc === uc ? conn : null
}

/** Socket events of attached upstream connections; one constant object, no per-request closures. */
export const UP_EVENTS: UpEvents = {
  connected(uc) {
    const conn = owner(uc)
    if (conn === null || conn.state !== St.Upstream) return discard(uc)
    conn.ctx.now = Date.now()
    send(conn)
  },
  data(uc, chunk) {
    const conn = owner(uc)
    if (conn === null) return discard(uc)
    onUpstreamData(conn, uc, chunk)
  },
  drain(uc) {
    const conn = owner(uc)
    if (conn === null || !conn.upFull) return
    conn.upFull = false
    syncReading(conn)
  },
  ended(uc) {
    const conn = owner(uc)
    if (conn === null) return discard(uc)
    if (conn.state === St.Tunnel) return tunnelUpstreamEnded(conn)
    if (conn.resPhase === ResPhase.Body && conn.framing === Framing.Close) {
      uc.reusable = false
      return completeResponse(conn)
    }
    failed(conn, uc)
  },
  closed(uc) {
    const conn = owner(uc)
    if (conn === null) return discard(uc)
    if (conn.state === St.Tunnel) return tunnelUpstreamClosed(conn)
    if (conn.resPhase === ResPhase.Body && conn.framing === Framing.Close && uc.error === '') {
      uc.reusable = false
      return completeResponse(conn)
    }
    failed(conn, uc)
  },
}
