// A stream's request head: the decoded header block checked as RFC 9113
// §8.2-8.3 asks, turned into the HTTP/1.1 request head its upstream gets,
// then routed exactly as an HTTP/1.1 request is (matchRoute on the
// listener's current plan, then the shared exchange).
//
// Malformed requests (pseudo-header fields missing, repeated, unknown or
// after a regular field; upper-case or invalid field names;
// connection-specific fields; `te` other than `trailers`; CR, LF or NUL in
// a value, or white space around it; a `host` naming another authority
// than `:authority`) are a stream error: RST_STREAM PROTOCOL_ERROR, counted
// as a 400 on the listener.
//
// Conversion (RFC 9113 §8.2.2, §8.3.1): `:authority` becomes Host (or the
// client's Host is kept when there is no `:authority`); `:method` and
// `:path` make the request line; cookies split across fields are joined
// with `; `; the body goes with the client's content-length, or chunked
// when it gave none. Forwarding fields are HTTP/1.1's (http1/forward.ts
// forwardingFields): X-Forwarded-For, X-Real-IP and Forwarded appended to
// from a --trusted-proxies peer and replaced otherwise, X-Forwarded-Proto
// and X-Forwarded-Host replaced, X-Request-Id the client's valid one or a
// new one.

import { matchRoute } from '../match.ts'
import { HostMode, Scheme } from '../../compiler/snapshot.ts'
import { rewriteHead } from '../rules/request.ts'
import { zipAcceptedH2 } from './zip-relay.ts'
import { gate } from '../rules/gate.ts'
import type { AuthRequest } from '../rules/forward-auth.ts'
import { startExchange } from '../exchange.ts'
import { forwardingFields } from '../http1/forward.ts'
import { Method } from '../http1/parse.ts'
import { requestIdFrom } from '../http1/request-id.ts'
import { codeClass } from '../meter.ts'
import type { H2Conn } from './conn.ts'
import { H2Error } from './frames.ts'
import { resetStream, respondLocal } from './send.ts'
import { grpcTimeoutMs } from './up-relay.ts'
import type { H2Stream } from './stream.ts'
import { Phase } from './stream.ts'

/** Visible ASCII lower-case token characters (RFC 9110 tchar, no upper case): what a field name may hold. */
const NAME = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") NAME[c.charCodeAt(0)] = 1

function validName(s: string): boolean {
  if (s.length === 0) return false
  for (let i = 0; i < s.length; i++) if (NAME[s.charCodeAt(i)] !== 1) return false
  return true
}

/** No NUL, CR or LF, no white space at either end (RFC 9113 §8.2.1). */
function validValue(s: string): boolean {
  const n = s.length
  if (n === 0) return true
  let c = s.charCodeAt(0)
  if (c === 0x20 || c === 0x09) return false
  c = s.charCodeAt(n - 1)
  if (c === 0x20 || c === 0x09) return false
  for (let i = 0; i < n; i++) {
    c = s.charCodeAt(i)
    if (c === 0 || c === 0x0a || c === 0x0d || c > 0xff) return false
  }
  return true
}

function methodCode(m: string): number {
  switch (m) {
    case 'GET':
      return Method.Get
    case 'HEAD':
      return Method.Head
    case 'POST':
      return Method.Post
    case 'PUT':
      return Method.Put
    case 'DELETE':
      return Method.Delete
    case 'OPTIONS':
      return Method.Options
    case 'TRACE':
      return Method.Trace
    case 'CONNECT':
      return Method.Connect
    default:
      return Method.Other
  }
}

/** The Host name routes match: lower-case, without its port. */
function routingHost(authority: string): string {
  let e = authority.length
  for (let i = authority.length - 1; i >= 0; i--) {
    const c = authority.charCodeAt(i)
    if (c === 0x3a) {
      e = i
      break
    }
    if (c === 0x5d) break
  }
  const h = e === authority.length ? authority : authority.slice(0, e)
  return h.toLowerCase()
}

/** Host characters (RFC 3986 reg-name, IP literals, port) as HTTP/1.1's parser allows them. */
const HOSTCH = new Uint8Array(256)
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]%") HOSTCH[c.charCodeAt(0)] = 1

function validHost(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (HOSTCH[s.charCodeAt(i)] !== 1) return false
  return true
}

/** A path as an HTTP/1.1 request line allows it: visible ASCII, starting with `/` (or `*` for OPTIONS). */
function validPath(s: string, method: number): boolean {
  if (s === '*') return method === Method.Options
  if (s.charCodeAt(0) !== 0x2f) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f) return false
  }
  return true
}

const XFP_HTTP = 'x-forwarded-proto: http\r\n'
const XFP_HTTPS = 'x-forwarded-proto: https\r\n'

function malformed(st: H2Stream): void {
  count(st.conn, 400)
  resetStream(st, H2Error.ProtocolError, true)
}

function count(conn: H2Conn, status: number): void {
  const codes = conn.listener.refused
  codes[codeClass(status)] = (codes[codeClass(status)] as number) + 1
}

/** Reads the block just decoded (conn.hpack) into the stream's request; a bad one resets or answers the stream. */
export function onRequestBlock(st: H2Stream): void {
  const conn = st.conn
  const d = conn.hpack
  if (d.tooBig) {
    st.phase = Phase.Exchange
    st.ctx.inFlight++
    st.startedAt = performance.now()
    return respondLocal(st, 431)
  }
  const names = d.names
  const values = d.values
  const n = d.count
  let method = ''
  let scheme = ''
  let authority = ''
  let path = ''
  let pseudo = true
  let host = ''
  let hostCount = 0
  let cl = -1
  let cookie = ''
  let xff = ''
  let fwd = ''
  let realIp = false
  const trusted = conn.trusted
  let rid: string | null = null
  let ridCount = 0
  let fields = ''
  for (let i = 0; i < n; i++) {
    const name = names[i] as string
    const value = values[i] as string
    if (name.charCodeAt(0) === 0x3a) {
      if (!pseudo) return malformed(st)
      if (name === ':method') {
        if (method !== '' || value === '') return malformed(st)
        method = value
      } else if (name === ':scheme') {
        if (scheme !== '' || value === '') return malformed(st)
        scheme = value
      } else if (name === ':authority') {
        if (authority !== '' || value === '') return malformed(st)
        authority = value
      } else if (name === ':path') {
        if (path !== '' || value === '') return malformed(st)
        path = value
      } else return malformed(st)
      continue
    }
    pseudo = false
    if (!validName(name) || !validValue(value)) return malformed(st)
    switch (name) {
      case 'connection':
      case 'keep-alive':
      case 'proxy-connection':
      case 'transfer-encoding':
      case 'upgrade':
        return malformed(st)
      case 'te':
        if (value !== 'trailers') return malformed(st)
        st.teTrailers = true
        continue // hop-by-hop for an HTTP/1.1 upstream; an HTTP/2 one gets it back (up-relay.ts)
      case 'grpc-timeout':
        st.grpcTimeoutMs = grpcTimeoutMs(value)
        break
      case 'host':
        host = value
        hostCount++
        continue
      case 'content-length': {
        const v = /^[0-9]{1,15}$/.test(value) ? Number(value) : -1
        if (v < 0 || (cl >= 0 && v !== cl)) return malformed(st)
        cl = v
        continue
      }
      case 'cookie':
        cookie = cookie === '' ? value : `${cookie}; ${value}`
        continue
      // The client's address fields: appended to from a trusted proxy, replaced otherwise (http1/forward.ts).
      case 'x-forwarded-for':
        if (trusted && value !== '') xff = xff === '' ? value : `${xff}, ${value}`
        continue
      case 'forwarded':
        if (trusted && value !== '') fwd = fwd === '' ? value : `${fwd}, ${value}`
        continue
      case 'x-real-ip':
        if (!trusted) continue
        realIp = true
        break
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
      case 'proxy-authorization':
      case 'proxy-authenticate':
      case 'trailer':
        continue
      case 'x-request-id':
        ridCount++
        rid = value
        continue
      case 'authorization':
        if (st.authorization === null) st.authorization = value
        break
    }
    fields += `${name}: ${value}\r\n`
  }
  const m = methodCode(method)
  if (method === '' || !validName(method.toLowerCase()) || method !== method.toUpperCase()) return malformed(st)
  if (m === Method.Connect) {
    st.phase = Phase.Exchange
    st.ctx.inFlight++
    st.startedAt = performance.now()
    return respondLocal(st, 501) // not a forward proxy (and no extended CONNECT: SETTINGS_ENABLE_CONNECT_PROTOCOL is off)
  }
  if (scheme === '' || path === '' || !validPath(path, m)) return malformed(st)
  if (hostCount > 1) return malformed(st)
  if (authority !== '' && hostCount === 1 && host.toLowerCase() !== authority.toLowerCase()) return malformed(st)
  const hostValue = authority !== '' ? authority : host
  if (hostValue === '' || !validHost(hostValue)) return malformed(st)

  st.method = m
  st.clLeft = cl
  st.chunked = cl < 0 && !st.reqEnd
  if (st.reqEnd && cl > 0) return malformed(st)
  const ctx = st.ctx
  st.requestId = requestIdFrom(ridCount === 1 ? rid : null)
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${hostValue}\r\n${fields}`
  if (cookie !== '') head += `cookie: ${cookie}\r\n`
  if (cl >= 0) head += `content-length: ${cl}\r\n`
  else if (st.chunked) head += 'transfer-encoding: chunked\r\n'
  head += forwardingFields(conn, xff, fwd, realIp, conn.tls ? XFP_HTTPS : XFP_HTTP, hostValue, st.requestId)
  head += '\r\n'
  st.outHead = head
  st.clientXff = xff
  st.bytesIn = d.listSize
  const log = ctx.accessLog
  st.logged = log !== null && (log.sample >= 1 || Math.random() < log.sample)
  if (st.logged) {
    st.logMethod = method
    st.logHost = hostValue
    st.logTarget = path
  }
  st.routingHost = routingHost(hostValue)
  st.routingPath = path
}

/** Routes a stream whose head onRequestBlock accepted (after the read it came in, unless reset meanwhile). */
export function dispatchStream(st: H2Stream): void {
  const ctx = st.ctx
  st.phase = Phase.Exchange
  ctx.inFlight++
  ctx.requestsH2++
  st.startedAt = performance.now()
  st.reqDone = st.reqEnd && st.pend.length === 0 && !st.chunked && st.trailerNames === null
  const lr = st.listener.plan
  let path = ''
  if (!lr.anyPath) {
    const raw = st.routingPath
    const q = raw.indexOf('?')
    path = q < 0 ? raw : raw.slice(0, q)
  }
  const route = matchRoute(lr.plan, st.routingHost, path, st.conn.tls ? Scheme.Https : Scheme.Http)
  if (route === null) return respondLocal(st, 404)
  st.route = lr.routes[lr.plan.routes.indexOf(route)] ?? null
  if (st.route === null) return respondLocal(st, 404)
  const rules = route.rules
  if (rules === null) return startExchange(st)
  // ForwardAuth gets the client's fields as received, before rewrite and headers.Request.
  const rr = st.route.rules
  const auth = rr !== null && rr.access !== null && rr.access.plan.forward !== null ? authRequest(st) : null
  if (rules.compress !== null) st.zipAccept = zipAcceptedH2(st, st.outHead)
  const rlPlan = rr === null || rr.limiter === null ? null : rr.limiter.plan
  const source = rlPlan === null || rlPlan.sourceHeader === '' ? null : fieldOf(st.outHead, rlPlan.sourceHeader)
  if (rules.request !== null) {
    st.outHead = rewriteHead(rules.request, st.outHead)
    st.hostless = rules.request.host === HostMode.Upstream
  }
  // Access and body rules decide before anything goes upstream; they may answer or wait.
  if (rr !== null && rules.gated) {
    const conn = st.conn
    const req = { clientIp: conn.clientIp, trusted: conn.trusted, xff: st.clientXff, authorization: st.authorization, source, contentLength: Math.max(st.clLeft + st.bodySeen, st.bodySeen), auth }
    if (!gate(st, rr, req)) return
  }
  startExchange(st)
}

/** The first value of field `lower` in a head of our own making (lower-case names), or null. */
function fieldOf(head: string, lower: string): string | null {
  const at = head.indexOf(`\r\n${lower}: `)
  if (at < 0) return null
  const start = at + lower.length + 4
  return head.slice(start, head.indexOf('\r\n', start))
}

/** What ForwardAuth sends of a stream's request: its fields as received (from the HTTP/1.1 head built of them, before any rule). */
function authRequest(st: H2Stream): AuthRequest {
  const head = st.outHead
  const lineEnd = head.indexOf('\r\n')
  const sp1 = head.indexOf(' ')
  const sp2 = head.lastIndexOf(' ', lineEnd)
  const fields: Array<readonly [string, string]> = []
  let host = ''
  let at = lineEnd + 2
  while (at < head.length) {
    const e = head.indexOf('\r\n', at)
    if (e < 0 || e === at) break
    const colon = head.indexOf(':', at)
    const name = head.slice(at, colon)
    const value = head.slice(colon + 2, e)
    if (name === 'host') host = value
    fields.push([name, value])
    at = e + 2
  }
  return { method: head.slice(0, sp1), proto: st.conn.tls ? 'https' : 'http', host, uri: head.slice(sp1 + 1, sp2), clientIp: st.conn.clientIp, fields }
}
