// Splits a stream of concatenated JSON objects (Docker's /events: one object
// per line, but chunk boundaries fall anywhere, and a proxy may drop the
// newlines) into whole objects. Tracks brace depth outside strings, so it
// needs neither newlines nor one object per chunk. Bytes, not strings, are
// buffered until an object is complete: a multi-byte character split across
// chunks is decoded only once it is whole.

const OPEN = 0x7b // {
const CLOSE = 0x7d // }
const QUOTE = 0x22
const BACKSLASH = 0x5c

export class JsonObjectSplitter {
  readonly #maxBytes: number
  #parts: Buffer[] = []
  #size = 0
  #depth = 0
  #inString = false
  #escaped = false

  /** maxBytes bounds one object: a daemon (or anything else on the socket) cannot make us buffer without end. */
  constructor(maxBytes = 1 << 20) {
    this.#maxBytes = maxBytes
  }

  /** Feeds one chunk; returns the objects it completed, in order. Throws on bytes that are not an object stream. */
  push(chunk: Buffer): unknown[] {
    const out: unknown[] = []
    let start = 0
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i] as number
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false
        else if (c === BACKSLASH) this.#escaped = true
        else if (c === QUOTE) this.#inString = false
        continue
      }
      if (this.#depth === 0) {
        // Between objects only whitespace may appear.
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
          start = i + 1
          continue
        }
        if (c !== OPEN) throw new Error(`events stream: expected "{" between objects, got byte 0x${c.toString(16)}`)
        start = i
      }
      if (c === QUOTE) this.#inString = true
      else if (c === OPEN) this.#depth++
      else if (c === CLOSE) {
        this.#depth--
        if (this.#depth === 0) {
          this.#parts.push(chunk.subarray(start, i + 1))
          const text = Buffer.concat(this.#parts).toString('utf8')
          this.#parts = []
          this.#size = 0
          out.push(JSON.parse(text))
          start = i + 1
        }
      }
    }
    if (this.#depth > 0 && start < chunk.length) {
      const rest = chunk.subarray(start)
      this.#size += rest.length
      if (this.#size > this.#maxBytes) throw new Error(`events stream: an object is larger than ${this.#maxBytes} bytes`)
      // Copy: the caller may reuse the chunk's memory.
      this.#parts.push(Buffer.from(rest))
    }
    return out
  }

  /** True when no partial object is buffered (the stream may end here cleanly). */
  get idle(): boolean {
    return this.#depth === 0
  }
}
