// The `rewrite` group of a server or route: what the upstream sees of the
// request's path and Host. Applied in this order: StripPrefix, then
// ReplacePathRegex, then AddPrefix; the query string is kept as received.
//
//   StripPrefix       true: the route's PathPrefix is removed from the path,
//                     keeping a leading `/` (`/api/users` -> `/users`, `/api`
//                     -> `/`); the prefix goes upstream as X-Forwarded-Prefix.
//                     A route without a PathPrefix has nothing to strip.
//   AddPrefix         a path starting with `/`, visible ASCII, no `?` or `#`.
//   ReplacePathRegex  {Regex, Replacement}: RE2 syntax, run by re2js (a
//                     linear-time engine in plain JavaScript: no native
//                     addon). A pattern RE2 cannot run in linear time
//                     (backreferences, lookaround) does not compile and is
//                     refused here; one that would backtrack catastrophically
//                     in a backtracking engine (`(a+)+$`) runs in linear time.
//                     Replacement: `$1`, `${name}` name groups; visible ASCII.
//   Host              `client` (default: as received), `upstream` (the picked
//                     upstream's `Target:Port`), or a fixed `name[:port]`.
//                     The client's Host goes upstream as X-Forwarded-Host.
//
// Why an engine rather than a checker of a "safe subset" of JavaScript's
// RegExp: whether a pattern backtracks badly depends on overlaps between
// alternatives and quantifiers that a syntactic check only approximates, so
// a checker either refuses useful patterns or lets some bad ones through.
// RE2 gives the guarantee by construction; it costs about 10 us per rewrite,
// paid only by routes that use it.

import type { RE2JS } from 're2js'
import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { describeValue, isMissing, joinPath, readFields } from './fields.ts'
import { headTextProblem } from './head-safe.ts'
import type { ReplacePath, Rewrite } from './types.ts'

const FIELDS = ['StripPrefix', 'AddPrefix', 'ReplacePathRegex', 'Host'] as const
const REPLACE_FIELDS = ['Regex', 'Replacement'] as const
/** Longest Regex accepted: patterns are configuration, not data. */
const REGEX_MAX = 1024

export const REWRITE_FIELDS: readonly string[] = FIELDS

export function readRewrite(raw: unknown, path: string, problems: Problem[]): Rewrite | null {
  const before = problems.length
  const f = readFields(raw, path, FIELDS, problems)
  if (f === null) return null
  const strip = readBool(f.StripPrefix, problems)
  const add = readAddPrefix(f.AddPrefix, problems)
  const replace = isMissing(f.ReplacePathRegex) ? null : readReplace(f.ReplacePathRegex as Found, problems)
  const host = readHost(f.Host, problems)
  if (problems.length > before || strip === null || add === null || host === null) return null
  return { StripPrefix: strip, AddPrefix: add, ReplacePathRegex: replace, Host: host }
}

/**
 * re2js, loaded with the first ReplacePathRegex (its CommonJS build, by
 * require: synchronous): 1.5 MiB in every process that never needs it.
 */
let re2: typeof RE2JS | null = null

function RE2(): typeof RE2JS {
  re2 ??= (process.getBuiltinModule('node:module').createRequire(import.meta.url)('re2js') as typeof import('re2js')).RE2JS
  return re2
}

/** The compiled pattern of a ReplacePathRegex that readRewrite accepted. */
export function compilePathRegex(regex: string): RE2JS {
  return RE2().compile(regex)
}

function readBool(f: Found | undefined, problems: Problem[]): boolean | null {
  if (f === undefined || isMissing(f)) return false
  const v = f.value
  if (typeof v === 'boolean') return v
  if (typeof v === 'string' && /^(true|false)$/i.test(v.trim())) return v.trim().toLowerCase() === 'true'
  problems.push({ path: f.path, message: `must be true or false, got ${describeValue(v)}` })
  return null
}

function readAddPrefix(f: Found | undefined, problems: Problem[]): string | null {
  if (f === undefined || isMissing(f)) return ''
  const v = f.value
  if (typeof v !== 'string') {
    problems.push({ path: f.path, message: `must be a path like "/api", got ${describeValue(v)}` })
    return null
  }
  const s = v.trim()
  if (s === '') return ''
  const bad = !s.startsWith('/') ? `must start with "/", got ${JSON.stringify(s)}` : (headTextProblem(s) ?? (/[?#]/.test(s) ? `must be a path without "?" or "#", got ${JSON.stringify(s)}` : null))
  if (bad === null) return s
  problems.push({ path: f.path, message: bad })
  return null
}

function readReplace(found: Found, problems: Problem[]): ReplacePath | null {
  const before = problems.length
  const f = readFields(found.value, found.path, REPLACE_FIELDS, problems)
  if (f === null) return null
  const regex = f.Regex
  let pattern: string | null = null
  if (regex === undefined || isMissing(regex) || typeof regex.value !== 'string' || regex.value === '') {
    problems.push({ path: regex?.path ?? joinPath(found.path, 'Regex'), message: `required: a regular expression (RE2 syntax), got ${describeValue(regex?.value)}` })
  } else if (regex.value.length > REGEX_MAX) {
    problems.push({ path: regex.path, message: `must be at most ${REGEX_MAX} characters, got ${regex.value.length}` })
  } else {
    try {
      RE2().compile(regex.value)
      pattern = regex.value
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err)
      problems.push({ path: regex.path, message: `cannot be run in linear time (RE2 syntax: no backreferences or lookaround): ${why}` })
    }
  }
  const rep = f.Replacement
  let replacement: string | null = null
  if (rep === undefined || isMissing(rep)) replacement = ''
  else if (typeof rep.value !== 'string') problems.push({ path: rep.path, message: `must be a string, got ${describeValue(rep.value)}` })
  else {
    const bad = rep.value === '' ? null : headTextProblem(rep.value)
    if (bad === null) replacement = rep.value
    else problems.push({ path: rep.path, message: bad })
  }
  if (problems.length > before || pattern === null || replacement === null) return null
  return { Regex: pattern, Replacement: replacement }
}

const HOST_NAME = /^[A-Za-z0-9._-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/

function readHost(f: Found | undefined, problems: Problem[]): string | null {
  if (f === undefined || isMissing(f)) return 'client'
  const v = f.value
  const s = typeof v === 'string' ? v.trim() : ''
  const lower = s.toLowerCase()
  if (lower === 'client' || lower === 'upstream') return lower
  if (s !== '' && HOST_NAME.test(s)) return lower
  problems.push({ path: f.path, message: `must be "client", "upstream" or a host name with an optional :port, got ${describeValue(v)}` })
  return null
}
