// A compressed response on an HTTP/2 stream (the compress group, see
// rules/compress.ts), from an HTTP/1.1 upstream: the body's payload goes
// into the coder, the coder's output goes out as DATA under the client's
// flow control, END_STREAM (or the upstream's trailers) after its last
// bytes. At most ZIP_STREAMS_PER_CONN streams of a connection are
// compressed at once; the others are sent as they are, with Vary.
//
// Backpressure: DATA queued for window, or the client's socket full, pauses
// the coder (send.ts resumeUpstream resumes it); the coder's input full
// pauses the upstream (drained resumes it).

import type { HeaderEditPlan } from '../../compiler/snapshot.ts'
import { Enc } from '../../compiler/snapshot.ts'
import { Method } from '../http1/parse.ts'
import type { ResponseHead } from '../http1/parse.ts'
import { zipHeadOf } from '../http1/compress-head.ts'
import type { ZipExtra } from '../http1/compress-head.ts'
import type { UpConn } from '../upstream/pool.ts'
import { Verdict, ZIP_STREAMS_PER_CONN, Zip, negotiate, varyNames, verdict, zipEdits } from '../rules/compress.ts'
import type { ZipHead, ZipSink } from '../rules/compress.ts'
import { sendData } from './send.ts'
import type { H2Stream } from './stream.ts'
import { Phase } from './stream.ts'

const ZH: ZipHead = { status: 0, contentType: '', contentEncoding: '', cacheControl: '', length: -1 }
const EXTRA: ZipExtra = { etag: '', vary: '' }

/** The coding a stream's request takes, from its head of our own making (lower-case names; every accept-encoding field). */
export function zipAcceptedH2(st: H2Stream, head: string): number {
  const plan = st.route?.plan.rules?.compress ?? null
  if (plan === null) return Enc.None
  let ae = ''
  let at = head.indexOf('\r\naccept-encoding: ')
  while (at >= 0) {
    const start = at + 19
    const end = head.indexOf('\r\n', start)
    ae = ae === '' ? head.slice(start, end) : `${ae},${head.slice(start, end)}`
    at = head.indexOf('\r\naccept-encoding: ', end)
  }
  return negotiate(plan, ae)
}

/**
 * For a final response head just parsed (HDR still its parse's) on a route
 * with a compress group: the edits its HEADERS get (null: the route's own),
 * and st.zip set when the body goes through a coder.
 */
export function zipHeadH2(st: H2Stream, buf: Buffer, r: ResponseHead, bodyless: boolean): HeaderEditPlan | null {
  const plan = st.route?.plan.rules?.compress ?? null
  // A transfer coding other than chunked: the bytes under it are not the content.
  if (plan === null || r.teOther) return null
  zipHeadOf(buf, r, r.status, ZH, EXTRA)
  const conn = st.conn
  // Over the connection's bound: this stream goes as it is (still with Vary: another request may get it compressed).
  const enc = conn.zipping >= ZIP_STREAMS_PER_CONN ? Enc.None : (st.zipAccept as Enc)
  const v = verdict(plan, ZH, enc, st.method === Method.Head, bodyless)
  if (v === Verdict.Leave) return null
  if (v === Verdict.Compress) {
    st.zip = new Zip(enc, ZH.length, st, H2_ZIP)
    st.zipFull = false
    conn.zipping++
  }
  return zipEdits(plan, v, enc, EXTRA.etag, varyNames(EXTRA.vary))
}

/** Payload bytes into the coder; the upstream pauses while the coder's input is full. */
export function zipFeed(st: H2Stream, data: Buffer): void {
  const zip = st.zip
  if (zip === null || data.length === 0) return
  if (!zip.write(data) && !st.zipFull) {
    st.zipFull = true
    const uc = st.uc
    if (uc !== null) uc.sock.pause()
  }
}

/** Set by h2/relay.ts: what ends the stream once the coder's last bytes are out (END_STREAM, or the trailers). */
export const ZIP_END: { end: (st: H2Stream) => void } = {
  end: () => {
    throw new Error('h2/relay.ts was not loaded')
  },
}

const H2_ZIP: ZipSink<H2Stream> = {
  data(st, chunk) {
    if (st.phase === Phase.Done) return
    const queued = !sendData(st, chunk, false)
    const conn = st.conn
    if (queued || conn.clientFull) {
      st.zip?.pause()
      if (!queued && !conn.paused.includes(st)) conn.paused.push(st)
    }
  },
  drained(st) {
    if (!st.zipFull) return
    st.zipFull = false
    const uc: UpConn | null = st.uc
    if (uc !== null && !st.upPaused) uc.sock.resume()
  },
  ended(st) {
    if (st.phase === Phase.Done) return
    st.zip = null
    st.conn.zipping--
    ZIP_END.end(st)
  },
}
