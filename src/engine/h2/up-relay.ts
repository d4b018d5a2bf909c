// A client's HTTP/2 stream relayed to an HTTP/2 upstream stream
// (upstream.ts): the request head rebuilt from the HTTP/1.1 head the
// stream would send (so forwarding fields are the same for both kinds of
// upstream), `te: trailers` kept for gRPC, body and trailers in order; the
// response's HEADERS, DATA (credited to the upstream as the client takes
// it) and trailers back on the client's stream.

import { StreamFail, Timer, arm, streamFailed } from '../exchange.ts'
import { succeeded } from '../upstream/passive.ts'
import type { Upstream } from '../upstream/registry.ts'
import { H2Error } from './frames.ts'
import { writeEdits, writeLiteral } from './hpack.ts'
import { drops } from '../rules/request.ts'
import { errorPage } from '../rules/error-page.ts'
import { blockScratch, resetStream, respondLocal, sendBlock, sendData, sendTrailers } from './send.ts'
import type { H2Stream } from './stream.ts'
import { Phase } from './stream.ts'
import type { UpStream, UpStreamEvents } from './upstream.ts'
import { FULL, creditUp, detachUp, drainUp, openStream, sendHead, sendUpData, sendUpTrailers } from './upstream.ts'

/** Connection-specific fields (RFC 9113 §8.2.2) never sent on HTTP/2. */
export const DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host'])

/** grpc-timeout (`100m`, `5S`, `1H`...) in milliseconds; -1 when absent or invalid. */
export function grpcTimeoutMs(v: string): number {
  const m = /^(\d{1,8})([HMSmun])$/.exec(v)
  if (m === null) return -1
  const n = Number(m[1])
  switch (m[2]) {
    case 'H':
      return n * 3_600_000
    case 'M':
      return n * 60_000
    case 'S':
      return n * 1000
    case 'm':
      return n
    case 'u':
      return Math.ceil(n / 1000)
    default:
      return Math.ceil(n / 1_000_000)
  }
}

/** Attaches `st` to an HTTP/2 stream of `up` (the exchange picked it). */
export function attachUp(st: H2Stream, up: Upstream): void {
  st.sent = false
  arm(st, Timer.Connect, st.ctx.opts.connectTimeoutMs)
  // On a session already up, ready() runs before openStream returns.
  const us = openStream(up, st.ctx, st, EVENTS)
  if (us.owner === st) st.us = us
}

/**
 * The request head as a header block in the HPACK scratch, from the
 * HTTP/1.1 head an exchange carries (`hostless`: it has no Host line, the
 * upstream's host:port is the authority); an h2 upstream (TLS) gets :scheme
 * https; `te: trailers` when the client sent it. Returns the block's length.
 */
export function headBlock(head: string, hostless: boolean, up: Upstream, teTrailers: boolean): number {
  const hb = blockScratch(head.length * 2 + 256)
  const lineEnd = head.indexOf('\r\n')
  const line = head.slice(0, lineEnd)
  const sp1 = line.indexOf(' ')
  const sp2 = line.lastIndexOf(' ')
  let p = writeLiteral(hb, 0, ':method', line.slice(0, sp1))
  p = writeLiteral(hb, p, ':scheme', up.tls ? 'https' : 'http')
  p = writeLiteral(hb, p, ':path', line.slice(sp1 + 1, sp2))
  if (hostless) p = writeLiteral(hb, p, ':authority', up.key) // rewrite.Host upstream: the head has no host line
  let at = lineEnd + 2
  while (at < head.length) {
    const e = head.indexOf('\r\n', at)
    if (e < 0 || e === at) break
    const colon = head.indexOf(':', at)
    const name = head.slice(at, colon).toLowerCase()
    const value = head.slice(colon + 2, e)
    if (name === 'host') p = writeLiteral(hb, p, ':authority', value)
    else if (!DROP.has(name)) p = writeLiteral(hb, p, name, value)
    at = e + 2
  }
  if (teTrailers) p = writeLiteral(hb, p, 'te', 'trailers')
  return p
}

const EVENTS: UpStreamEvents = {
  ready(us) {
    const st = us.owner as H2Stream
    if (st.phase !== Phase.Exchange) return detachUp(us, true)
    st.us = us
    st.ctx.now = Date.now()
    st.sent = true
    const len = headBlock(st.outHead, st.hostless, us.session.up, st.teTrailers)
    const end = st.reqEnd && st.pend.length === 0 && st.trailerNames === null
    sendHead(us, blockScratch(0), len, end)
    const t = st.grpcTimeoutMs
    arm(st, Timer.Response, t >= 0 && t < st.ctx.opts.responseTimeoutMs ? t : st.ctx.opts.responseTimeoutMs)
    pumpUp(st)
  },
  head(us, status, end) {
    const st = us.owner as H2Stream
    const d = us.session.hpack
    if (
      status >= 200 &&
      !st.resStarted &&
      st.pageState === 0 &&
      st.route !== null &&
      st.route.plan.rules !== null &&
      st.route.plan.rules.errors !== null &&
      st.route.plan.rules.errors.statuses.includes(status)
    ) {
      // The route's error page answers instead: this upstream stream is given up.
      succeeded(us.session.up)
      st.us = null
      detachUp(us, true)
      if (errorPage(st, status)) return
    }
    if (status >= 200 && tooLarge(st, us)) return
    if (status >= 200) {
      succeeded(us.session.up)
      st.status = status
      st.resStarted = true
      st.timer = Timer.None
    }
    const rt = st.route
    // The route's headers.Response, on final responses only.
    const edits = status < 200 || rt === null || rt.plan.rules === null ? null : rt.plan.rules.response
    const hb = blockScratch(2 * d.listSize + 256 + (edits === null ? 0 : 2 * edits.lines.length + 8 * edits.fields.length))
    let p = 0
    let rid = false
    for (let i = 0; i < d.count; i++) {
      const name = d.names[i] as string
      if (name === ':status') {
        p = writeLiteral(hb, p, ':status', d.values[i] as string)
        continue
      }
      if (name.charCodeAt(0) === 0x3a || DROP.has(name)) continue
      if (edits !== null && drops(edits, name)) continue
      if (name === 'x-request-id') rid = true
      p = writeLiteral(hb, p, name, d.values[i] as string)
    }
    if (edits !== null) p = writeEdits(hb, p, edits)
    if (!rid && status >= 200) p = writeLiteral(hb, p, 'x-request-id', st.requestId)
    sendBlock(st, p, end)
    if (end && status >= 200) done(st, us)
  },
  data(us, data, end) {
    const st = us.owner as H2Stream
    if (st.resMax !== 0 && (st.resSeen += data.length) > st.resMax) {
      // Past body.MaxResponseBytes after the head went out: both streams are reset.
      resetStream(st, H2Error.InternalError, true)
      return
    }
    if (sendData(st, data, end)) creditUp(us, data.length)
    else st.upHeld += data.length
    if (end) done(st, us)
  },
  trailers(us) {
    const st = us.owner as H2Stream
    const d = us.session.hpack
    const hb = blockScratch(2 * d.listSize + 64)
    let p = 0
    for (let i = 0; i < d.count; i++) {
      const name = d.names[i] as string
      if (name.charCodeAt(0) === 0x3a || DROP.has(name)) continue
      p = writeLiteral(hb, p, name, d.values[i] as string)
    }
    done(st, us)
    sendTrailers(st, p)
  },
  failed(us, code, owner) {
    const st = owner as H2Stream
    if (st.us !== us && st.us !== null) return
    st.us = null
    st.ctx.now = Date.now()
    if (st.phase !== Phase.Exchange) return
    const up = us.session.up
    // Never sent (its session was full), or refused unprocessed once: the same upstream again, on another stream.
    if (code === FULL) return attachUp(st, up)
    if (code === H2Error.RefusedStream && !us.sentBody && !st.staleRetried) {
      st.staleRetried = true
      return attachUp(st, up)
    }
    // After the head the client's stream can only be reset; before it, the exchange decides (retry, or 502).
    if (st.resStarted) return resetStream(st, code === H2Error.Cancel ? H2Error.Cancel : H2Error.InternalError, true)
    const how = code === -1 ? StreamFail.Connect : code === H2Error.RefusedStream ? StreamFail.Refused : StreamFail.Reset
    const reason = code === -1 ? (us.session.error === '' ? 'connect failed' : us.session.error) : code === -2 ? 'connection lost' : `stream reset (${code})`
    streamFailed(st, us.session.up, how, us.sentBody, reason)
  },
  writable(us) {
    const st = us.owner as H2Stream
    if (st !== null && drainUp(us)) pumpUp(st)
  },
}

/**
 * body.MaxResponseBytes for a final head from an HTTP/2 upstream: a
 * content-length over it is answered 502 (the upstream stream cancelled);
 * true when it was. Otherwise DATA is counted against it (EVENTS.data).
 */
function tooLarge(st: H2Stream, us: UpStream): boolean {
  const rules = st.route === null ? null : st.route.plan.rules
  const max = rules === null ? 0 : rules.maxResponseBytes
  st.resMax = max
  st.resSeen = 0
  if (max === 0) return false
  const d = us.session.hpack
  for (let i = 0; i < d.count; i++) {
    if (d.names[i] !== 'content-length') continue
    if (!(Number(d.values[i]) > max)) return false
    st.us = null
    detachUp(us, true)
    st.front.respond(st, 502)
    return true
  }
  return false
}

/** The response is complete on the upstream side: its stream slot is free. */
function done(st: H2Stream, us: UpStream): void {
  st.us = null
  st.resDone = true
  st.timer = Timer.None
  detachUp(us, false)
  if (st.phase === Phase.Exchange) st.phase = Phase.Draining
}

/** Sends what the client has sent of the body (and its trailers) to the upstream stream. */
export function pumpUp(st: H2Stream): void {
  const us = st.us
  if (us === null || !st.sent) return
  const pend = st.pend
  while (pend.length !== 0) {
    const part = pend.shift() as Buffer
    st.pendPayload -= part.length
    us.sentBody = true // out of pend: the request can no longer be sent again
    const last = pend.length === 0 && st.reqEnd && st.trailerNames === null
    st.held += part.length
    if (!sendUpData(us, part, last)) break
  }
  if (pend.length === 0 && st.reqEnd) {
    if (st.trailerNames !== null && us.outq.length === 0) {
      const names = st.trailerNames
      const values = st.trailerValues
      st.trailerNames = null
      const hb = blockScratch(4096)
      let p = 0
      for (let i = 0; i < names.length; i++) p = writeLiteral(hb, p, names[i] as string, values[i] as string)
      sendUpTrailers(us, hb, p)
    } else if (st.trailerNames === null && !us.localDone && us.outq.length === 0 && st.pendPayload === 0) {
      sendUpData(us, Buffer.alloc(0), true)
    }
    st.reqDone = true
  }
}

/** The stream's connect or response deadline passed on an HTTP/2 upstream. */
export function upTimedOut(st: H2Stream, timer: number): void {
  const us = st.us
  if (us === null) return
  st.us = null
  detachUp(us, true)
  if (timer === Timer.Connect) return streamFailed(st, us.session.up, StreamFail.Connect, us.sentBody, 'connect timeout')
  if (st.resStarted) return resetStream(st, H2Error.Cancel, true)
  respondLocal(st, 504)
}
