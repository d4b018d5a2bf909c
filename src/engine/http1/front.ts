// The HTTP/1.1 connection's side of an exchange (../exchange.ts): how its
// current request is answered, how its body is read and its response
// written, and what an upstream's end means to it (the end of a
// close-delimited response, of a tunnel, or a failure).

import type { Exchange, Front } from '../exchange.ts'
import { ResPhase, failed } from '../exchange.ts'
import type { UpConn } from '../upstream/pool.ts'
import { pumpBody } from './body.ts'
import { errorPage } from '../rules/error-page.ts'
import type { ClientConn } from './conn.ts'
import { Framing, St, UPPER, respond, respondWith, syncReading } from './conn.ts'
import { completeResponse, onUpstreamData } from './relay.ts'
import { tunnelUpstreamClosed, tunnelUpstreamEnded } from './tunnel.ts'

const unwiredH2 = (): never => {
  throw new Error('engine/h2/part.ts was not loaded')
}

export const H1_FRONT: Front = {
  live: (ex) => (ex as ClientConn).state === St.Upstream,
  respond(ex: Exchange, status: number): void {
    if (!errorPage(ex, status)) respond(ex as ClientConn, status)
  },
  respondWith(ex: Exchange, status: number, fields: ReadonlyArray<readonly [string, string]>, body: Buffer): void {
    let lines = ''
    for (const [n, v] of fields) lines += `${n}: ${v}\r\n`
    respondWith(ex as ClientConn, status, lines, body)
  },
  syncReading: (ex) => syncReading(ex as ClientConn),
  pumpBody: (ex) => ((ex as ClientConn).us === null ? pumpBody(ex as ClientConn) : UPPER.pumpH2Body(ex as ClientConn)),
  data(ex: Exchange, uc: UpConn, chunk: Buffer): boolean {
    const conn = ex as ClientConn
    onUpstreamData(conn, uc, chunk)
    // Anything the client socket could not take at once, or a coder has not yet read, still points into chunk.
    return conn.sock.writableLength !== 0 || conn.zip !== null
  },
  ended(ex: Exchange, uc: UpConn, closed: boolean): void {
    const conn = ex as ClientConn
    if (conn.state === St.Tunnel) return closed ? tunnelUpstreamClosed(conn) : tunnelUpstreamEnded(conn)
    if (conn.resPhase === ResPhase.Body && conn.framing === Framing.Close && (!closed || uc.error === '')) {
      uc.reusable = false
      return completeResponse(conn)
    }
    failed(conn, uc)
  },
  abort: (ex) => (ex as ClientConn).sock.destroy(),
  // The request goes on an HTTP/2 stream of the upstream (h2-upstream.ts, set by h2/part.ts with the first HTTP/2 upstream).
  attachH2: unwiredH2,
}
