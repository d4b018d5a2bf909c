// After a 101 to an upgrade request (WebSocket): raw bytes both ways with
// backpressure, half-close passed through (a FIN from one side ends the
// other's write side), and the first error on either side destroys both.
// The upstream connection never returns to the pool. Tunnels have no idle
// timer (WebSockets idle for long); TCP keep-alive finds dead peers.

import type { UpConn } from '../upstream/pool.ts'
import { closeSoon, discard } from '../upstream/pool.ts'
import type { ClientConn } from './conn.ts'
import { St, Timer, syncReading } from './conn.ts'
import { own } from './input.ts'
import { tunnelEnded, tunnelStarted } from './ended.ts'

const KEEPALIVE_MS = 60_000

export function startTunnel(conn: ClientConn, uc: UpConn, buf: Buffer, end: number): void {
  conn.state = St.Tunnel
  conn.timer = Timer.None
  conn.ctx.inFlight-- // the request is over; the tunnel is not a request
  tunnelStarted(conn)
  uc.reusable = false
  if (end < buf.length) tunnelFromUpstream(conn, uc, buf.subarray(end))
  // Called from an upstream read: conn.buf is never the shared client read buffer here (conn.ts copies it out).
  const pending = conn.buf
  if (pending !== null && conn.off < pending.length) {
    if (!uc.sock.write(pending.subarray(conn.off))) conn.upFull = true
  }
  conn.buf = null
  conn.off = 0
  conn.sock.setKeepAlive(true, KEEPALIVE_MS)
  uc.sock.setKeepAlive(true, KEEPALIVE_MS)
  if (conn.clientEnded) uc.sock.end()
  syncReading(conn)
}

export function tunnelFromClient(conn: ClientConn, chunk: Buffer): void {
  const uc = conn.uc
  if (uc === null) return
  conn.bytesIn += chunk.length
  if (!uc.sock.write(own(chunk))) {
    conn.upFull = true
    syncReading(conn)
  }
}

export function tunnelFromUpstream(conn: ClientConn, uc: UpConn, chunk: Buffer): void {
  conn.bytesOut += chunk.length
  if (!conn.sock.write(chunk) && !conn.clientFull) {
    conn.clientFull = true
    uc.sock.pause()
  }
}

export function tunnelClientEnded(conn: ClientConn): void {
  const uc = conn.uc
  if (uc !== null) uc.sock.end()
}

export function tunnelUpstreamEnded(conn: ClientConn): void {
  conn.sock.end()
}

/** The upstream socket is gone: an error ends the client at once, a clean close after its pending bytes. */
export function tunnelUpstreamClosed(conn: ClientConn): void {
  const uc = conn.uc
  if (uc === null) return
  conn.uc = null
  discard(uc)
  if (uc.error !== '') conn.sock.destroy()
  else conn.sock.destroySoon()
}

/** The client socket is gone (conn.ts onClose): same rule towards the upstream. */
export function tunnelClientClosed(conn: ClientConn): void {
  tunnelEnded(conn)
  const uc = conn.uc
  if (uc === null) return
  conn.uc = null
  if (conn.sock.errored !== null) {
    discard(uc)
    return
  }
  closeSoon(uc)
}
