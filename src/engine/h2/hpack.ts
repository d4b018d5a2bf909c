// HPACK (RFC 7541): the header block decoder every HTTP/2 connection keeps
// (its dynamic table is connection state, so every block must be decoded,
// even one whose stream is refused), and the encoding helpers for the
// blocks the balancer sends.
//
// Decoding produces strings (latin1, one char per byte) into the decoder's
// own arrays, reused for every block. What a block may cost is bounded
// twice: the encoded block is bounded by whoever assembled it (conn.ts,
// --max-header-bytes), and the decoded list by `maxList` (name + value + 32
// per field, RFC 9113 §6.5.2): past it fields are still decoded for the
// table's sake but no longer kept, and `tooBig` is set (an HPACK bomb, a
// small block naming a large table entry thousands of times, costs counting,
// not memory).
//
// Encoding: the balancer never adds to the peer's dynamic table (so never
// has to track it): statuses use the static table where it has them, other
// fields are literals without indexing, raw (not Huffman) strings.

import { huffmanDecode } from './huffman.ts'
import type { HeaderEditPlan } from '../../compiler/snapshot.ts'

/** RFC 7541 Appendix A: index 1-61. */
export const STATIC: readonly (readonly [string, string])[] = [
  ['', ''],
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
]
const STATIC_COUNT = STATIC.length - 1

/** RFC 7541 §4.1: the size an entry counts for. */
const ENTRY_OVERHEAD = 32

/** Huffman output for one string: grown when a longer one arrives (bounded by the block bound). */
let scratch = Buffer.allocUnsafeSlow(16 * 1024)

export class HpackDecoder {
  /** The decoded fields of the last block: names[i], values[i] for i < count. */
  readonly names: string[] = []
  readonly values: string[] = []
  count = 0
  /** Decoded list size (RFC 9113 §6.5.2) of the last block, counted to its end. */
  listSize = 0
  /** The list went past maxList: fields after that point are not in names/values. */
  tooBig = false
  /** Dynamic table, a ring: the newest entry at head, `entries` of them. */
  #tNames: string[] = []
  #tValues: string[] = []
  #head = 0
  #entries = 0
  #size = 0
  /** The size the encoder chose (a size update), at most #limit. */
  #max: number
  /** SETTINGS_HEADER_TABLE_SIZE as this side advertised it. */
  readonly #limit: number
  readonly maxList: number

  constructor(tableLimit: number, maxList: number) {
    this.#limit = tableLimit
    this.#max = tableLimit
    this.maxList = maxList
    const cap = Math.max(1, Math.floor(tableLimit / ENTRY_OVERHEAD))
    this.#tNames = new Array<string>(cap).fill('')
    this.#tValues = new Array<string>(cap).fill('')
  }

  /** Dynamic table size now (bytes as HPACK counts them). */
  get tableSize(): number {
    return this.#size
  }

  /** Decodes one whole block; 0, or -1 for a compression error (the connection must end: its table is lost). */
  decode(buf: Buffer, start: number, end: number): number {
    this.count = 0
    this.listSize = 0
    this.tooBig = false
    let p = start
    let first = true
    while (p < end) {
      const b = buf[p] as number
      if (b >= 0x80) {
        // Indexed field.
        const idx = readInt(buf, p, end, 7)
        if (idx < 0) return -1
        p = INT_END
        if (!this.#indexed(idx)) return -1
        first = false
        continue
      }
      if ((b & 0xe0) === 0x20) {
        // Dynamic table size update: only before the first field.
        if (!first) return -1
        const size = readInt(buf, p, end, 5)
        if (size < 0 || size > this.#limit) return -1
        p = INT_END
        this.#max = size
        this.#evict(0)
        continue
      }
      first = false
      const incremental = (b & 0xc0) === 0x40
      const idx = readInt(buf, p, end, incremental ? 6 : 4)
      if (idx < 0) return -1
      p = INT_END
      let name: string
      if (idx === 0) {
        const n = readString(buf, p, end)
        if (n === null) return -1
        name = n
        p = INT_END
      } else {
        const n = this.#nameAt(idx)
        if (n === null) return -1
        name = n
      }
      const value = readString(buf, p, end)
      if (value === null) return -1
      p = INT_END
      this.#emit(name, value)
      if (incremental) this.#insert(name, value)
    }
    return 0
  }

  #emit(name: string, value: string): void {
    this.listSize += name.length + value.length + ENTRY_OVERHEAD
    if (this.tooBig) return
    if (this.listSize > this.maxList) {
      this.tooBig = true
      return
    }
    this.names[this.count] = name
    this.values[this.count] = value
    this.count++
  }

  #indexed(idx: number): boolean {
    if (idx === 0) return false
    if (idx <= STATIC_COUNT) {
      const e = STATIC[idx] as readonly [string, string]
      this.#emit(e[0], e[1])
      return true
    }
    const d = idx - STATIC_COUNT - 1
    if (d >= this.#entries) return false
    const i = (this.#head + d) % this.#tNames.length
    this.#emit(this.#tNames[i] as string, this.#tValues[i] as string)
    return true
  }

  #nameAt(idx: number): string | null {
    if (idx <= STATIC_COUNT) return (STATIC[idx] as readonly [string, string])[0]
    const d = idx - STATIC_COUNT - 1
    if (d >= this.#entries) return null
    return this.#tNames[(this.#head + d) % this.#tNames.length] as string
  }

  /** Drops the oldest entries until `room` more bytes fit under the current maximum. */
  #evict(room: number): void {
    const cap = this.#tNames.length
    while (this.#entries > 0 && this.#size + room > this.#max) {
      const i = (this.#head + this.#entries - 1) % cap
      this.#size -= (this.#tNames[i] as string).length + (this.#tValues[i] as string).length + ENTRY_OVERHEAD
      this.#tNames[i] = ''
      this.#tValues[i] = ''
      this.#entries--
    }
  }

  #insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD
    if (size > this.#max) {
      // RFC 7541 §4.4: an entry larger than the table empties it and is not added.
      this.#evict(this.#max + 1)
      return
    }
    this.#evict(size)
    const cap = this.#tNames.length
    // Every entry is at least 32 bytes, so cap (limit / 32) entries always suffice.
    this.#head = (this.#head - 1 + cap) % cap
    this.#tNames[this.#head] = name
    this.#tValues[this.#head] = value
    this.#entries++
    this.#size += size
  }
}

/** Where the last readInt / readString stopped (module scratch: no tuple per call). */
let INT_END = 0

/** An HPACK integer with an N-bit prefix at buf[p]; -1 when truncated or over 2^28. */
function readInt(buf: Buffer, p: number, end: number, prefix: number): number {
  const mask = (1 << prefix) - 1
  let v = (buf[p] as number) & mask
  p++
  if (v < mask) {
    INT_END = p
    return v
  }
  let shift = 0
  for (;;) {
    if (p >= end || shift > 21) return -1
    const b = buf[p++] as number
    v += (b & 0x7f) * 2 ** shift
    shift += 7
    if (b < 0x80) break
  }
  INT_END = p
  return v
}

/** A string literal at buf[p]; null when truncated or badly Huffman-coded. */
function readString(buf: Buffer, p: number, end: number): string | null {
  if (p >= end) return null
  const huff = ((buf[p] as number) & 0x80) !== 0
  const len = readInt(buf, p, end, 7)
  if (len < 0) return null
  const s = INT_END
  const e = s + len
  if (e > end) return null
  INT_END = e
  if (!huff) return buf.latin1Slice(s, e)
  const need = Math.ceil((len * 8) / 5) + 1
  if (scratch.length < need) scratch = Buffer.allocUnsafeSlow(need)
  const n = huffmanDecode(buf, s, e, scratch, 0)
  if (n < 0) return null
  return scratch.latin1Slice(0, n)
}

/** Writes an HPACK integer with an N-bit prefix and the given high bits at out[p]; returns the end. */
export function writeInt(out: Buffer, p: number, v: number, prefix: number, high: number): number {
  const mask = (1 << prefix) - 1
  if (v < mask) {
    out[p] = high | v
    return p + 1
  }
  out[p++] = high | mask
  v -= mask
  while (v >= 0x80) {
    out[p++] = (v & 0x7f) | 0x80
    v = Math.floor(v / 128)
  }
  out[p] = v
  return p + 1
}

/** Static table index of `:status` values it holds (0: none). */
export function statusIndex(status: number): number {
  switch (status) {
    case 200:
      return 8
    case 204:
      return 9
    case 206:
      return 10
    case 304:
      return 11
    case 400:
      return 12
    case 404:
      return 13
    case 500:
      return 14
    default:
      return 0
  }
}

/** `:status` at out[p]: one byte when the static table has it, else a literal with its name indexed. */
export function writeStatus(out: Buffer, p: number, status: number): number {
  const idx = statusIndex(status)
  if (idx !== 0) {
    out[p] = 0x80 | idx
    return p + 1
  }
  out[p++] = 0x08 // literal without indexing, name = static 8 (:status)
  out[p++] = 3
  out[p++] = 0x30 + Math.floor(status / 100)
  out[p++] = 0x30 + (Math.floor(status / 10) % 10)
  out[p++] = 0x30 + (status % 10)
  return p
}

/** A literal field without indexing, new name, raw strings; the name must already be lower-case. */
export function writeLiteral(out: Buffer, p: number, name: string, value: string): number {
  out[p++] = 0
  p = writeInt(out, p, name.length, 7, 0)
  p += out.latin1Write(name, p)
  p = writeInt(out, p, value.length, 7, 0)
  p += out.latin1Write(value, p)
  return p
}

/** Bytes writeLiteral needs at most. */
export function literalBound(nameLen: number, valueLen: number): number {
  return 1 + 5 + nameLen + 5 + valueLen
}

/** headers.Response's Set and Add fields as literals. */
export function writeEdits(hb: Buffer, p: number, edits: HeaderEditPlan): number {
  const f = edits.fields
  for (let i = 0; i < f.length; i++) {
    const pair = f[i] as readonly [string, string]
    p = writeLiteral(hb, p, pair[0], pair[1])
  }
  return p
}
