// The `hsts` group of a server or route: the Strict-Transport-Security
// header the balancer adds to responses it relays over TLS (RFC 6797).
//
//   MaxAge             seconds (or a duration: `8760h`), 0 (tells browsers to
//                      forget) to 2 years; default 1 year
//   IncludeSubDomains  default false
//   Preload            default false; needs IncludeSubDomains and a MaxAge of
//                      at least a year (what browsers' preload lists require)
//
// Absent: no header. On a route, absent means its server's; `null` means
// none even if the server has one. A number alone is the MaxAge.

import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { describeValue, isMissing, joinPath, readFields } from './fields.ts'
import { parseDuration } from './duration.ts'
import type { Hsts } from './types.ts'

const FIELDS = ['MaxAge', 'IncludeSubDomains', 'Preload'] as const
const YEAR = 31_536_000
const MAX = 2 * YEAR

export const HSTS_DEFAULTS: Hsts = { MaxAge: YEAR, IncludeSubDomains: false, Preload: false }

/** The group as found: undefined when absent, null for a route's explicit "none". */
export function readHsts(found: Found | undefined, owner: 'server' | 'route', problems: Problem[]): Hsts | null | undefined {
  if (found === undefined) return undefined
  if (found.value === null) return owner === 'route' ? null : undefined
  if (isMissing(found)) return undefined
  const short = typeof found.value === 'number' || typeof found.value === 'string'
  const raw = short ? { MaxAge: found.value } : found.value
  const before = problems.length
  const f = readFields(raw, found.path, FIELDS, problems)
  if (f === null) return undefined
  // A number alone is the MaxAge, and its problems are the field's.
  const maxAge = readMaxAge(short ? { value: found.value, path: found.path } : f.MaxAge, problems)
  const sub = readBool(f.IncludeSubDomains, false, problems)
  const preload = readBool(f.Preload, false, problems)
  if (problems.length > before || maxAge === null || sub === null || preload === null) return undefined
  if (preload && (!sub || maxAge < YEAR)) {
    problems.push({ path: f.Preload?.path ?? joinPath(found.path, 'Preload'), message: 'needs IncludeSubDomains: true and a MaxAge of at least a year (31536000)' })
    return undefined
  }
  return { MaxAge: maxAge, IncludeSubDomains: sub, Preload: preload }
}

function readMaxAge(f: Found | undefined, problems: Problem[]): number | null {
  if (f === undefined || isMissing(f)) return HSTS_DEFAULTS.MaxAge
  const v = f.value
  let s: number | null = null
  if (typeof v === 'number') s = Number.isInteger(v) ? v : null
  else if (typeof v === 'string' && /^\s*\d+\s*$/.test(v)) s = Number(v)
  else if (typeof v === 'string') {
    const ms = parseDuration(v.toLowerCase())
    s = ms === null || ms % 1000 !== 0 ? null : ms / 1000
  }
  if (s === null || s < 0 || s > MAX) {
    problems.push({ path: f.path, message: `must be seconds 0-${MAX} (or a duration like 8760h), got ${describeValue(v)}` })
    return null
  }
  return s
}

function readBool(f: Found | undefined, fallback: boolean, problems: Problem[]): boolean | null {
  if (f === undefined || isMissing(f)) return fallback
  const v = f.value
  if (typeof v === 'boolean') return v
  if (typeof v === 'string' && /^(true|false)$/i.test(v.trim())) return v.trim().toLowerCase() === 'true'
  problems.push({ path: f.path, message: `must be true or false, got ${describeValue(v)}` })
  return null
}

/** The header line for a group: `strict-transport-security: max-age=...\r\n`. */
export function hstsHeader(h: Hsts): string {
  return `strict-transport-security: max-age=${h.MaxAge}${h.IncludeSubDomains ? '; includeSubDomains' : ''}${h.Preload ? '; preload' : ''}\r\n`
}
