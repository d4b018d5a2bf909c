// The HTTP/2 part of the engine (engine/parts.ts loads it): HTTP/2 client
// connections (h2/conn.ts, by ALPN or h2c prior knowledge) and HTTP/1.1
// requests relayed on HTTP/2 upstream streams (http1/h2-upstream.ts). On
// load it fills the HTTP/1.1 connection's hooks for requests on an HTTP/2
// upstream (conn.ts's UPPER, as http1/layer.ts does for the rest), which
// only such a request calls.

import { UPPER } from '../http1/conn.ts'
import { H1_FRONT } from '../http1/front.ts'
import { attachH2, detachH2, drainedH2, pumpH2Body, timedOutH2 } from '../http1/h2-upstream.ts'

UPPER.pumpH2Body = pumpH2Body
UPPER.detachH2 = detachH2
UPPER.drainedH2 = drainedH2
UPPER.timedOutH2 = timedOutH2
H1_FRONT.attachH2 = (ex, up) => attachH2(ex as Parameters<typeof attachH2>[0], up)

export { H2Conn, drainH2, sweepH2 } from './conn.ts'
export { takeH2c } from '../http1/h2c.ts'
