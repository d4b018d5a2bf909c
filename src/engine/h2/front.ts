// The HTTP/2 stream's side of an exchange (../exchange.ts): answers are
// HEADERS and DATA on the stream, the body comes from its DATA frames, the
// response is relayed as frames, and a failure after the response began
// resets the stream alone (RST_STREAM INTERNAL_ERROR), not the connection.

import type { Exchange, Front } from '../exchange.ts'
import { ResPhase, failed } from '../exchange.ts'
import { Framing } from '../http1/conn.ts'
import type { UpConn } from '../upstream/pool.ts'
import { pumpBody, syncCredit } from './body.ts'
import { errorPage } from '../rules/error-page.ts'
import { H2Error } from './frames.ts'
import { closeDelimitedEnd, h2UpstreamData } from './relay.ts'
import { attachUp } from './up-relay.ts'
import { resetStream, respondLocal, respondLocalWith } from './send.ts'
import type { H2Stream } from './stream.ts'
import { Phase } from './stream.ts'

export const H2_FRONT: Front = {
  live: (ex) => (ex as H2Stream).phase === Phase.Exchange,
  respond(ex: Exchange, status: number): void {
    if (!errorPage(ex, status)) respondLocal(ex as H2Stream, status)
  },
  respondWith: (ex, status, fields, body) => respondLocalWith(ex as H2Stream, status, fields, body),
  syncReading: (ex) => syncCredit(ex as H2Stream),
  pumpBody: (ex) => pumpBody(ex as H2Stream),
  data: (ex: Exchange, uc: UpConn, chunk: Buffer) => h2UpstreamData(ex as H2Stream, uc, chunk),
  ended(ex: Exchange, uc: UpConn, closed: boolean): void {
    const st = ex as H2Stream
    if (st.resPhase === ResPhase.Body && st.framing === Framing.Close && (!closed || uc.error === '')) return closeDelimitedEnd(st, uc)
    failed(st, uc)
  },
  abort: (ex) => resetStream(ex as H2Stream, H2Error.InternalError, true),
  attachH2: (ex, up) => attachUp(ex as H2Stream, up),
}
