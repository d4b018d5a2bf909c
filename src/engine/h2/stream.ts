// One HTTP/2 stream carrying one request: an Exchange (../exchange.ts)
// like an HTTP/1.1 connection's current request, routed, balanced, retried
// and failed over by the same code. The fields the exchange shares are
// documented there and in http1/conn.ts; the rest are the stream's own:
// its request body on its way to the upstream, its response on its way to
// the client under the client's flow control, and what the access log and
// the meters need when it ends.

import type { Exchange, Front } from '../exchange.ts'
import type { Zip } from '../rules/compress.ts'
import { ResPhase, Timer } from '../exchange.ts'
import type { EngineCtx } from '../context.ts'
import type { ChunkDecoder } from '../http1/chunked.ts'
import type { RouteRuntime } from '../lb/pick.ts'
import type { Listener } from '../listener.ts'
import type { UpConn } from '../upstream/pool.ts'
import type { Upstream } from '../upstream/registry.ts'
import type { UpStream } from './upstream.ts'
import type { H2Conn } from './conn.ts'

/**
 * What a stream's code reaches above it: the exchange's front (front.ts) and
 * the connection's stream bookkeeping (conn.ts). Those modules import this
 * one and the modules that use a stream (body.ts, send.ts), so these are
 * filled by conn.ts once, when it loads (before any stream exists), and the
 * engine's imports stay a DAG.
 */
export interface StreamUpper {
  front: Front
  /** The client sent n bytes of DATA on st: credit the connection and the stream (conn.ts). */
  creditBoth(st: H2Stream, n: number): void
  /** The stream ended: the connection forgets it (conn.ts). */
  forget(st: H2Stream): void
}

const unwired = (): never => {
  throw new Error('engine/h2/conn.ts was not loaded')
}

export const STREAM_UPPER: StreamUpper = {
  front: { live: unwired, respond: unwired, respondWith: unwired, syncReading: unwired, pumpBody: unwired, data: unwired, ended: unwired, abort: unwired, attachH2: unwired },
  creditBoth: unwired,
  forget: unwired,
}

/** Where a stream is: waiting for its head to be dispatched, in its exchange, its response sent but flow-blocked, or over. */
export const Phase = { New: 0, Exchange: 1, Draining: 2, Done: 3 } as const

export class H2Stream implements Exchange {
  readonly front: Front = STREAM_UPPER.front
  readonly conn: H2Conn
  readonly ctx: EngineCtx
  readonly id: number
  phase: number = Phase.New
  route: RouteRuntime | null = null
  readonly tried: Upstream[] = []
  uc: UpConn | null = null
  waitingOn: Upstream | null = null
  sent = false
  giveUpStatus = 503
  staleRetried = false
  method = 0
  upgrade = false
  reqDone = false
  keptAll = true
  readonly kept: Buffer[] = []
  keptBytes = 0
  outHead = ''
  hostless = false
  /** One request per stream: never changes (Exchange.reqSeq). */
  readonly reqSeq = 0
  bodyMax = -1
  pageState = 0
  /** DATA payload bytes received (checked against bodyMax). */
  bodySeen = 0
  /** For gating route rules (rules/gate.ts): the request's Authorization (null: none) and a trusted peer's X-Forwarded-For. */
  authorization: string | null = null
  clientXff = ''
  resPhase: number = ResPhase.Head
  resPart: Buffer | null = null
  resStarted = false
  upFull = false
  timer: number = Timer.None
  deadline = 0

  /** What routing reads: the request's host (lower-case, no port) and its :path. */
  routingHost = ''
  routingPath = ''

  // The request body.
  /** END_STREAM arrived from the client. */
  reqEnd = false
  /** The body goes to the upstream chunked (no content-length was given). */
  chunked = false
  /** Declared content-length still to come; -1 when none was declared. */
  clLeft = -1
  /** Body bytes received, framed for the upstream, not yet written to it. */
  readonly pend: Buffer[] = []
  /** Payload bytes in pend (what the client's window is credited with once written). */
  pendPayload = 0
  /** Payload written upstream whose window credit is held until the upstream drains. */
  held = 0
  /** Window credit earned and not yet sent (sent in WINDOW_UPDATE steps). */
  credit = 0
  /** How much more DATA the client may send on this stream before a WINDOW_UPDATE. */
  recvWindow: number

  // The response. Its head is parsed into relay.ts's one ResponseHead and used within the same call.
  /** A chunked response's decoder, made when the response is chunked. */
  resChunk: ChunkDecoder | null = null
  framing = 0
  resLeft = 0
  /** The upstream's response has been read completely (the upstream connection is released). */
  resDone = false
  /** What the client lets the balancer send on this stream (stream-level flow control). */
  sendWindow: number
  /** Response bytes waiting for flow-control window, in order; endQueued: END_STREAM after them. */
  readonly outq: Buffer[] = []
  outqBytes = 0
  endQueued = false
  /** The upstream socket is paused until the client takes more (window or socket buffer). */
  upPaused = false

  // An HTTP/2 upstream (up-relay.ts).
  /** The upstream stream carrying this request; null on HTTP/1.1 upstreams. */
  us: UpStream | null = null
  /** The client sent `te: trailers` (gRPC): passed on to an HTTP/2 upstream. */
  teTrailers = false
  /** grpc-timeout in ms, -1 without: bounds the wait for the response head. */
  grpcTimeoutMs = -1
  /** Request trailers from the client, kept until the body before them is sent. */
  trailerNames: string[] | null = null
  trailerValues: string[] = []
  /** Response trailers waiting behind queued DATA (their block, END_STREAM on it). */
  trailers: Buffer | null = null
  /** A chunked response's trailer section as read so far (relay.ts); null while there is none. */
  resTrailer: Buffer | null = null
  /** Response bytes from an HTTP/2 upstream queued for the client: credited to the upstream once sent. */
  upHeld = 0
  /** The coding the request negotiated on a route with a compress group (compiler Enc; 0: none). */
  zipAccept = 0
  /** The coder of a compressed response body (zip-relay.ts); null otherwise. */
  zip: Zip<H2Stream> | null = null
  /** The coder's input is full: the upstream waits for its drain. */
  zipFull = false
  /** body.MaxResponseBytes of the response's route (set with its head); 0: no limit. */
  resMax = 0
  /** Body bytes read so far where no Content-Length bounds them (close-delimited, HTTP/2 DATA), counted against resMax. */
  resSeen = 0

  // Accounting (http1/ended.ts reads these).
  readonly listener: Listener
  readonly clientIp: string
  readonly version = 20
  readonly tlsVersion: string | null
  status = 0
  startedAt = 0
  bytesIn = 0
  bytesOut = 0
  requestId = ''
  logged = false
  logMethod = ''
  logHost = ''
  logTarget = ''

  constructor(conn: H2Conn, id: number, recvWindow: number, sendWindow: number) {
    this.conn = conn
    this.ctx = conn.ctx
    this.id = id
    this.listener = conn.listener
    this.clientIp = conn.clientIp
    this.tlsVersion = conn.tlsVersion
    this.recvWindow = recvWindow
    this.sendWindow = sendWindow
  }
}
