// Request body: streamed from the client's buffer to the attached upstream
// as it arrives, never buffered whole. Content-Length bodies are counted;
// chunked bodies are validated by the decoder first and only the bytes it has
// accepted are written (raw, framing included), so an invalid chunk never
// reaches the upstream: the half-sent request is aborted instead. The first
// retryBodyBytes are kept (the Buffers written, no further copy) so a retry
// can send the request again.

import { Chunk, advance } from './chunked.ts'
import type { ClientConn } from './conn.ts'
import { BodyKind, St, Timer, arm, respond, syncReading } from './conn.ts'
import { own } from './input.ts'

function keep(conn: ClientConn, part: Buffer): void {
  if (!conn.keptAll) return
  const n = conn.keptBytes + part.length
  if (n > conn.ctx.opts.retryBodyBytes) {
    conn.keptAll = false
    conn.kept.length = 0
    conn.keptBytes = 0
    return
  }
  conn.kept.push(part)
  conn.keptBytes = n
}

/** Forwards what `buf` holds of the body to conn.uc (which has been sent the head). */
export function pumpBody(conn: ClientConn): void {
  const uc = conn.uc
  const buf = conn.buf
  if (uc === null || buf === null || conn.reqDone) {
    if (buf === null && !conn.reqDone && conn.clientEnded)
      conn.sock.destroy() // the body can never complete
    else syncReading(conn)
    return
  }
  const start = conn.off
  const len = buf.length
  let end: number
  if (conn.bodyKind === BodyKind.Length) {
    end = start + Math.min(conn.bodyLeft, len - start)
    conn.bodyLeft -= end - start
    if (conn.bodyLeft === 0) conn.reqDone = true
  } else {
    const d = conn.reqChunk
    if (d === null) return // not reached: a chunked request made it (request.ts)
    end = advance(d, buf, start, len, false)
    if (d.state === Chunk.Error) {
      // Nothing of this read is forwarded; the upstream connection is dropped mid-request.
      if (conn.resStarted) conn.sock.destroy()
      else respond(conn, 400)
      return
    }
    if (conn.bodyMax >= 0 && d.total > conn.bodyMax) {
      // body.MaxRequestBytes: the chunks announced pass it; nothing more goes upstream, whose connection is dropped.
      if (conn.resStarted) conn.sock.destroy()
      else respond(conn, 413)
      return
    }
    if (d.state === Chunk.Done) conn.reqDone = true
  }
  if (end >= len) {
    conn.buf = null
    conn.off = 0
    if (!conn.reqDone && conn.clientEnded) {
      conn.sock.destroy() // the client closed mid-body: the request can never complete
      return
    }
  } else {
    conn.off = end
  }
  if (end > start) {
    // A copy when the bytes are in the shared read buffer: the write may stay pending.
    const part = own(start === 0 && end === len ? buf : buf.subarray(start, end))
    conn.bytesIn += part.length
    keep(conn, part)
    if (!uc.sock.write(part)) conn.upFull = true
  }
  // The response timer measures upstream silence: it restarts with each body
  // byte sent, and runs from the end of the request once the body is complete.
  if (conn.state === St.Upstream && conn.timer === Timer.Response) arm(conn, Timer.Response, conn.ctx.opts.responseTimeoutMs)
  syncReading(conn)
}
