// HTTP/2 with prior knowledge on a plain listener that allows it (server
// Protocols with `h2c`): a connection whose first bytes are the HTTP/2
// preface leaves the HTTP/1.1 reader for an HTTP/2 connection (h2/conn.ts)
// on the same socket, with what was read so far. Anywhere else the preface
// is an HTTP/1.1 request line of an unknown version (505).

import type { Socket } from 'node:net'
import { H2_SINK, startH2, startH2Socket } from '../h2/conn.ts'
import { PREFACE } from '../h2/frames.ts'
import { RawClientSocket } from './client-socket.ts'
import type { ClientConn } from './conn.ts'
import { St, Timer } from './conn.ts'

/** At the start of a connection: 1 = the preface (the connection is handed over), 0 = not it, -1 = maybe, wait for more. */
export function takeH2c(conn: ClientConn, buf: Buffer, off: number): number {
  const n = Math.min(buf.length - off, PREFACE.length)
  if (buf.compare(PREFACE, 0, n, off, off + n) !== 0) return 0
  if (n < PREFACE.length) return -1
  const rest = Buffer.from(buf.subarray(off))
  conn.state = St.Closed
  conn.timer = Timer.None
  conn.buf = null
  conn.off = 0
  conn.listener.remove(conn)
  const sock = conn.sock
  if (sock instanceof RawClientSocket) {
    const h2 = startH2(sock, conn.clientIp, conn.listener, conn.ctx, false, null)
    sock.retarget(h2, H2_SINK)
    H2_SINK.read(h2, rest)
  } else {
    const s = sock as unknown as Socket
    for (const ev of ['data', 'end', 'drain', 'close']) s.removeAllListeners(ev)
    startH2Socket(s, conn.listener, conn.ctx, false, rest)
  }
  return 1
}
