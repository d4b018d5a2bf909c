// The `headers` group of a server or route: fields added to or removed from
// the request the upstream gets and the response the client gets.
//
//   Request, Response   each {Set, Add, Remove}: Set replaces every field of
//                       the name with one (an object of name to value), Add
//                       adds one more line, Remove drops every line of the
//                       names listed. Applied Remove, Set, Add.
//   FrameDeny           true: `X-Frame-Options: DENY` on responses.
//   ContentTypeNosniff  true: `X-Content-Type-Options: nosniff` on responses.
//
// Names are tokens (RFC 9110 §5.1), matched case-insensitively and written
// lower-case; values are visible ASCII with inner spaces. Refused names:
// hop-by-hop and framing fields (Connection, Keep-Alive, TE, Trailer,
// Transfer-Encoding, Upgrade, Proxy-*, Content-Length), which the proxy
// writes itself for each connection; on requests Host (rewrite.Host sets it)
// and the forwarding fields the balancer writes (X-Forwarded-*, X-Real-IP,
// Forwarded, X-Request-Id); on responses Strict-Transport-Security, which is
// the `hsts` group's alone (one place for HSTS, docs/tls.md).

import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { describeValue, isMissing, isPlainObject, joinPath, readFields } from './fields.ts'
import type { HeaderEdits, HeaderRules } from './types.ts'

const FIELDS = ['Request', 'Response', 'FrameDeny', 'ContentTypeNosniff'] as const
const EDIT_FIELDS = ['Set', 'Add', 'Remove'] as const

export const HEADERS_FIELDS: readonly string[] = FIELDS

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'content-length'])
const REQUEST_OWN = new Set(['host', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-prefix', 'x-real-ip', 'forwarded', 'x-request-id'])
const RESPONSE_OWN = new Set(['strict-transport-security'])

type Side = 'request' | 'response'

export function readHeaderRules(raw: unknown, path: string, problems: Problem[]): HeaderRules | null {
  const before = problems.length
  const f = readFields(raw, path, FIELDS, problems)
  if (f === null) return null
  const request = readEdits(f.Request, 'request', problems)
  const response = readEdits(f.Response, 'response', problems)
  const frameDeny = readBool(f.FrameDeny, problems)
  const nosniff = readBool(f.ContentTypeNosniff, problems)
  if (frameDeny === true && response !== null) clash(response, 'x-frame-options', 'FrameDeny', f.Response?.path ?? joinPath(path, 'Response'), problems)
  if (nosniff === true && response !== null) clash(response, 'x-content-type-options', 'ContentTypeNosniff', f.Response?.path ?? joinPath(path, 'Response'), problems)
  if (problems.length > before || request === null || response === null || frameDeny === null || nosniff === null) return null
  return { Request: request, Response: response, FrameDeny: frameDeny, ContentTypeNosniff: nosniff }
}

/** A shortcut and an explicit Set/Add of the same field: say which to keep. */
function clash(e: HeaderEdits, name: string, shortcut: string, path: string, problems: Problem[]): void {
  if (name in e.Set || name in e.Add) problems.push({ path, message: `sets ${name}, which ${shortcut} already sets; keep one` })
}

export function emptyEdits(): HeaderEdits {
  return { Set: {}, Add: {}, Remove: [] }
}

function readEdits(found: Found | undefined, side: Side, problems: Problem[]): HeaderEdits | null {
  if (found === undefined || isMissing(found)) return emptyEdits()
  const before = problems.length
  const f = readFields(found.value, found.path, EDIT_FIELDS, problems)
  if (f === null) return null
  const set = readValues(f.Set, side, problems)
  const add = readValues(f.Add, side, problems)
  const remove = readNames(f.Remove, side, problems)
  if (problems.length > before || set === null || add === null || remove === null) return null
  return { Set: set, Add: add, Remove: remove }
}

/** null when `name` may be edited on `side`; else why not. */
function nameProblem(name: string, side: Side): string | null {
  if (!TOKEN.test(name)) return `must be a header name (letters, digits and !#$%&'*+.^_\`|~-), got ${JSON.stringify(name)}`
  const n = name.toLowerCase()
  if (HOP.has(n)) return `${name} is a hop-by-hop or framing field, written by the proxy for each connection: it cannot be edited`
  if (side === 'request' && REQUEST_OWN.has(n)) return n === 'host' ? 'Host is set by rewrite.Host' : `${name} is written by the balancer itself (docs: forwarding headers)`
  if (side === 'response' && RESPONSE_OWN.has(n)) return "Strict-Transport-Security is the hsts group's (docs/tls.md): set it there"
  return null
}

function valueProblem(v: string): string | null {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i)
    if ((c >= 0x20 && c <= 0x7e) || c === 0x09) continue
    const name = c === 0x0d ? 'CR' : c === 0x0a ? 'LF' : c === 0 ? 'NUL' : `U+${c.toString(16).toUpperCase().padStart(4, '0')}`
    return `must be visible ASCII, spaces and tabs: ${name} at position ${i + 1} would break or alter the head, got ${JSON.stringify(v)}`
  }
  return null
}

function readValues(found: Found | undefined, side: Side, problems: Problem[]): Record<string, string> | null {
  if (found === undefined || isMissing(found)) return {}
  if (!isPlainObject(found.value)) {
    problems.push({ path: found.path, message: `must be an object of header name to value, got ${describeValue(found.value)}` })
    return null
  }
  const out: Record<string, string> = {}
  let ok = true
  for (const [name, v] of Object.entries(found.value)) {
    const at = joinPath(found.path, name)
    const bad = nameProblem(name, side)
    const value = typeof v === 'number' || typeof v === 'boolean' ? String(v) : v
    if (bad !== null) {
      problems.push({ path: at, message: bad })
      ok = false
      continue
    }
    if (typeof value !== 'string') {
      problems.push({ path: at, message: `must be a string, got ${describeValue(v)}` })
      ok = false
      continue
    }
    const text = value.trim()
    const vbad = valueProblem(text)
    if (vbad !== null) {
      problems.push({ path: at, message: vbad })
      ok = false
      continue
    }
    const key = name.toLowerCase()
    if (key in out) {
      problems.push({ path: at, message: `same header as another key of ${found.path} (names are case-insensitive); keep one` })
      ok = false
      continue
    }
    out[key] = text
  }
  return ok ? out : null
}

function readNames(found: Found | undefined, side: Side, problems: Problem[]): string[] | null {
  if (found === undefined || isMissing(found)) return []
  const v = found.value
  const items =
    typeof v === 'string'
      ? v
          .split(',')
          .map((s) => ({ v: s.trim() as unknown, path: found.path }))
          .filter((x) => x.v !== '')
      : Array.isArray(v)
        ? v.map((x: unknown, i) => ({ v: x, path: `${found.path}[${i}]` }))
        : null
  if (items === null) {
    problems.push({ path: found.path, message: `must be a list of header names, got ${describeValue(v)}` })
    return null
  }
  const out: string[] = []
  let ok = true
  for (const { v: name, path } of items) {
    const bad = typeof name !== 'string' ? `must be a header name, got ${describeValue(name)}` : nameProblem(name.trim(), side)
    if (bad !== null) {
      problems.push({ path, message: bad })
      ok = false
      continue
    }
    const n = (name as string).trim().toLowerCase()
    if (!out.includes(n)) out.push(n)
  }
  return ok ? out : null
}

function readBool(f: Found | undefined, problems: Problem[]): boolean | null {
  if (f === undefined || isMissing(f)) return false
  const v = f.value
  if (typeof v === 'boolean') return v
  if (typeof v === 'string' && /^(true|false)$/i.test(v.trim())) return v.trim().toLowerCase() === 'true'
  problems.push({ path: f.path, message: `must be true or false, got ${describeValue(v)}` })
  return null
}
