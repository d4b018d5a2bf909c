// Header field lines (RFC 9112 §5, RFC 9110 §5): the part both heads share.
// Offsets of every field go to one module-level scratch table (HDR), and the
// Connection-header tokens to CONN_TOK. Contract: the caller consumes them
// (forward.ts) right after a parse, synchronously, before any other parse
// runs; that keeps the per-connection records small and the parse free of
// allocation.

import { COLON, CR, HTAB, LF, SP, TCHAR, VALUE, equalsLower } from './chars.ts'

/** What a header means to the proxy; Other is forwarded untouched. */
export const Kind = {
  Other: 0,
  Host: 1,
  ContentLength: 2,
  TransferEncoding: 3,
  Connection: 4,
  /** Hop-by-hop fields always dropped: Keep-Alive, Proxy-Connection, TE, Trailer, Proxy-Authorization, Proxy-Authenticate. */
  Hop: 5,
  Upgrade: 6,
  XForwardedFor: 7,
  XForwardedProto: 8,
  XForwardedHost: 9,
  /** Re-emitted by the proxy on requests (request-id.ts); passed through on responses. */
  XRequestId: 10,
  XRealIp: 11,
  Forwarded: 12,
} as const

/** Fields per header in HDR: name start, name end, value start, value end (OWS trimmed), line end (after CRLF), kind. */
export const HF = 6
export const MAX_HEADERS = 256
export const HDR = new Int32Array(MAX_HEADERS * HF)
/** Connection-header tokens other than close / keep-alive / upgrade: start, end pairs. */
export const MAX_CONN_TOKENS = 32
export const CONN_TOK = new Int32Array(MAX_CONN_TOKENS * 2)

const MAX_SAFE = Number.MAX_SAFE_INTEGER

/** Fields both heads share, filled by parseFields. */
export class Fields {
  nHeaders = 0
  nConnTokens = 0
  /** Connection, Upgrade and Hop headers seen: 0 lets a response head be forwarded verbatim. */
  hopCount = 0
  hostCount = 0
  hostStart = 0
  hostEnd = 0
  clCount = 0
  contentLength = 0
  teCount = 0
  /** Transfer-Encoding list: `chunked` seen this many times, whether it came last, other codings seen. */
  teChunked = 0
  teChunkedLast = false
  teOther = false
  connClose = false
  connKeepAlive = false
  connUpgrade = false
  upgradeCount = 0
  upgradeStart = 0
  upgradeEnd = 0
  /** A TE field lists `trailers` (the client takes a chunked trailer section). */
  teTrailers = false
  /** X-Request-Id fields seen, and the value of the first. */
  ridCount = 0
  ridStart = 0
  ridEnd = 0
}

function kindOf(buf: Buffer, s: number, e: number): number {
  switch (e - s) {
    case 2:
      return equalsLower(buf, s, e, 'te') ? Kind.Hop : Kind.Other
    case 4:
      return equalsLower(buf, s, e, 'host') ? Kind.Host : Kind.Other
    case 7:
      return equalsLower(buf, s, e, 'upgrade') ? Kind.Upgrade : equalsLower(buf, s, e, 'trailer') ? Kind.Hop : Kind.Other
    case 9:
      return equalsLower(buf, s, e, 'forwarded') ? Kind.Forwarded : equalsLower(buf, s, e, 'x-real-ip') ? Kind.XRealIp : Kind.Other
    case 10:
      return equalsLower(buf, s, e, 'connection') ? Kind.Connection : equalsLower(buf, s, e, 'keep-alive') ? Kind.Hop : Kind.Other
    case 12:
      return equalsLower(buf, s, e, 'x-request-id') ? Kind.XRequestId : Kind.Other
    case 14:
      return equalsLower(buf, s, e, 'content-length') ? Kind.ContentLength : Kind.Other
    case 15:
      return equalsLower(buf, s, e, 'x-forwarded-for') ? Kind.XForwardedFor : Kind.Other
    case 16:
      return equalsLower(buf, s, e, 'proxy-connection') ? Kind.Hop : equalsLower(buf, s, e, 'x-forwarded-host') ? Kind.XForwardedHost : Kind.Other
    case 17:
      return equalsLower(buf, s, e, 'transfer-encoding') ? Kind.TransferEncoding : equalsLower(buf, s, e, 'x-forwarded-proto') ? Kind.XForwardedProto : Kind.Other
    case 18:
      return equalsLower(buf, s, e, 'proxy-authenticate') ? Kind.Hop : Kind.Other
    case 19:
      return equalsLower(buf, s, e, 'proxy-authorization') ? Kind.Hop : Kind.Other
    default:
      return Kind.Other
  }
}

/** Digits only (OWS already trimmed); -1 when not a valid length or over 2^53-1. */
function contentLength(buf: Buffer, s: number, e: number): number {
  if (s === e || e - s > 16) return -1
  let n = 0
  for (let p = s; p < e; p++) {
    const d = (buf[p] as number) - 0x30
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n > MAX_SAFE ? -1 : n
}

/**
 * Walks a comma-separated token list (RFC 9110 §5.6.1: empty elements are
 * ignored). For Transfer-Encoding (te=true) it tallies codings; for Connection
 * it sets the flags and records other tokens. Returns 0 or 400.
 */
function tokenList(buf: Buffer, s: number, e: number, f: Fields, te: boolean): number {
  let p = s
  while (p < e) {
    const c = buf[p]
    if (c === 0x2c || c === SP || c === HTAB) {
      p++
      continue
    }
    const ts = p
    while (p < e && TCHAR[buf[p] as number] === 1) p++
    const tend = p
    if (tend === ts) {
      // Transfer-coding parameters (`gzip;q=1`) are a coding we do not implement: 501 below.
      if (te && c === 0x3b) {
        f.teOther = true
        f.teChunkedLast = false
        while (p < e && buf[p] !== 0x2c) p++
        continue
      }
      return 400
    }
    while (p < e && (buf[p] === SP || buf[p] === HTAB)) p++
    if (p < e && buf[p] !== 0x2c) {
      if (!(te && buf[p] === 0x3b)) return 400
      while (p < e && buf[p] !== 0x2c) p++ // parameters: only on codings we refuse anyway
      f.teOther = true
      f.teChunkedLast = false
      continue
    }
    if (te) {
      if (equalsLower(buf, ts, tend, 'chunked')) {
        f.teChunked++
        f.teChunkedLast = true
      } else {
        f.teOther = true
        f.teChunkedLast = false
      }
    } else if (equalsLower(buf, ts, tend, 'close')) f.connClose = true
    else if (equalsLower(buf, ts, tend, 'keep-alive')) f.connKeepAlive = true
    else if (equalsLower(buf, ts, tend, 'upgrade')) f.connUpgrade = true
    else {
      if (f.nConnTokens === MAX_CONN_TOKENS) return 400
      CONN_TOK[f.nConnTokens * 2] = ts
      CONN_TOK[f.nConnTokens * 2 + 1] = tend
      f.nConnTokens++
    }
  }
  return 0
}

function resetFields(f: Fields): void {
  f.nHeaders = 0
  f.nConnTokens = 0
  f.hopCount = 0
  f.hostCount = 0
  f.hostStart = 0
  f.hostEnd = 0
  f.clCount = 0
  f.contentLength = 0
  f.teCount = 0
  f.teChunked = 0
  f.teChunkedLast = false
  f.teOther = false
  f.connClose = false
  f.connKeepAlive = false
  f.connUpgrade = false
  f.upgradeCount = 0
  f.upgradeStart = 0
  f.upgradeEnd = 0
  f.ridCount = 0
  f.teTrailers = false
}

/** A TE value names the `trailers` token (any case, among others, with or without parameters). */
function listsTrailers(buf: Buffer, s: number, e: number): boolean {
  for (let p = s; p + 8 <= e; p++) {
    if (!equalsLower(buf, p, p + 8, 'trailers')) continue
    const before = p === s ? 0x2c : (buf[p - 1] as number)
    const after = p + 8 === e ? 0x2c : (buf[p + 8] as number)
    if ((before === 0x2c || before === SP || before === HTAB) && (after === 0x2c || after === SP || after === HTAB || after === 0x3b)) return true
  }
  return false
}

/**
 * Header lines from p up to and including the blank line, as far as buf
 * goes. Every line is `name ":" OWS value OWS CRLF`: no obs-fold, no space
 * before the colon, tchar names, value bytes from VALUE, CR only before LF.
 * Returns the index just past the blank line; 0 when buf ends before it with
 * nothing wrong so far (a response head split across reads); or -status
 * (400, 431 past MAX_HEADERS) at the first byte that breaks the rules. One
 * walk both finds the end of a head and checks it.
 */
export function parseFields(buf: Buffer, p: number, f: Fields): number {
  resetFields(f)
  const len = buf.length
  let n = 0
  for (;;) {
    if (buf[p] === CR) {
      if (buf[p + 1] === LF) break
      return p + 1 >= len ? 0 : -400
    }
    const ns = p
    while (TCHAR[buf[p] as number] === 1) p++
    if (p === ns || buf[p] !== COLON) return p >= len ? 0 : -400 // obs-fold, empty name, bad name char, space before ':'
    const ne = p++
    while (buf[p] === SP || buf[p] === HTAB) p++
    const vs = p
    while (VALUE[buf[p] as number] === 1) p++
    if (buf[p] !== CR) return p >= len ? 0 : -400
    if (buf[p + 1] !== LF) return p + 1 >= len ? 0 : -400
    let ve = p
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--
    p += 2
    if (n === MAX_HEADERS) return -431
    const kind = kindOf(buf, ns, ne)
    const o = n * HF
    HDR[o] = ns
    HDR[o + 1] = ne
    HDR[o + 2] = vs
    HDR[o + 3] = ve
    HDR[o + 4] = p
    HDR[o + 5] = kind
    n++
    if (kind === Kind.Other) continue
    if (kind === Kind.Hop) {
      f.hopCount++
      if (ne - ns === 2 && !f.teTrailers) f.teTrailers = listsTrailers(buf, vs, ve)
    } else if (kind === Kind.Host) {
      f.hostCount++
      f.hostStart = vs
      f.hostEnd = ve
    } else if (kind === Kind.ContentLength) {
      f.clCount++
      f.contentLength = contentLength(buf, vs, ve)
    } else if (kind === Kind.TransferEncoding) {
      f.teCount++
      // The usual values of both lists, one token each, set what tokenList would without walking a list.
      if (ve - vs === 7 && equalsLower(buf, vs, ve, 'chunked')) {
        f.teChunked++
        f.teChunkedLast = true
      } else if (tokenList(buf, vs, ve, f, true) !== 0) return -400
    } else if (kind === Kind.Connection) {
      f.hopCount++
      if (ve - vs === 10 && equalsLower(buf, vs, ve, 'keep-alive')) f.connKeepAlive = true
      else if (ve - vs === 5 && equalsLower(buf, vs, ve, 'close')) f.connClose = true
      else if (tokenList(buf, vs, ve, f, false) !== 0) return -400
    } else if (kind === Kind.Upgrade) {
      f.hopCount++
      f.upgradeCount++
      f.upgradeStart = vs
      f.upgradeEnd = ve
    } else if (kind === Kind.XRequestId && f.ridCount++ === 0) {
      f.ridStart = vs
      f.ridEnd = ve
    }
  }
  f.nHeaders = n
  return p + 2
}
