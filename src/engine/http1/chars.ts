// Byte classes for HTTP/1.1 parsing (RFC 9110 §5.6, RFC 9112 §3, RFC 3986).
// One 256-entry table per class, indexed by the byte: the parsers test
// `TABLE[b] === 1` instead of branching on ranges.

function table(pred: (b: number) => boolean): Uint8Array {
  const t = new Uint8Array(256)
  for (let b = 0; b < 256; b++) t[b] = pred(b) ? 1 : 0
  return t
}

const isAlnum = (b: number): boolean => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)

/** tchar: header names, methods, chunk-extension names, Connection tokens. */
export const TCHAR = table((b) => isAlnum(b) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(b)))

/** A field-value byte: HTAB, SP, VCHAR, obs-text. Every other control byte, NUL and DEL are refused. */
export const VALUE = table((b) => b === 0x09 || (b >= 0x20 && b !== 0x7f))

/**
 * A request-target byte: VCHAR or obs-text (raw UTF-8 paths are common and not
 * ambiguous); no control, no SP, no DEL, no `#` (a fragment is never sent).
 */
export const TARGET = table((b) => b > 0x20 && b !== 0x7f && b !== 0x23)

/** A Host / authority byte: reg-name, IP literal and port characters (RFC 3986 §3.2.2). */
export const HOST = table((b) => isAlnum(b) || "-._~!$&'()*+,;=%:[]".includes(String.fromCharCode(b)))

/** Hex digit value + 1 (0 = not a hex digit). */
export const HEX = (() => {
  const t = new Uint8Array(256)
  for (let d = 0; d < 10; d++) t[0x30 + d] = d + 1
  for (let d = 0; d < 6; d++) {
    t[0x41 + d] = d + 11
    t[0x61 + d] = d + 11
  }
  return t
})()

export const CR = 0x0d
export const LF = 0x0a
export const SP = 0x20
export const HTAB = 0x09
export const COLON = 0x3a

/** Compares buf[start, start + lower.length) case-insensitively with an all-lower-case ASCII constant. */
export function equalsLower(buf: Uint8Array, start: number, end: number, lower: string): boolean {
  const n = lower.length
  if (end - start !== n) return false
  for (let i = 0; i < n; i++) if (((buf[start + i] as number) | 0x20) !== lower.charCodeAt(i)) return false
  return true
}

/** Compares two tchar ranges of buf case-insensitively (a header name with a Connection token). */
export function equalsLowerBytes(buf: Uint8Array, as: number, ae: number, bs: number, be: number): boolean {
  const n = ae - as
  if (be - bs !== n) return false
  for (let i = 0; i < n; i++) {
    const a = buf[as + i] as number
    const b = buf[bs + i] as number
    if (a !== b && (a | 0x20) !== (b | 0x20)) return false
    if (a !== b && !((a | 0x20) >= 0x61 && (a | 0x20) <= 0x7a)) return false
  }
  return true
}
