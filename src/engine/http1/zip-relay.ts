// A compressed response to an HTTP/1.1 client (the compress group, see
// rules/compress.ts): the upstream's body, whatever its framing, is decoded
// to its payload and written into the coder; the coder's output goes to the
// client chunked (close-delimited to an HTTP/1.0 client). The upstream
// connection goes back to the pool as soon as its response is read; the
// client's request ends when the coder's last bytes are out.
//
// Backpressure: the client socket full pauses the coder (onDrain in conn.ts
// resumes it); the coder's input full pauses the upstream (drained resumes it).

import type { HeaderEditPlan } from '../../compiler/snapshot.ts'
import { Enc } from '../../compiler/snapshot.ts'
import type { UpConn } from '../upstream/pool.ts'
import { Verdict, Zip, negotiate, varyNames, verdict, zipEdits } from '../rules/compress.ts'
import type { ZipHead, ZipSink } from '../rules/compress.ts'
import { Chunk, advance } from './chunked.ts'
import { acceptEncodingOf, zipHeadOf } from './compress-head.ts'
import type { ZipExtra } from './compress-head.ts'
import type { ClientConn } from './conn.ts'
import { Framing, ResPhase, St, Timer, finishRequest } from './conn.ts'
import { Method } from './parse.ts'
import type { RequestHead, ResponseHead } from './parse.ts'

const ZH: ZipHead = { status: 0, contentType: '', contentEncoding: '', cacheControl: '', length: -1 }
const EXTRA: ZipExtra = { etag: '', vary: '' }
const CRLF = Buffer.from('\r\n', 'latin1')
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1')

/** The coding the request just parsed takes on a route with a compress group (its HDR is still the parse's). */
export function zipAccepted(conn: ClientConn, buf: Buffer, h: RequestHead): number {
  const rules = conn.route?.plan.rules ?? null
  const plan = rules === null ? null : rules.compress
  return plan === null ? Enc.None : negotiate(plan, acceptEncodingOf(buf, h))
}

/**
 * For a final response head just parsed on a route with a compress group:
 * the edits its head gets (null: the route's own, nothing of compression),
 * and conn.zip set when the body goes through a coder.
 */
export function zipHead(conn: ClientConn, buf: Buffer, r: ResponseHead, framing: number): HeaderEditPlan | null {
  const plan = conn.route?.plan.rules?.compress ?? null
  // A transfer coding other than chunked: the bytes under it are not the content.
  if (plan === null || r.teOther) return null
  zipHeadOf(buf, r, r.status, ZH, EXTRA)
  const v = verdict(plan, ZH, conn.zipAccept as Enc, conn.method === Method.Head, framing === Framing.None)
  if (v === Verdict.Leave) return null
  if (v === Verdict.Compress) {
    conn.zip = new Zip(conn.zipAccept as Enc, ZH.length, conn, H1_ZIP)
    conn.zipFull = false
  }
  return zipEdits(plan, v, conn.zipAccept as Enc, EXTRA.etag, varyNames(EXTRA.vary))
}

function feed(conn: ClientConn, uc: UpConn, zip: Zip<ClientConn>, data: Buffer): void {
  if (!zip.write(data) && !conn.zipFull) {
    conn.zipFull = true
    uc.sock.pause()
  }
}

/** body() of relay.ts: the body passed body.MaxResponseBytes. */
export const TOO_LARGE = -2

/** Body bytes from pos into the coder; returns where the response ended (or buf.length), -1 on a framing error, TOO_LARGE past body.MaxResponseBytes. */
export function zipBody(conn: ClientConn, uc: UpConn, zip: Zip<ClientConn>, buf: Buffer, pos: number): number {
  const len = buf.length
  switch (conn.framing) {
    case Framing.Length: {
      const n = Math.min(conn.resLeft, len - pos)
      feed(conn, uc, zip, pos === 0 && n === len ? buf : buf.subarray(pos, pos + n))
      conn.resLeft -= n
      if (conn.resLeft === 0) conn.resPhase = ResPhase.Done
      return pos + n
    }
    case Framing.Chunked: {
      const d = conn.resChunk
      if (d === null) return -1 // not reached: a chunked response made it (relay.ts)
      while (pos < len) {
        const p = advance(d, buf, pos, len, true)
        if (d.state === Chunk.Error) return -1
        if (conn.resMax !== 0 && d.total > conn.resMax) return TOO_LARGE
        if (d.lastWasData && p > pos) feed(conn, uc, zip, buf.subarray(pos, p))
        pos = p
        if (d.state === Chunk.Done) {
          conn.resPhase = ResPhase.Done
          break
        }
      }
      return pos
    }
    default: {
      const data = pos === 0 ? buf : buf.subarray(pos)
      if (conn.resMax !== 0 && (conn.resSeen += data.length) > conn.resMax) return TOO_LARGE
      feed(conn, uc, zip, data)
      return len
    }
  }
}

const H1_ZIP: ZipSink<ClientConn> = {
  data(conn, chunk) {
    if (conn.state !== St.Upstream) return
    const sock = conn.sock
    let ok: boolean
    if (conn.version === 11) {
      const size = Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1')
      sock.cork()
      sock.write(size)
      sock.write(chunk)
      ok = sock.write(CRLF)
      sock.uncork()
      conn.bytesOut += size.length + chunk.length + 2
    } else {
      ok = sock.write(chunk)
      conn.bytesOut += chunk.length
    }
    if (!ok) {
      conn.clientFull = true
      conn.zip?.pause()
    }
    // Progress: the deadline of a body whose upstream is done (completeResponse) moves on.
    if (conn.timer === Timer.Linger) conn.deadline = Date.now() + conn.ctx.opts.responseTimeoutMs
  },
  drained(conn) {
    if (!conn.zipFull) return
    conn.zipFull = false
    const uc = conn.uc
    if (uc !== null && !conn.clientFull) uc.sock.resume()
  },
  ended(conn) {
    if (conn.state !== St.Upstream) return
    conn.zip = null
    if (conn.version === 11) {
      conn.bytesOut += LAST_CHUNK.length
      conn.sock.write(LAST_CHUNK)
    }
    finishRequest(conn)
  },
}
