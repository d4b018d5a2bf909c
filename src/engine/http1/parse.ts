// Strict HTTP/1.1 head parsers (RFC 9112 §§2-6, RFC 9110 §5): request line,
// request target, status line, and the framing rules on top of the field
// lines (fields.ts). They work on byte offsets into the received Buffer,
// write into a per-connection record (reset per message, never reallocated)
// and return a status code instead of throwing: 0 = fine, otherwise the HTTP
// status to answer with. Nothing here allocates.

import { CR, HOST, LF, SP, TARGET, TCHAR, VALUE, equalsLower } from './chars.ts'
import { Fields, parseFields } from './fields.ts'

export const Method = { Other: 0, Get: 1, Head: 2, Post: 3, Put: 4, Delete: 5, Options: 6, Trace: 7, Connect: 8 } as const
export const Form = { Origin: 0, Absolute: 1, Asterisk: 2 } as const

export class RequestHead extends Fields {
  start = 0
  /** Index just past the blank line. */
  end = 0
  method: number = Method.Other
  methodEnd = 0
  targetStart = 0
  targetEnd = 0
  form: number = Form.Origin
  /** Path (no query) for routing; for absolute-form the part after the authority (may be empty). */
  pathStart = 0
  pathEnd = 0
  authStart = 0
  authEnd = 0
  /** 10 or 11. */
  version = 11
  headersStart = 0
}

export class ResponseHead extends Fields {
  start = 0
  end = 0
  version = 11
  status = 0
  headersStart = 0
}

/** Incremental search for the end of a request head; offsets relative to the head start. */
export class HeadScan {
  /** Bytes already walked by the slow path. */
  pos = 0
  firstLineEnd = -1
  lineChecked = false
  reset(): void {
    this.pos = 0
    this.firstLineEnd = -1
    this.lineChecked = false
  }
}

const BLANK_LINE = Buffer.from('\r\n\r\n', 'latin1')

/**
 * Looks for the blank line ending a head that starts at `start`. Returns the
 * index just past it, 0 when more bytes are needed, or -status. When the
 * head is complete (the usual case: one native search), every check is left
 * to parseRequestHead. Otherwise only the bytes not seen before are walked:
 * a bare LF is refused at once (400), a request line over lineMax (414) or a
 * head over headMax (431) without waiting for the rest, and a complete but
 * invalid request line is reported as soon as it is in, so an HTTP/0.9
 * request does not wait for bytes that will never come.
 */
export function scanHead(s: HeadScan, buf: Buffer, start: number, lineMax: number, headMax: number, h: RequestHead): number {
  const i = buf.indexOf(BLANK_LINE, s.pos > 3 ? start + s.pos - 3 : start)
  if (i >= 0) return i + 4
  const len = buf.length
  for (let p = start + s.pos; p < len; p++) {
    if (buf[p] !== LF) continue
    if (p === start || buf[p - 1] !== CR) return -400
    if (s.firstLineEnd < 0) s.firstLineEnd = p - 1 - start
  }
  s.pos = len - start
  if (s.firstLineEnd < 0) return s.pos > lineMax ? -414 : 0
  if (s.firstLineEnd > lineMax) return -414
  if (s.pos > headMax) return -431
  if (!s.lineChecked) {
    s.lineChecked = true
    const st = parseRequestLine(buf, start, lineMax, h)
    if (st !== 0) return -st
  }
  return 0
}

function methodOf(buf: Buffer, s: number, e: number): number {
  const n = e - s
  const c = buf[s]
  if (n === 3 && c === 0x47 && buf[s + 1] === 0x45 && buf[s + 2] === 0x54) return Method.Get
  if (n === 4 && c === 0x48 && buf[s + 1] === 0x45 && buf[s + 2] === 0x41 && buf[s + 3] === 0x44) return Method.Head
  if (n === 4 && c === 0x50 && buf[s + 1] === 0x4f && buf[s + 2] === 0x53 && buf[s + 3] === 0x54) return Method.Post
  if (n === 3 && c === 0x50 && buf[s + 1] === 0x55 && buf[s + 2] === 0x54) return Method.Put
  if (n === 6 && buf.latin1Slice(s, e) === 'DELETE') return Method.Delete
  if (n === 7 && c === 0x4f && buf.latin1Slice(s, e) === 'OPTIONS') return Method.Options
  if (n === 7 && c === 0x43 && buf.latin1Slice(s, e) === 'CONNECT') return Method.Connect
  if (n === 5 && buf.latin1Slice(s, e) === 'TRACE') return Method.Trace
  return Method.Other
}

/** `HTTP/1.x` at p; returns 10/11, or -400 (malformed), -505 (another version). */
function versionAt(buf: Buffer, p: number): number {
  if (buf[p] !== 0x48 || buf[p + 1] !== 0x54 || buf[p + 2] !== 0x54 || buf[p + 3] !== 0x50 || buf[p + 4] !== 0x2f) return -400
  const major = (buf[p + 5] as number) - 0x30
  const minor = (buf[p + 7] as number) - 0x30
  if (!(major >= 0 && major <= 9 && minor >= 0 && minor <= 9) || buf[p + 6] !== 0x2e) return -400
  if (major !== 1 || minor > 1) return -505
  return minor === 1 ? 11 : 10
}

/**
 * The request line at `start`, which must be complete (its CRLF is in buf):
 * `method SP request-target SP HTTP/1.x CRLF`, single spaces. Sets the line's
 * fields and h.headersStart.
 */
export function parseRequestLine(buf: Buffer, start: number, lineMax: number, h: RequestHead): number {
  let p = start
  while (TCHAR[buf[p] as number] === 1) p++
  if (p === start || buf[p] !== SP) return 400
  h.start = start
  h.methodEnd = p
  h.method = methodOf(buf, start, p)
  const ts = ++p
  while (TARGET[buf[p] as number] === 1) p++
  if (p === ts || buf[p] !== SP) return p - start > lineMax ? 414 : 400
  h.targetStart = ts
  h.targetEnd = p
  const lineEnd = p + 9
  if (lineEnd - start > lineMax) return 414
  const v = versionAt(buf, p + 1)
  if (v < 0) return -v
  if (buf[lineEnd] !== CR || buf[lineEnd + 1] !== LF) return 400
  h.version = v
  h.headersStart = lineEnd + 2
  if (h.method === Method.Connect) return 501 // not a forward proxy: authority-form is never served
  return targetForm(buf, ts, p, h)
}

function targetForm(buf: Buffer, s: number, e: number, h: RequestHead): number {
  const c = buf[s]
  if (c === 0x2f) {
    h.form = Form.Origin
    h.pathStart = s
    h.pathEnd = queryAt(buf, s, e)
    return 0
  }
  if (c === 0x2a && e - s === 1) {
    h.form = Form.Asterisk
    h.pathStart = h.pathEnd = s
    return h.method === Method.Options ? 0 : 400
  }
  // absolute-form: http://authority[/path][?query]; the authority replaces Host (RFC 9112 §3.2.2).
  let a: number
  if (equalsLower(buf, s, s + 7, 'http://')) a = s + 7
  else if (equalsLower(buf, s, s + 8, 'https://')) a = s + 8
  else return 400
  let p = a
  while (p < e && HOST[buf[p] as number] === 1) p++
  if (p === a || (p < e && buf[p] !== 0x2f && buf[p] !== 0x3f)) return 400 // empty authority, userinfo, junk
  h.form = Form.Absolute
  h.authStart = a
  h.authEnd = p
  h.pathStart = p
  h.pathEnd = queryAt(buf, p, e)
  return 0
}

/** Where the query of a target in [s, e) starts (its `?`), else e. A loop: targets are short, and a native indexOf costs more than it saves there. */
function queryAt(buf: Buffer, s: number, e: number): number {
  let p = s
  while (p < e && buf[p] !== 0x3f) p++
  return p
}

/** A whole request head in [start, end) (end just past the blank line). */
export function parseRequestHead(buf: Buffer, start: number, end: number, lineMax: number, headMax: number, h: RequestHead): number {
  const st = parseRequestLine(buf, start, lineMax, h)
  if (st !== 0) return st
  if (end - start > headMax) return 431
  h.end = end
  // The head is complete (scanHead found its blank line): the fields end there.
  const fs = parseFields(buf, h.headersStart, h)
  if (fs !== end) return fs < 0 ? -fs : 400
  return requestFraming(buf, h)
}

/**
 * The usual case in one walk: a whole, valid request head at `start`, of
 * at most headMax bytes. Returns the index just past its blank line, or 0
 * for anything else (a head not all in buf yet, or one that breaks a rule),
 * which then takes scanHead and parseRequestHead: they find the same end
 * and answer every other case with the status and timing they always had.
 * That skips scanHead's native search for the blank line, and the walk of
 * the head's bytes happens once.
 */
export function quickRequestHead(buf: Buffer, start: number, lineMax: number, headMax: number, h: RequestHead): number {
  // A request line cut short fails its checks (bytes past buf read as undefined): that is a 0 here too.
  if (parseRequestLine(buf, start, lineMax, h) !== 0) return 0
  const end = parseFields(buf, h.headersStart, h)
  if (end <= 0 || end - start > headMax) return 0
  h.end = end
  return requestFraming(buf, h) === 0 ? end : 0
}

/** Host and message framing (RFC 9112 §§3.2, 6.3) of a parsed request head; 0 or the status to answer. */
function requestFraming(buf: Buffer, h: RequestHead): number {
  if (h.hostCount > 1 || (h.hostCount === 0 && h.version === 11)) return 400
  for (let p = h.hostStart; p < h.hostEnd; p++) if (HOST[buf[p] as number] !== 1) return 400
  if (h.teCount > 0) {
    if (h.clCount > 0 || h.version === 10) return 400
    if (h.teChunked > 1 || (h.teChunked === 1 && !h.teChunkedLast)) return 400
    if (h.teOther) return 501
    if (h.teChunked === 0) return 400
  }
  if (h.clCount > 1 || (h.clCount === 1 && h.contentLength < 0)) return 400
  return 0
}

/**
 * The response head starting at `start`, parsed as far as buf goes, in one
 * walk that both finds its end and checks it: returns the index just past
 * its blank line, 0 when more bytes are needed (nothing wrong so far), or -1
 * when it is malformed (answered 502). Framing rules as for requests, except
 * that a Transfer-Encoding list ending in chunked is accepted (forwarded as
 * is) and one not ending in chunked means read-until-close.
 */
export function parseResponseHead(buf: Buffer, start: number, r: ResponseHead): number {
  const len = buf.length
  r.start = start
  // Shorter than the shortest whole head (`HTTP/1.1 200` CRLF CRLF): only a bare LF or a blank line already there can be told.
  if (len - start < 16) return responseHeadEnd(buf, start, start) === 0 ? 0 : -1
  const v = versionAt(buf, start)
  if (v < 0 || buf[start + 8] !== SP) return -1
  r.version = v
  const d0 = (buf[start + 9] as number) - 0x30
  const d1 = (buf[start + 10] as number) - 0x30
  const d2 = (buf[start + 11] as number) - 0x30
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return -1
  r.status = d0 * 100 + d1 * 10 + d2
  let p = start + 12
  if (buf[p] === SP) for (p++; VALUE[buf[p] as number] === 1; p++);
  if (buf[p] !== CR) return p >= len ? 0 : -1
  if (buf[p + 1] !== LF) return p + 1 >= len ? 0 : -1
  r.headersStart = p + 2
  const end = parseFields(buf, r.headersStart, r)
  if (end <= 0) return end === 0 ? 0 : -1
  r.end = end
  if (r.teCount > 0 && r.clCount > 0) return -1
  if (r.teChunked > 1) return -1
  if (r.clCount > 1 || (r.clCount === 1 && r.contentLength < 0)) return -1
  return end
}

/**
 * Finds the blank line of a response head from `from`; index past it, 0 if
 * absent. Bare LF is an error (-1). parseResponseHead finds it itself; this
 * is for heads too short to parse yet. A plain loop: a head is a few hundred
 * bytes, and one Buffer.indexOf call per line cost twice as much (about
 * 0.4 against 0.2 µs for a typical head).
 */
function responseHeadEnd(buf: Buffer, start: number, from: number): number {
  const n = buf.length
  for (let i = from; i < n; i++) {
    if (buf[i] !== LF) continue
    if (i === start || buf[i - 1] !== CR) return -1
    if (i - start >= 3 && buf[i - 2] === LF && buf[i - 3] === CR) return i + 1
  }
  return 0
}
