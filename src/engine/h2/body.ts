// A stream's request body on its way upstream: DATA payloads held in the
// stream as they come, written once the upstream has the head. To an
// HTTP/1.1 upstream they go as they are when the client gave a
// content-length, in chunks otherwise, trailers becoming the chunked
// trailer section; to an HTTP/2 upstream as DATA (up-relay.ts). The
// client's flow-control window is credited back only for bytes the
// upstream took without filling up, so a slow upstream slows the client
// instead of making the balancer hold the upload: at most the stream's
// window (64 KiB) per stream and the connection's (1 MiB) per connection.
// The first retryBodyBytes written to an HTTP/1.1 upstream are kept to send
// again on a retry, as HTTP/1.1 bodies are.

import { H2Error } from './frames.ts'
import { resetStream, respondLocal } from './send.ts'
import { detachUp } from './upstream.ts'
import type { H2Stream } from './stream.ts'
import { Phase, STREAM_UPPER } from './stream.ts'
import { pumpUp } from './up-relay.ts'

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

/** body.MaxRequestBytes passed: 413 when no response has begun (the upstream's request is dropped), else the stream is reset. */
function bodyTooLarge(st: H2Stream): void {
  const us = st.us
  if (us !== null) {
    st.us = null
    detachUp(us, true)
  }
  if (st.resStarted) resetStream(st, H2Error.Cancel, true)
  else respondLocal(st, 413)
}

/** A DATA payload (a Buffer of its own) for the stream; `end`: END_STREAM came with it. */
export function streamData(st: H2Stream, payload: Buffer, end: boolean): void {
  if (st.phase === Phase.Done) return
  const n = payload.length
  st.bytesIn += n
  st.bodySeen += n
  if (st.bodyMax >= 0 && st.bodySeen > st.bodyMax) return bodyTooLarge(st)
  if (st.clLeft >= 0) {
    st.clLeft -= n
    if (st.clLeft < 0 || (end && st.clLeft !== 0)) return resetStream(st, H2Error.ProtocolError, true) // content-length and DATA disagree (RFC 9113 §8.1.1)
  }
  if (n !== 0) {
    st.pend.push(payload)
    st.pendPayload += n
  }
  if (end) st.reqEnd = true
  if (st.phase === Phase.Exchange) pumpBody(st)
}

/** Trailers (a header block with END_STREAM after the body). */
export function streamTrailers(st: H2Stream): void {
  const d = st.conn.hpack
  const names: string[] = []
  const values: string[] = []
  for (let i = 0; i < d.count; i++) {
    const name = d.names[i] as string
    if (name.charCodeAt(0) === 0x3a) return resetStream(st, H2Error.ProtocolError, true)
    names.push(name)
    values.push(d.values[i] as string)
  }
  st.reqEnd = true
  if (st.clLeft > 0) return resetStream(st, H2Error.ProtocolError, true)
  st.trailerNames = names
  st.trailerValues = values
  if (st.phase === Phase.Exchange) pumpBody(st)
}

/** Writes the held body to the attached upstream (once its head is written); credits the client for what it took. */
export function pumpBody(st: H2Stream): void {
  if (st.us !== null) {
    pumpUp(st)
    syncCredit(st)
    return
  }
  const uc = st.uc
  if (uc === null || !st.sent) return
  const pend = st.pend
  const sock = uc.sock
  let ok = true
  let wrote = false
  if (pend.length !== 0 || (st.reqEnd && st.chunked && !st.reqDone)) {
    sock.cork()
    for (let i = 0; i < pend.length; i++) {
      const part = pend[i] as Buffer
      if (st.chunked) {
        const size = Buffer.from(`${part.length.toString(16)}\r\n`, 'latin1')
        ok = sock.write(size) && ok
        ok = sock.write(part) && ok
        ok = sock.write(CRLF) && ok
        keep(st, size)
        keep(st, part)
        keep(st, CRLF)
      } else {
        ok = sock.write(part) && ok
        keep(st, part)
      }
    }
    if (st.reqEnd && st.chunked) {
      const names = st.trailerNames
      let last = LAST_CHUNK
      if (names !== null) {
        let section = '0\r\n'
        for (let i = 0; i < names.length; i++) section += `${names[i] as string}: ${st.trailerValues[i] as string}\r\n`
        last = Buffer.from(`${section}\r\n`, 'latin1')
        st.trailerNames = null
      }
      ok = sock.write(last) && ok
      keep(st, last)
    }
    sock.uncork()
    wrote = true
  }
  if (wrote) {
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
  STREAM_UPPER.creditBoth(st, n)
}
