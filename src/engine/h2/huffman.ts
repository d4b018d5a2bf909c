// HPACK's Huffman code (RFC 7541 §5.2, Appendix B), decoding only: the
// balancer sends its header strings raw (one byte more per string at worst,
// and no encoding work), but clients Huffman-encode theirs.
//
// The code is canonical (codes of one length are consecutive, in symbol
// order), so the table is just each symbol's code length, the codes derived
// from it at load. Decoding walks the code tree four bits at a time through
// a table built once (256 tree nodes x 16 nibbles): no code is shorter than
// five bits, so a nibble completes at most one symbol.

/** Code length of symbols 0-255 and EOS (256), one letter each: 'a' = 5 bits ... 'z' = 30. */
const LENGTHS =
  'isxxxxxxxtzxxzxxxxxxxxzxxxxxxxxxbffhibdgffdgdbbbaaabbbbbbbcdkbhf' +
  'ibccccccccccccccccccccccdcdioijbkabababbbaccbbbabcbaabccccckgjix' +
  'prpprrrsrssssststtrstssssqrsrsstrqprrssqsrrtqrssqqrqsrssprrrsrrs' +
  'vvporsruvvvwwvtuoqvwwvwtqqvvxwwwptpqrqqsrruuttvsvwvvwwwwwxwwwwwv' +
  'z'

const EOS = 256

/** The code of every symbol (canonical assignment by length, then symbol). */
export const CODES = new Uint32Array(257)
export const CODE_BITS = new Uint8Array(257)

/** Tree children: >= 0 an internal node, < 0 a leaf -(symbol + 1). */
const LEFT = new Int32Array(256)
const RIGHT = new Int32Array(256)
/** Per (node, nibble): the node reached; the symbol completed on the way (-1 none); -2 when EOS or an unused code is hit. */
const NEXT = new Uint8Array(256 * 16)
const EMIT = new Int16Array(256 * 16)
/** A node where input may end: reached from the root by at most seven 1 bits (padding is a prefix of EOS). */
const ACCEPT = new Uint8Array(256)

function build(): void {
  for (let s = 0; s < 257; s++) CODE_BITS[s] = LENGTHS.charCodeAt(s) - 97 + 5
  const order = Array.from({ length: 257 }, (_, s) => s).sort((a, b) => (CODE_BITS[a] as number) - (CODE_BITS[b] as number) || a - b)
  let code = 0
  let prev = CODE_BITS[order[0] as number] as number
  for (const s of order) {
    const len = CODE_BITS[s] as number
    code = code * 2 ** (len - prev)
    prev = len
    CODES[s] = code
    code++
  }
  let nodes = 1
  LEFT.fill(0)
  RIGHT.fill(0)
  for (let s = 0; s < 257; s++) {
    const len = CODE_BITS[s] as number
    const c = CODES[s] as number
    let node = 0
    for (let b = len - 1; b >= 0; b--) {
      const bit = Math.floor(c / 2 ** b) & 1
      const kids = bit === 1 ? RIGHT : LEFT
      if (b === 0) {
        kids[node] = -(s + 1)
      } else {
        let next = kids[node] as number
        if (next === 0) {
          next = nodes++
          kids[node] = next
        }
        node = next
      }
    }
  }
  for (let s = 0; s < 256; s++) {
    for (let n = 0; n < 16; n++) {
      let node = s
      let emit = -1
      for (let b = 3; b >= 0; b--) {
        const child = ((n >> b) & 1) === 1 ? (RIGHT[node] as number) : (LEFT[node] as number)
        if (child < 0) {
          const sym = -child - 1
          if (sym === EOS) {
            emit = -2
            break
          }
          emit = sym
          node = 0
        } else if (child === 0) {
          emit = -2 // no code starts like this (cannot happen in a complete code; kept as a guard)
          break
        } else {
          node = child
        }
      }
      NEXT[s * 16 + n] = node
      EMIT[s * 16 + n] = emit
    }
  }
  let node = 0
  ACCEPT[0] = 1
  for (let depth = 1; depth <= 7; depth++) {
    node = RIGHT[node] as number
    if (node <= 0) break
    ACCEPT[node] = 1
  }
}
build()

/**
 * Decodes src[start, end) into out from outPos; returns the new end of out,
 * or -1 for an invalid string (EOS inside, padding longer than 7 bits or not
 * all ones). `out` must hold (end - start) * 8 / 5 bytes past outPos.
 */
export function huffmanDecode(src: Buffer, start: number, end: number, out: Buffer, outPos: number): number {
  let node = 0
  let o = outPos
  for (let p = start; p < end; p++) {
    const byte = src[p] as number
    let i = node * 16 + (byte >> 4)
    let e = EMIT[i] as number
    if (e === -2) return -1
    if (e >= 0) out[o++] = e
    node = NEXT[i] as number
    i = node * 16 + (byte & 15)
    e = EMIT[i] as number
    if (e === -2) return -1
    if (e >= 0) out[o++] = e
    node = NEXT[i] as number
  }
  return ACCEPT[node] === 1 ? o : -1
}

/** Huffman-encodes `s` (latin1): what a test peer sends; the balancer itself sends strings raw. */
export function huffmanEncode(s: string): Buffer {
  const bytes: number[] = []
  let acc = 0
  let bits = 0
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff
    const len = CODE_BITS[sym] as number
    const code = CODES[sym] as number
    for (let b = len - 1; b >= 0; b--) {
      acc = (acc << 1) | (Math.floor(code / 2 ** b) & 1)
      bits++
      if (bits === 8) {
        bytes.push(acc)
        acc = 0
        bits = 0
      }
    }
  }
  if (bits > 0) bytes.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff)
  return Buffer.from(bytes)
}
