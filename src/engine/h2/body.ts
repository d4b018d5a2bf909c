// A stream's request body on its way to an HTTP/1.1 upstream: DATA
// payloads framed for it (as they are with a content-length, in chunks
// without one; trailers become the chunked trailer section), written as
// soon as the upstream connection has the head, held in the stream until
// then. The client's flow-control window is credited back only for bytes
// the upstream socket took without filling up, so a slow upstream slows
// the client instead of making the balancer hold the upload: at most the
// stream's window (64 KiB) per stream and the connection's (1 MiB) per
// connection. The first retryBodyBytes are kept to send again on a retry,
// as HTTP/1.1 bodies are.

import { H2Error } from './frames.ts'
import { creditBoth } from './conn.ts'
import { resetStream } from './send.ts'
import type { H2Stream } from './stream.ts'
import { Phase } from './stream.ts'

const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1')
const CRLF = Buffer.from('\r\n', 'latin1')

function keep(st: H2Stream, part: Buffer): void {
  if (!st.keptAll) return
  const n = st.keptBytes + part.length
  if (n > st.ctx.opts.retryBodyBytes) {
    st.keptAll = false
    st.kept.length = 0
    st.keptBytes = 0
    return
  }
  st.kept.push(part)
  st.keptBytes = n
}

/** A DATA payload (a Buffer of its own) for the stream; `end`: END_STREAM came with it. */
export function streamData(st: H2Stream, payload: Buffer, end: boolean): void {
  if (st.phase === Phase.Done) return
  const n = payload.length
  st.bytesIn += n
  if (st.clLeft >= 0) {
    st.clLeft -= n
    if (st.clLeft < 0 || (end && st.clLeft !== 0)) return resetStream(st, H2Error.ProtocolError, true) // content-length and DATA disagree (RFC 9113 §8.1.1)
  }
  if (n !== 0) {
    if (st.chunked) {
      st.pend.push(Buffer.from(`${n.toString(16)}\r\n`, 'latin1'), payload, CRLF)
    } else {
      st.pend.push(payload)
    }
    st.pendPayload += n
  }
  if (end) {
    st.reqEnd = true
    if (st.chunked) st.pend.push(LAST_CHUNK)
  }
  if (st.phase === Phase.Exchange) pumpBody(st)
}

/** Trailers (a header block with END_STREAM after the body): the chunked trailer section, when the body is chunked; dropped otherwise. */
export function streamTrailers(st: H2Stream): void {
  const d = st.conn.hpack
  let section = '0\r\n'
  for (let i = 0; i < d.count; i++) {
    const name = d.names[i] as string
    if (name.charCodeAt(0) === 0x3a) return resetStream(st, H2Error.ProtocolError, true)
    section += `${name}: ${d.values[i] as string}\r\n`
  }
  st.reqEnd = true
  if (st.clLeft > 0) return resetStream(st, H2Error.ProtocolError, true)
  if (st.chunked) st.pend.push(Buffer.from(`${section}\r\n`, 'latin1'))
  if (st.phase === Phase.Exchange) pumpBody(st)
}

/** Writes the held body to the attached upstream (once its head is written); credits the client for what it took. */
export function pumpBody(st: H2Stream): void {
  const uc = st.uc
  if (uc === null || !st.sent) return
  const pend = st.pend
  if (pend.length !== 0) {
    const sock = uc.sock
    let ok = true
    if (pend.length === 1) ok = sock.write(pend[0] as Buffer)
    else {
      sock.cork()
      for (let i = 0; i < pend.length; i++) {
        const part = pend[i] as Buffer
        ok = sock.write(part)
        keep(st, part)
      }
      sock.uncork()
    }
    if (pend.length === 1) keep(st, pend[0] as Buffer)
    pend.length = 0
    st.held += st.pendPayload
    st.pendPayload = 0
    if (!ok) st.upFull = true
  }
  if (st.reqEnd) st.reqDone = true
  syncCredit(st)
}

/** Credits the client for body bytes the upstream has taken, unless its socket is full (then on its drain). */
export function syncCredit(st: H2Stream): void {
  if (st.upFull || st.held === 0) return
  const n = st.held
  st.held = 0
  creditBoth(st, n)
}
