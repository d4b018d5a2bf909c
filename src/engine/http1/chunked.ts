// Strict chunked transfer-coding decoder (RFC 9112 §7.1), as a resumable
// state machine over byte offsets: it validates framing without copying, so
// callers forward the exact bytes it has walked over (raw relay) or only the
// payload spans (de-chunking for HTTP/1.0 clients). One decoder per
// connection direction, reset per message.
//
// Strictness: the size is 1-16 hex digits with no sign, prefix or leading
// space, and must stay under 2^53; whitespace after it is only allowed before
// a `;` extension; extensions start with a token and contain no control
// bytes; data must be followed by exactly CRLF; trailer lines follow the
// header rules (tchar name, colon right after it, no obs-fold).

import { CR, HEX, HTAB, LF, SP, TCHAR, VALUE } from './chars.ts'

export const Chunk = {
  Size: 0,
  SizeBws: 1,
  ExtStart: 2,
  Ext: 3,
  SizeLf: 4,
  Data: 5,
  DataCr: 6,
  DataLf: 7,
  TrailerStart: 8,
  TrailerName: 9,
  TrailerValue: 10,
  TrailerLf: 11,
  FinalLf: 12,
  Done: 13,
  Error: 14,
} as const

/** A chunk-size line (size + extensions) longer than this is refused. */
const MAX_SIZE_LINE = 4096
const MAX_BEFORE_SHIFT = Math.floor(Number.MAX_SAFE_INTEGER / 16)

export class ChunkDecoder {
  state: number = Chunk.Size
  size = 0
  digits = 0
  remaining = 0
  lineBytes = 0
  trailerBytes = 0
  maxTrailerBytes: number
  /** With split: whether the span the last advance() walked over was payload. */
  lastWasData = false
  /** Payload bytes announced by the chunk-size lines so far (body.MaxRequestBytes checks it before the data comes). */
  total = 0

  constructor(maxTrailerBytes: number) {
    this.maxTrailerBytes = maxTrailerBytes
  }

  reset(): void {
    this.state = Chunk.Size
    this.size = 0
    this.digits = 0
    this.remaining = 0
    this.lineBytes = 0
    this.trailerBytes = 0
    this.lastWasData = false
    this.total = 0
  }
}

/**
 * Walks buf[pos, end) and returns where it stopped: at `end`, just past the
 * final CRLF (state Done), or at the offending byte (state Error). With
 * `split`, it also stops where bytes switch between framing and payload, and
 * sets d.lastWasData for the span walked.
 */
export function advance(d: ChunkDecoder, buf: Buffer, pos: number, end: number, split: boolean): number {
  let st = d.state
  if (st === Chunk.Data) {
    const n = Math.min(d.remaining, end - pos)
    d.remaining -= n
    pos += n
    if (d.remaining === 0) d.state = Chunk.DataCr
    if (split) {
      d.lastWasData = true
      return pos
    }
    st = d.state
  }
  d.lastWasData = false
  while (pos < end) {
    if (st === Chunk.Data) {
      const n = Math.min(d.remaining, end - pos)
      d.remaining -= n
      pos += n
      if (d.remaining === 0) st = Chunk.DataCr
      continue
    }
    const b = buf[pos] as number
    switch (st) {
      case Chunk.Size: {
        const h = HEX[b] as number
        if (h !== 0) {
          if (d.digits === 16 || d.size > MAX_BEFORE_SHIFT) return fail(d, pos)
          d.size = d.size * 16 + (h - 1)
          d.digits++
        } else if (d.digits === 0) return fail(d, pos)
        else if (b === CR) st = Chunk.SizeLf
        else if (b === 0x3b) st = Chunk.ExtStart
        else if (b === SP || b === HTAB) st = Chunk.SizeBws
        else return fail(d, pos)
        break
      }
      case Chunk.SizeBws:
        if (b === 0x3b) st = Chunk.ExtStart
        else if (b !== SP && b !== HTAB) return fail(d, pos)
        break
      case Chunk.ExtStart:
        if (TCHAR[b] === 1) st = Chunk.Ext
        else if (b !== SP && b !== HTAB) return fail(d, pos)
        break
      case Chunk.Ext:
        if (b === CR) st = Chunk.SizeLf
        else if (b === 0x3b) st = Chunk.ExtStart
        else if (VALUE[b] !== 1) return fail(d, pos)
        break
      case Chunk.SizeLf:
        if (b !== LF) return fail(d, pos)
        d.lineBytes = 0
        if (d.size === 0) {
          st = Chunk.TrailerStart
          break
        }
        d.remaining = d.size
        d.total += d.size
        st = Chunk.Data
        pos++
        if (split) {
          d.state = st
          return pos
        }
        continue
      case Chunk.DataCr:
        if (b !== CR) return fail(d, pos)
        st = Chunk.DataLf
        break
      case Chunk.DataLf:
        if (b !== LF) return fail(d, pos)
        st = Chunk.Size
        d.size = 0
        d.digits = 0
        d.lineBytes = 0
        break
      case Chunk.TrailerStart:
        if (b === CR) st = Chunk.FinalLf
        else if (TCHAR[b] === 1) st = Chunk.TrailerName
        else return fail(d, pos)
        break
      case Chunk.TrailerName:
        if (b === 0x3a) st = Chunk.TrailerValue
        else if (TCHAR[b] !== 1) return fail(d, pos)
        break
      case Chunk.TrailerValue:
        if (b === CR) st = Chunk.TrailerLf
        else if (VALUE[b] !== 1) return fail(d, pos)
        break
      case Chunk.TrailerLf:
        if (b !== LF) return fail(d, pos)
        st = Chunk.TrailerStart
        break
      case Chunk.FinalLf:
        if (b !== LF) return fail(d, pos)
        d.state = Chunk.Done
        return pos + 1
      default:
        return pos // Done or Error: nothing more belongs to this message
    }
    pos++
    if (st >= Chunk.TrailerStart) {
      if (++d.trailerBytes > d.maxTrailerBytes) return fail(d, pos)
    } else if (++d.lineBytes > MAX_SIZE_LINE) return fail(d, pos)
  }
  d.state = st
  return pos
}

function fail(d: ChunkDecoder, pos: number): number {
  d.state = Chunk.Error
  return pos
}
