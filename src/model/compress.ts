// The `compress` group of a server or route: responses compressed on the way
// to the client. `"compress": {}` turns it on with the defaults.
//
//   Encodings  the codings offered, in the server's order of preference:
//              any of `zstd`, `br`, `gzip` (a list, or one comma-separated
//              string); default all three in that order. The client's
//              Accept-Encoding q-values choose first; among codings of the
//              same q, the earlier one here wins.
//   Types      media types compressed (`type/subtype`, or `type/*` for a
//              whole type; parameters such as `charset` are ignored);
//              default DEFAULT_TYPES, the common text formats.
//              `text/event-stream` is never compressed, whatever matches it.
//   MinBytes   a response whose Content-Length is smaller is sent as it is
//              (an integer 0-1073741824, default 1024); one of unknown
//              length (chunked, close-delimited) is compressed.
//
// What is never compressed, whatever the group says: HEAD, 1xx/204/304 and
// 206 responses, responses to requests the client did not ask a coding for,
// bodies already encoded (Content-Encoding other than identity), and
// responses with `Cache-Control: no-transform` (README "Route rules").
//
// Labels: `balancer.compress=true` (the defaults), or any field:
// `balancer.compress.encodings=br,gzip`, `balancer.compress.types=text/*`,
// `balancer.compress.minbytes=2048`.

import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { describeValue, isMissing, readFields, readInt } from './fields.ts'
import type { Compress } from './types.ts'

const FIELDS = ['Encodings', 'Types', 'MinBytes'] as const
export const COMPRESS_FIELDS: readonly string[] = FIELDS
export const ENCODINGS = ['zstd', 'br', 'gzip'] as const
export const DEFAULT_TYPES: readonly string[] = [
  'text/html',
  'text/plain',
  'text/css',
  'text/javascript',
  'text/xml',
  'text/csv',
  'text/markdown',
  'application/javascript',
  'application/json',
  'application/ld+json',
  'application/manifest+json',
  'application/problem+json',
  'application/xml',
  'application/xhtml+xml',
  'application/rss+xml',
  'application/atom+xml',
  'application/wasm',
  'image/svg+xml',
  'font/ttf',
  'font/otf',
]
const MAX_MIN_BYTES = 1024 ** 3
const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

export function readCompress(raw: unknown, path: string, problems: Problem[]): Compress | null {
  const before = problems.length
  const f = readFields(raw, path, FIELDS, problems)
  if (f === null) return null
  const encodings = readEncodings(f.Encodings, problems)
  const types = readTypes(f.Types, problems)
  const minBytes = readInt(f.MinBytes, `${path}.MinBytes`, 0, MAX_MIN_BYTES, 1024, problems)
  if (problems.length > before || encodings === null || types === null || minBytes === null) return null
  return { Encodings: encodings, Types: types, MinBytes: minBytes }
}

/** A list field as written: an array, or one comma-separated string (labels, KV values). */
function listOf(f: Found): unknown[] | null {
  const v = f.value
  if (typeof v === 'string')
    return v
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '')
  return Array.isArray(v) ? v : null
}

function readEncodings(f: Found | undefined, problems: Problem[]): string[] | null {
  if (f === undefined || isMissing(f)) return [...ENCODINGS]
  const list = listOf(f)
  if (list === null || list.length === 0) {
    problems.push({ path: f.path, message: `must be a list of ${ENCODINGS.join(', ')} in the order preferred, got ${describeValue(f.value)}` })
    return null
  }
  const out: string[] = []
  let ok = true
  list.forEach((x, i) => {
    const s = typeof x === 'string' ? x.trim().toLowerCase() : ''
    const at = Array.isArray(f.value) ? `${f.path}[${i}]` : f.path
    if (!(ENCODINGS as readonly string[]).includes(s)) {
      problems.push({ path: at, message: `must be one of ${ENCODINGS.join(', ')}, got ${describeValue(x)}` })
      ok = false
    } else if (out.includes(s)) {
      problems.push({ path: at, message: `${s} is listed twice; keep one` })
      ok = false
    } else out.push(s)
  })
  return ok ? out : null
}

function readTypes(f: Found | undefined, problems: Problem[]): string[] | null {
  if (f === undefined || isMissing(f)) return [...DEFAULT_TYPES]
  const list = listOf(f)
  if (list === null || list.length === 0) {
    problems.push({ path: f.path, message: `must be a list of media types (type/subtype or type/*), got ${describeValue(f.value)}` })
    return null
  }
  const out: string[] = []
  let ok = true
  list.forEach((x, i) => {
    const s = typeof x === 'string' ? x.trim().toLowerCase() : ''
    const slash = s.indexOf('/')
    const type = s.slice(0, slash)
    const sub = s.slice(slash + 1)
    if (slash <= 0 || !TOKEN.test(type) || !(sub === '*' || TOKEN.test(sub))) {
      problems.push({ path: Array.isArray(f.value) ? `${f.path}[${i}]` : f.path, message: `must be a media type, type/subtype or type/* (no parameters), got ${describeValue(x)}` })
      ok = false
    } else if (!out.includes(s)) out.push(s)
  })
  return ok ? out : null
}
