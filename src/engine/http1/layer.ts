// The HTTP/1.1 engine put together: fills conn.ts's table of what a
// connection hands on to the modules above it (they import conn.ts, so it
// cannot import them). Loaded with the engine (engine/accept.ts), before any
// connection is accepted. The HTTP/2 upstream hooks come with the HTTP/2
// part (h2/part.ts).

import { pumpBody } from './body.ts'
import { UPPER } from './conn.ts'
import { H1_FRONT } from './front.ts'
import { readHeads } from './request.ts'
import { tunnelClientClosed, tunnelClientEnded, tunnelFromClient } from './tunnel.ts'

UPPER.front = H1_FRONT
UPPER.readHeads = readHeads
UPPER.pumpBody = (conn) => (conn.us === null ? pumpBody(conn) : UPPER.pumpH2Body(conn))
UPPER.tunnelFromClient = tunnelFromClient
UPPER.tunnelClientEnded = tunnelClientEnded
UPPER.tunnelClientClosed = tunnelClientClosed

export { acceptRawHandle, acceptSocket, acceptTlsSocket } from './conn.ts'
