// A small hand-written parser for the loose JSON the seed's examples use:
// `//` and `/* */` comments, trailing commas, and the seed README's literal
// `"upstreams":{ [ ... ] }` (an object whose only content is an array reads as
// that array). Everything else is strict JSON (RFC 8259): no single quotes, no
// unquoted keys, no NaN, no leading zeros.
//
// Contract: returns plain data (objects have a null prototype, so a
// `__proto__` key is an ordinary key the normalizers report as unknown);
// throws BalancerError(E_BAD_JSON) whose message starts with `line:column`.
// Duplicate keys are an error rather than last-wins: in a config file they are
// almost always a mistake that would otherwise silently drop data.

import { BalancerError, ErrorCode } from './errors.ts'

/** Deeper nesting than this is refused instead of overflowing the stack. */
const MAX_DEPTH = 256

interface Cursor {
  text: string
  pos: number
}

export function parseJsonLoose(text: string): unknown {
  const value = parseJsonLooseOrEmpty(text)
  if (value === EMPTY) fail({ text, pos: text.length }, 'empty document')
  return value
}

/** Marker returned by parseJsonLooseOrEmpty for a document of only whitespace and comments. */
export const EMPTY: unique symbol = Symbol('empty document')

/** Like parseJsonLoose, but a document holding only whitespace and comments yields EMPTY. */
export function parseJsonLooseOrEmpty(text: string): unknown {
  const c: Cursor = { text, pos: text.charCodeAt(0) === 0xfeff ? 1 : 0 }
  skipBlank(c)
  if (c.pos >= text.length) return EMPTY
  const value = parseValue(c, 0)
  skipBlank(c)
  if (c.pos < text.length) fail(c, `unexpected ${describe(c)} after the document`)
  return value
}

function parseValue(c: Cursor, depth: number): unknown {
  if (depth > MAX_DEPTH) fail(c, `nesting deeper than ${MAX_DEPTH}`)
  const ch = c.text[c.pos]
  switch (ch) {
    case '{':
      return parseObject(c, depth + 1)
    case '[':
      return parseArray(c, depth + 1)
    case '"':
      return parseString(c)
    case 't':
      return parseWord(c, 'true', true)
    case 'f':
      return parseWord(c, 'false', false)
    case 'n':
      return parseWord(c, 'null', null)
    default:
      if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) return parseNumber(c)
      return fail(c, `unexpected ${describe(c)}, expected a value`)
  }
}

function parseObject(c: Cursor, depth: number): unknown {
  c.pos++ // '{'
  skipBlank(c)
  // The seed's quirk: `{ [ ... ] }` is the array itself.
  if (c.text[c.pos] === '[') {
    const arr = parseArray(c, depth + 1)
    skipBlank(c)
    if (c.text[c.pos] === ',') {
      c.pos++
      skipBlank(c)
    }
    expect(c, '}', "expected '}' after the array inside '{ [ ... ] }'")
    return arr
  }
  const obj: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  for (;;) {
    if (c.text[c.pos] === '}') {
      c.pos++
      return obj
    }
    if (c.text[c.pos] !== '"') fail(c, `unexpected ${describe(c)}, expected a quoted key or '}'`)
    const keyAt = c.pos
    const key = parseString(c)
    if (Object.hasOwn(obj, key)) fail({ text: c.text, pos: keyAt }, `duplicate key ${JSON.stringify(key)}`)
    skipBlank(c)
    expect(c, ':', `expected ':' after key ${JSON.stringify(key)}`)
    skipBlank(c)
    obj[key] = parseValue(c, depth)
    skipBlank(c)
    if (c.text[c.pos] === ',') {
      c.pos++
      skipBlank(c)
    } else if (c.text[c.pos] !== '}') {
      fail(c, `unexpected ${describe(c)}, expected ',' or '}'`)
    }
  }
}

function parseArray(c: Cursor, depth: number): unknown[] {
  c.pos++ // '['
  skipBlank(c)
  const arr: unknown[] = []
  for (;;) {
    if (c.text[c.pos] === ']') {
      c.pos++
      return arr
    }
    arr.push(parseValue(c, depth))
    skipBlank(c)
    if (c.text[c.pos] === ',') {
      c.pos++
      skipBlank(c)
    } else if (c.text[c.pos] !== ']') {
      fail(c, `unexpected ${describe(c)}, expected ',' or ']'`)
    }
  }
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }

function parseString(c: Cursor): string {
  const start = c.pos
  c.pos++ // opening quote
  let out = ''
  let run = c.pos // start of the current run without escapes
  for (;;) {
    if (c.pos >= c.text.length) fail({ text: c.text, pos: start }, 'unterminated string')
    const code = c.text.charCodeAt(c.pos)
    if (code === 0x22) {
      out += c.text.slice(run, c.pos)
      c.pos++
      return out
    }
    if (code < 0x20) fail(c, 'control character in string (escape it, e.g. \\n)')
    if (code !== 0x5c) {
      c.pos++
      continue
    }
    out += c.text.slice(run, c.pos)
    const esc = c.text[c.pos + 1]
    if (esc === 'u') {
      const hex = c.text.slice(c.pos + 2, c.pos + 6)
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail(c, 'invalid \\u escape, expected 4 hex digits')
      out += String.fromCharCode(parseInt(hex, 16))
      c.pos += 6
    } else if (esc !== undefined && Object.hasOwn(ESCAPES, esc)) {
      out += ESCAPES[esc]
      c.pos += 2
    } else {
      fail(c, `invalid escape \\${esc ?? ''}`)
    }
    run = c.pos
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y

function parseNumber(c: Cursor): number {
  NUMBER.lastIndex = c.pos
  const m = NUMBER.exec(c.text)
  if (m === null) return fail(c, 'invalid number')
  const end = c.pos + m[0].length
  const next = c.text[end]
  if (next !== undefined && /[0-9A-Za-z_.]/.test(next)) fail({ text: c.text, pos: end }, 'invalid number')
  c.pos = end
  return Number(m[0])
}

function parseWord<T>(c: Cursor, word: string, value: T): T {
  if (!c.text.startsWith(word, c.pos) || /[A-Za-z0-9_]/.test(c.text[c.pos + word.length] ?? '')) {
    fail(c, `unexpected ${describe(c)}, expected a value`)
  }
  c.pos += word.length
  return value
}

/** Skips whitespace and comments. */
function skipBlank(c: Cursor): void {
  const t = c.text
  for (;;) {
    const ch = t[c.pos]
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      c.pos++
    } else if (ch === '/' && t[c.pos + 1] === '/') {
      const nl = t.indexOf('\n', c.pos + 2)
      c.pos = nl === -1 ? t.length : nl + 1
    } else if (ch === '/' && t[c.pos + 1] === '*') {
      const end = t.indexOf('*/', c.pos + 2)
      if (end === -1) fail(c, 'unterminated /* comment')
      c.pos = end + 2
    } else {
      return
    }
  }
}

function expect(c: Cursor, ch: string, message: string): void {
  if (c.text[c.pos] !== ch) fail(c, `${message}, got ${describe(c)}`)
  c.pos++
}

function describe(c: Cursor): string {
  const ch = c.text[c.pos]
  return ch === undefined ? 'end of input' : JSON.stringify(ch)
}

/** Line and column are 1-based; columns count UTF-16 code units. */
function fail(c: Cursor, message: string): never {
  let line = 1
  let lineStart = 0
  for (let i = 0; i < c.pos && i < c.text.length; i++) {
    if (c.text.charCodeAt(i) === 0x0a) {
      line++
      lineStart = i + 1
    }
  }
  const where = `${line}:${c.pos - lineStart + 1}`
  throw new BalancerError(ErrorCode.BadJson, `invalid JSON at ${where}: ${message}`, [{ path: where, message }])
}
