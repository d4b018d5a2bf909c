// The HTTP/1.1 engine put together: fills conn.ts's table of what a
// connection hands on to the modules above it (they import conn.ts, so it
// cannot import them). Loaded with the engine (engine/accept.ts), before any
// connection is accepted.

import { pumpBody } from './body.ts'
import { UPPER } from './conn.ts'
import { H1_FRONT } from './front.ts'
import { detachH2, drainedH2, pumpH2Body, timedOutH2 } from './h2-upstream.ts'
import { readHeads } from './request.ts'
import { tunnelClientClosed, tunnelClientEnded, tunnelFromClient } from './tunnel.ts'

UPPER.front = H1_FRONT
UPPER.readHeads = readHeads
UPPER.pumpBody = (conn) => (conn.us === null ? pumpBody(conn) : pumpH2Body(conn))
UPPER.detachH2 = detachH2
UPPER.drainedH2 = drainedH2
UPPER.timedOutH2 = timedOutH2
UPPER.tunnelFromClient = tunnelFromClient
UPPER.tunnelClientEnded = tunnelClientEnded
UPPER.tunnelClientClosed = tunnelClientClosed

export { acceptRawHandle, acceptSocket, acceptTlsSocket } from './conn.ts'
