// Head rewriting, both directions. Each head is rebuilt as one latin1 string
// from runs of the received bytes (consecutive kept header lines are copied
// as one slice) plus the headers the proxy adds, then written with one
// socket write. Reads HDR / CONN_TOK as filled by the parse just before
// (see fields.ts for that contract).
//
// Client address headers (X-Forwarded-For, X-Real-IP, Forwarded): whether a
// client's own are believed is decided once per connection (Peer.trusted,
// from --trusted-proxies). From a client that is not a trusted proxy all
// three are dropped and replaced by what this proxy saw, so an upstream can
// read the client address from any of them: `x-forwarded-for: <ip>`,
// `x-real-ip: <ip>`, `forwarded: for=<ip>;proto=<scheme>;host="<host>"`
// (RFC 7239; IPv6 as `for="[2001:db8::1]"`). From a trusted proxy they are
// kept and appended to: X-Forwarded-For gets `, <ip>`, Forwarded gets
// `, for=...` as one more element, X-Real-IP is kept as the proxy set it
// (else added). X-Forwarded-Proto and X-Forwarded-Host are always replaced by
// what this proxy saw.

import { equalsLowerBytes } from './chars.ts'
import { CONN_TOK, HDR, HF, Kind, MAX_HEADERS } from './fields.ts'
import type { Fields } from './fields.ts'
import { Form } from './parse.ts'
import type { RequestHead, ResponseHead } from './parse.ts'
import type { HeaderEditPlan, RequestRulesPlan } from '../../compiler/snapshot.ts'
import { HostMode } from '../../compiler/snapshot.ts'
import { drops, prefixLine, rewriteTarget } from '../rules/request.ts'

/** True when header i is named by a Connection token (and so hop-by-hop too). */
function namedInConnection(buf: Buffer, f: Fields, ns: number, ne: number): boolean {
  for (let t = 0; t < f.nConnTokens; t++) {
    if (equalsLowerBytes(buf, ns, ne, CONN_TOK[t * 2] as number, CONN_TOK[t * 2 + 1] as number)) return true
  }
  return false
}

/** What requestHead needs of the client connection; fixed for its life. */
export interface Peer {
  readonly clientIp: string
  /** The peer is a trusted proxy (--trusted-proxies): its forwarding headers are appended to. */
  readonly trusted: boolean
  /** RFC 7239 `for=` node of clientIp (forNode()). */
  readonly forNode: string
}

/** `for=192.0.2.1`, `for="[2001:db8::1]"`: IPv6 is bracketed and quoted (RFC 7239 §6). */
export function forNode(ip: string): string {
  return ip.includes(':') ? `for="[${ip}]"` : `for=${ip}`
}

/** A Host value as an RFC 7239 quoted-string (it may hold `:`, which a token cannot). */
function quoted(v: string): string {
  return v.includes('"') || v.includes('\\') ? `"${v.replace(/["\\]/g, '\\$&')}"` : `"${v}"`
}

/**
 * The request head sent upstream: `METHOD target HTTP/1.1`, the client's
 * headers minus hop-by-hop ones, framing re-emitted (`content-length` or
 * `transfer-encoding: chunked`), X-Forwarded-* added. Upgrade requests keep
 * their Upgrade header and get `connection: upgrade`. Absolute-form targets
 * become origin-form and their authority becomes Host (RFC 9112 §3.2.2).
 * The client's X-Request-Id fields are replaced by one carrying `requestId`.
 * `rq`: the route's request rules (rules/request.ts), null for most routes.
 */
export function requestHead(buf: Buffer, h: RequestHead, peer: Peer, proto: string, upgrade: boolean, chunked: boolean, requestId: string, rq: RequestRulesPlan | null = null): string {
  const trusted = peer.trusted
  let out = ''
  let target = ''
  let run = -1
  let runEnd = 0
  if (rq === null && h.form === Form.Origin && h.version === 11) {
    // The request line goes as the client sent it: the first run of kept bytes starts with it, so the usual head is one slice.
    run = h.start
    runEnd = h.headersStart
  } else {
    out = buf.latin1Slice(h.start, h.methodEnd + 1)
    if (h.form === Form.Absolute) {
      target = h.pathStart === h.targetEnd || buf[h.pathStart] !== 0x2f ? `/${buf.latin1Slice(h.pathStart, h.targetEnd)}` : buf.latin1Slice(h.pathStart, h.targetEnd)
    } else {
      target = buf.latin1Slice(h.targetStart, h.targetEnd)
    }
    out += rq === null ? target : rewriteTarget(rq, target)
    out += ' HTTP/1.1\r\n'
  }
  const edits = rq === null ? null : rq.edits
  const clientHost = rq === null || rq.host === HostMode.Client
  let xff = ''
  let fwd = ''
  let realIp = false
  const n = h.nHeaders
  for (let i = 0; i < n; i++) {
    const o = i * HF
    const kind = HDR[o + 5] as number
    const ns = HDR[o] as number
    let keep = kind === Kind.Other || (kind === Kind.Host && h.form !== Form.Absolute && clientHost) || (kind === Kind.Upgrade && upgrade) || (kind === Kind.XRealIp && trusted)
    if (edits !== null && kind === Kind.Other && drops(edits, buf.latin1Slice(ns, HDR[o + 1] as number).toLowerCase())) keep = false
    if (trusted) {
      if (kind === Kind.XForwardedFor) {
        const v = buf.latin1Slice(HDR[o + 2] as number, HDR[o + 3] as number)
        if (v !== '') xff = xff === '' ? v : `${xff}, ${v}`
      } else if (kind === Kind.Forwarded) {
        const v = buf.latin1Slice(HDR[o + 2] as number, HDR[o + 3] as number)
        if (v !== '') fwd = fwd === '' ? v : `${fwd}, ${v}`
      } else if (kind === Kind.XRealIp) realIp = true
    }
    if (keep && h.nConnTokens !== 0 && kind !== Kind.Host && namedInConnection(buf, h, ns, HDR[o + 1] as number)) keep = false
    if (keep) {
      if (run < 0) run = ns
      runEnd = HDR[o + 4] as number
    } else if (run >= 0) {
      out = out === '' ? buf.latin1Slice(run, runEnd) : out + buf.latin1Slice(run, runEnd)
      run = -1
    }
  }
  if (run >= 0) out = out === '' ? buf.latin1Slice(run, runEnd) : out + buf.latin1Slice(run, runEnd)
  let host = ''
  if (h.form === Form.Absolute) {
    host = buf.latin1Slice(h.authStart, h.authEnd)
    if (clientHost) out += `host: ${host}\r\n`
  } else if (h.hostCount === 1) {
    host = buf.latin1Slice(h.hostStart, h.hostEnd)
  }
  if (rq !== null) {
    if (rq.host === HostMode.Fixed) out += `host: ${rq.hostName}\r\n`
    out += prefixLine(rq, target)
    if (edits !== null) out += edits.lines
  }
  if (chunked) out += 'transfer-encoding: chunked\r\n'
  else if (h.clCount === 1) out += `content-length: ${h.contentLength}\r\n`
  out += forwardingFields(peer, xff, fwd, realIp, proto, host, requestId)
  if (upgrade) out += 'connection: upgrade\r\n'
  // No Host at all (HTTP/1.0), or rewrite.Host `upstream`: the head is left
  // open; the sender adds the upstream's own `host:port` (see hostless), as
  // HTTP/1.1 requires a Host.
  return (host === '' && h.hostCount === 0) || (rq !== null && rq.host === HostMode.Upstream) ? out : `${out}\r\n`
}

/**
 * The fields the balancer adds to every request it forwards, whatever the
 * client's protocol (HTTP/2 streams: h2/request.ts): `xff`, `fwd` are the
 * client's X-Forwarded-For and Forwarded values when it is a trusted proxy
 * ('' otherwise), `realIp` whether it sent an X-Real-IP kept as it is;
 * `proto` the whole X-Forwarded-Proto line; `host` the request's Host.
 */
export function forwardingFields(peer: Peer, xff: string, fwd: string, realIp: boolean, proto: string, host: string, requestId: string): string {
  // proto is the whole X-Forwarded-Proto line; `x-forwarded-proto: https` has an `s` at 23.
  const scheme = proto.charCodeAt(23) === 0x73 ? 'https' : 'http'
  let out: string
  if (xff === '' && fwd === '' && !realIp) out = clientFields(peer, scheme)
  else {
    const ip = peer.clientIp
    out = xff === '' ? `x-forwarded-for: ${ip}\r\n` : `x-forwarded-for: ${xff}, ${ip}\r\n`
    if (!realIp) out += `x-real-ip: ${ip}\r\n`
    out += fwd === '' ? `forwarded: ${peer.forNode};proto=${scheme}` : `forwarded: ${fwd}, ${peer.forNode};proto=${scheme}`
  }
  if (host === '') out += `\r\n${proto}x-request-id: ${requestId}\r\n`
  else out += `;host=${quoted(host)}\r\n${proto}x-request-id: ${requestId}\r\nx-forwarded-host: ${host}\r\n`
  return out
}

/**
 * `x-forwarded-for`, `x-real-ip` and the start of `forwarded` for a client
 * whose own forwarding fields are not kept, up to its `proto=` element. The
 * same for every request of a client address: the last one is kept, so
 * consecutive requests from one address (a keep-alive connection, clients
 * behind one proxy) share one string instead of building it each time.
 */
function clientFields(peer: Peer, scheme: string): string {
  if (peer.clientIp !== lastIp || scheme !== lastScheme) {
    const ip = peer.clientIp
    lastFields = `x-forwarded-for: ${ip}\r\nx-real-ip: ${ip}\r\nforwarded: ${peer.forNode};proto=${scheme}`
    lastIp = ip
    lastScheme = scheme
  }
  return lastFields
}
let lastIp = ''
let lastScheme = ''
let lastFields = ''

/** requestHead left the head open for a Host line (an HTTP/1.0 request without Host, or rewrite.Host `upstream`). */
export function hostless(h: RequestHead, rq: RequestRulesPlan | null = null): boolean {
  return (h.hostCount === 0 && h.form !== Form.Absolute) || (rq !== null && rq.host === HostMode.Upstream)
}

/**
 * A head that needs nothing but `x-request-id` added: its bytes from `start`
 * with the line inserted before the blank line at `end`, then buf up to
 * `stop` (a small body that came with it). Copies, but walks no header.
 */
export function withRequestId(buf: Buffer, start: number, end: number, stop: number, requestId: string): Buffer {
  const out = Buffer.allocUnsafe(stop - start + RID_NAME.length + requestId.length + 2)
  let p = buf.copy(out, 0, start, end - 2)
  p = putRequestId(out, p, requestId)
  putBytes(out, p, buf, end - 2, stop)
  return out
}

/**
 * Below this many bytes a copy is a loop here: each Buffer#copy or
 * Buffer#write makes its checks in JavaScript and then calls into native
 * code, several hundred instructions before the first byte moves, for the
 * request id line, the `\r\n` that ends most heads and a small body.
 */
const LOOP_BYTES = 32

/** Copies src[s, e) to out at p; returns the index after it. */
function putBytes(out: Buffer, p: number, src: Buffer, s: number, e: number): number {
  if (e - s > LOOP_BYTES) return p + src.copy(out, p, s, e)
  for (let i = s; i < e; i++) out[p++] = src[i] as number
  return p
}

/**
 * `x-request-id: <id>` CRLF at p; ids are visible ASCII (request-id.ts), one
 * byte per character. The id goes through latin1Write, not a charCodeAt
 * loop: a made id is a concatenation, and reading such a string a
 * character at a time cost more than the native write.
 */
function putRequestId(out: Buffer, p: number, requestId: string): number {
  p = putBytes(out, p, RID_NAME, 0, RID_NAME.length)
  p += out.latin1Write(requestId, p)
  out[p++] = 0x0d
  out[p++] = 0x0a
  return p
}

/** What responseHead ends the head with: a Connection field, and Transfer-Encoding for a body the relay chunks itself (Chunked*). */
export const Conn = { None: 0, Close: 1, KeepAlive: 2, Upgrade: 3, Chunked: 4, ChunkedClose: 5 } as const

const CONN_LINE = ['', 'connection: close\r\n', 'connection: keep-alive\r\n', 'connection: upgrade\r\n', 'transfer-encoding: chunked\r\n', 'transfer-encoding: chunked\r\nconnection: close\r\n']

/** Runs of kept bytes [start, end) of the head being rebuilt (responseHead). */
const RUNS = new Int32Array(2 * (MAX_HEADERS + 1))
const RID_NAME = Buffer.from('x-request-id: ', 'latin1')
const CONN_BYTES = CONN_LINE.map((l) => Buffer.from(`${l}\r\n`, 'latin1'))

/**
 * The response head for the client, as one Buffer: the status line and the
 * upstream's headers minus hop-by-hop ones, plus `connection` as `conn` says,
 * followed by `bodyLen` bytes of `buf` from `bodyAt` (a small body that came
 * with the head, so head and body go out in one write).
 * keepTe: the body is relayed chunked as received, so Transfer-Encoding stays.
 * keepUpgrade: a 101 to an upgrade request.
 * requestId: added as `x-request-id` when not '' (the upstream sent none).
 * edits: the route's headers.Response (null for most routes). hsts: header
 * lines added as they are (the route's Strict-Transport-Security over TLS);
 * null for none. dropLength: the body is re-encoded (compress), so the
 * upstream's Content-Length does not hold.
 */
export function responseHead(
  buf: Buffer,
  r: ResponseHead,
  conn: number,
  keepTe: boolean,
  keepUpgrade: boolean,
  bodyAt: number,
  bodyLen: number,
  requestId: string,
  edits: HeaderEditPlan | null = null,
  hsts: Buffer | null = null,
  dropLength = false,
): Buffer {
  let nRuns = 0
  let runStart = r.start
  let runEnd = r.headersStart
  let size = 0
  const n = r.nHeaders
  for (let i = 0; i < n; i++) {
    const o = i * HF
    const kind = HDR[o + 5] as number
    const ns = HDR[o] as number
    let keep =
      kind === Kind.Other ||
      (kind === Kind.ContentLength && !dropLength) ||
      kind === Kind.Host ||
      kind === Kind.XForwardedFor ||
      kind === Kind.XForwardedHost ||
      kind === Kind.XRealIp ||
      kind === Kind.Forwarded ||
      kind === Kind.XForwardedProto ||
      kind === Kind.XRequestId ||
      (kind === Kind.TransferEncoding && keepTe) ||
      (kind === Kind.Upgrade && keepUpgrade)
    if (keep && r.nConnTokens !== 0 && namedInConnection(buf, r, ns, HDR[o + 1] as number)) keep = false
    if (keep && edits !== null && kind === Kind.Other && drops(edits, buf.latin1Slice(ns, HDR[o + 1] as number).toLowerCase())) keep = false
    if (!keep) continue
    if (ns !== runEnd) {
      if (runEnd > runStart) {
        RUNS[nRuns++] = runStart
        RUNS[nRuns++] = runEnd
        size += runEnd - runStart
      }
      runStart = ns
    }
    runEnd = HDR[o + 4] as number
  }
  if (runEnd > runStart) {
    RUNS[nRuns++] = runStart
    RUNS[nRuns++] = runEnd
    size += runEnd - runStart
  }
  const tail = CONN_BYTES[conn] as Buffer
  // Ids are visible ASCII (request-id.ts): one byte per character.
  const ridLen = requestId === '' ? 0 : RID_NAME.length + requestId.length + 2
  // Edited values are visible ASCII (model/header-rules.ts): one byte per character.
  const extra = edits === null ? '' : edits.lines
  const hstsLen = hsts === null ? 0 : hsts.length
  const out = Buffer.allocUnsafe(size + ridLen + extra.length + hstsLen + tail.length + bodyLen)
  let p = 0
  for (let i = 0; i < nRuns; i += 2) p += buf.copy(out, p, RUNS[i] as number, RUNS[i + 1] as number)
  if (ridLen !== 0) p = putRequestId(out, p, requestId)
  if (extra !== '') p += out.write(extra, p, 'latin1')
  if (hsts !== null) p += hsts.copy(out, p)
  p = putBytes(out, p, tail, 0, tail.length)
  if (bodyLen !== 0) putBytes(out, p, buf, bodyAt, bodyAt + bodyLen)
  return out
}
