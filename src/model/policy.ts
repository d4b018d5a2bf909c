// The policy groups (`health`, `passive`, `retry`, `limits`) as read from
// loose input, with every problem and its path. A group given in part is
// completed with POLICY_DEFAULTS, so the canonical form always holds whole
// groups; an absent group stays absent, so simple configs stay simple.
//
// Bounds (README "Health and failover" has the operator's table):
//   durations   `500ms`, `5s`, `1.5s`, `1m`, `1h`, or a JSON number of milliseconds;
//               a string needs its unit (`"500"` is refused: ms or s?)
//   health      Interval 100ms-1h; Timeout 10ms-Interval (default 2s, or Interval
//               when that is shorter); Rise, Fall 1-100;
//               Statuses 100-599, codes or ranges `lo-hi`, at least one
//   passive     Failures 0-100 (0 = off); Ejection 100ms-1h; MaxEjection Ejection-24h
//               (default 30s, or Ejection when that is longer)
//   retry       Attempts 1-10; Budget 0-100 (percent); Statuses 100-599, may be empty
//   limits      MaxConnections, MaxPending 0-1000000 (0 = unlimited / none wait)
//
// On a server, `null` is the same as absent (the defaults; no active check).
// On a route, absent means "the server's group"; `null` means "the defaults,
// not the server's": a route can opt out of its server's health check with
// `"health": null`. The other groups have no "none", so a route's `null`
// becomes the full group of defaults in canonical form.

import type { Problem } from './errors.ts'
import type { HealthCheck, Limits, Passive, Policy, Retry } from './types.ts'
import { POLICY_DEFAULTS } from './types.ts'
import type { Found } from './fields.ts'
import { headTextProblem } from './head-safe.ts'
import { describeValue, isMissing, joinPath, readFields, readInt } from './fields.ts'
import { formatDuration, parseDuration } from './duration.ts'
import { readRules } from './rules.ts'
import type { RuleGroup } from './rules.ts'
import { readHsts } from './hsts.ts'

export const POLICY_GROUPS = ['health', 'passive', 'retry', 'limits'] as const
export type PolicyGroup = (typeof POLICY_GROUPS)[number]

const HEALTH_FIELDS = ['Type', 'Path', 'Method', 'Host', 'Statuses', 'Interval', 'Timeout', 'Rise', 'Fall'] as const
const PASSIVE_FIELDS = ['Failures', 'Ejection', 'MaxEjection', 'EjectOn5xx'] as const
const RETRY_FIELDS = ['Statuses', 'Attempts', 'Budget'] as const
const LIMITS_FIELDS = ['MaxConnections', 'MaxPending'] as const

export const GROUP_FIELDS: Readonly<Record<PolicyGroup, readonly string[]>> = {
  health: HEALTH_FIELDS,
  passive: PASSIVE_FIELDS,
  retry: RETRY_FIELDS,
  limits: LIMITS_FIELDS,
}

const MINUTE = 60_000
const HOUR = 60 * MINUTE
export const BOUNDS = {
  intervalMs: [100, HOUR],
  timeoutMinMs: 10,
  ejectionMs: [100, HOUR],
  maxEjectionMs: 24 * HOUR,
  limit: 1_000_000,
} as const

/** Where the policy sits: a route's absent group inherits its server's, so `null` there has a meaning of its own. */
export type PolicyOwner = 'server' | 'route'

/** The four groups of a server or route, and its rule groups (rules.ts), from its found fields; problems are collected, not thrown. */
export function readPolicy(f: Partial<Record<PolicyGroup | RuleGroup, Found>>, owner: PolicyOwner, problems: Problem[]): Policy {
  const out: Policy = readRules(f, owner, problems)
  const h = f.health
  if (h !== undefined && h.value === null && owner === 'route') out.health = null
  else if (!isMissing(h) && h !== undefined) {
    const v = readHealth(h.value, h.path, problems)
    if (v !== null) out.health = v
  }
  const hsts = readHsts((f as Partial<Record<PolicyGroup | 'hsts', Found>>).hsts, owner, problems)
  if (hsts !== undefined) out.hsts = hsts
  const groups = [
    ['passive', readPassive],
    ['retry', readRetry],
    ['limits', readLimits],
  ] as const
  for (const [name, read] of groups) {
    const found = f[name]
    if (found === undefined) continue
    if (found.value === null || found.value === undefined) {
      if (owner === 'route' && found.value === null) setGroup(out, name, defaultsOf(name) as Passive | Retry | Limits)
      continue
    }
    const v: Passive | Retry | Limits | null = read(found.value, found.path, problems)
    if (v !== null) setGroup(out, name, v)
  }
  return out
}

function setGroup(out: Policy, name: 'passive' | 'retry' | 'limits', v: Passive | Retry | Limits): void {
  if (name === 'passive') out.passive = v as Passive
  else if (name === 'retry') out.retry = v as Retry
  else out.limits = v as Limits
}

/** A fresh copy of a group's defaults (the lists are copied too). */
export function defaultsOf(name: 'health'): HealthCheck
export function defaultsOf(name: 'passive'): Passive
export function defaultsOf(name: 'retry'): Retry
export function defaultsOf(name: 'limits'): Limits
export function defaultsOf(name: PolicyGroup): HealthCheck | Passive | Retry | Limits
export function defaultsOf(name: PolicyGroup): HealthCheck | Passive | Retry | Limits {
  switch (name) {
    case 'health':
      return { ...POLICY_DEFAULTS.health, Statuses: [...POLICY_DEFAULTS.health.Statuses] }
    case 'passive':
      return { ...POLICY_DEFAULTS.passive }
    case 'retry':
      return { ...POLICY_DEFAULTS.retry, Statuses: [...POLICY_DEFAULTS.retry.Statuses] }
    case 'limits':
      return { ...POLICY_DEFAULTS.limits }
  }
}

/** One group on its own (the API's `/health`, `/passive`, ... bodies); throws nothing, collects problems. */
export function readGroup(name: PolicyGroup, raw: unknown, path: string, problems: Problem[]): HealthCheck | Passive | Retry | Limits | null {
  switch (name) {
    case 'health':
      return readHealth(raw, path, problems)
    case 'passive':
      return readPassive(raw, path, problems)
    case 'retry':
      return readRetry(raw, path, problems)
    case 'limits':
      return readLimits(raw, path, problems)
  }
}

function readHealth(raw: unknown, path: string, problems: Problem[]): HealthCheck | null {
  const before = problems.length
  const f = readFields(raw, path, HEALTH_FIELDS, problems)
  if (f === null) return null
  const d = POLICY_DEFAULTS.health
  const at = (k: string): string => joinPath(path, k)
  const type = readChoice(f.Type, ['http', 'tcp', 'grpc'] as const, d.Type, problems)
  const method = readChoice(f.Method, ['GET', 'HEAD'] as const, d.Method, problems)
  const hPath = readText(f.Path, d.Path, problems, (s) =>
    !s.startsWith('/') ? `must start with "/", got ${JSON.stringify(s)}` : (headTextProblem(s) ?? (s.includes('#') ? `must be a path without "#", got ${JSON.stringify(s)}` : null)),
  )
  const host = readText(f.Host, d.Host, problems, (s) =>
    /^[A-Za-z0-9._-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/.test(s) || s === '' ? null : `must be empty or a host name with an optional :port, got ${JSON.stringify(s)}`,
  )
  const statuses = readStatusRanges(f.Statuses, [...d.Statuses], problems)
  const interval = readDuration(f.Interval, d.Interval, BOUNDS.intervalMs[0], BOUNDS.intervalMs[1], problems)
  // Left out, Timeout is its default or the Interval, whichever is shorter.
  const timeoutDefault = interval !== null && interval.ms < (parseDuration(d.Timeout) ?? 0) ? interval.text : d.Timeout
  let timeout = readDuration(f.Timeout, timeoutDefault, BOUNDS.timeoutMinMs, BOUNDS.intervalMs[1], problems)
  if (interval !== null && timeout !== null && timeout.ms > interval.ms) {
    problems.push({ path: f.Timeout?.path ?? at('Timeout'), message: `must not be longer than Interval (${interval.text}), got ${JSON.stringify(timeout.text)}` })
    timeout = null
  }
  const rise = readInt(f.Rise, at('Rise'), 1, 100, d.Rise, problems)
  const fall = readInt(f.Fall, at('Fall'), 1, 100, d.Fall, problems)
  if (problems.length > before || type === null || method === null || hPath === null || host === null || statuses === null || interval === null || timeout === null || rise === null || fall === null)
    return null
  return { Type: type, Path: hPath, Method: method, Host: host.toLowerCase(), Statuses: statuses, Interval: interval.text, Timeout: timeout.text, Rise: rise, Fall: fall }
}

function readPassive(raw: unknown, path: string, problems: Problem[]): Passive | null {
  const before = problems.length
  const f = readFields(raw, path, PASSIVE_FIELDS, problems)
  if (f === null) return null
  const d = POLICY_DEFAULTS.passive
  const failures = readInt(f.Failures, joinPath(path, 'Failures'), 0, 100, d.Failures, problems)
  const ejection = readDuration(f.Ejection, d.Ejection, BOUNDS.ejectionMs[0], BOUNDS.ejectionMs[1], problems)
  // Left out, MaxEjection is its default or the Ejection, whichever is longer.
  const maxDefault = ejection !== null && ejection.ms > (parseDuration(d.MaxEjection) ?? 0) ? ejection.text : d.MaxEjection
  let max = readDuration(f.MaxEjection, maxDefault, BOUNDS.ejectionMs[0], BOUNDS.maxEjectionMs, problems)
  if (ejection !== null && max !== null && max.ms < ejection.ms) {
    problems.push({ path: f.MaxEjection?.path ?? joinPath(path, 'MaxEjection'), message: `must not be shorter than Ejection (${ejection.text}), got ${JSON.stringify(max.text)}` })
    max = null
  }
  const on5xx = readBool(f.EjectOn5xx, d.EjectOn5xx, problems)
  if (problems.length > before || failures === null || ejection === null || max === null || on5xx === null) return null
  return { Failures: failures, Ejection: ejection.text, MaxEjection: max.text, EjectOn5xx: on5xx }
}

function readRetry(raw: unknown, path: string, problems: Problem[]): Retry | null {
  const before = problems.length
  const f = readFields(raw, path, RETRY_FIELDS, problems)
  if (f === null) return null
  const d = POLICY_DEFAULTS.retry
  const statuses = readStatusCodes(f.Statuses, [...d.Statuses], problems)
  const attempts = readInt(f.Attempts, joinPath(path, 'Attempts'), 1, 10, d.Attempts, problems)
  const budget = readInt(f.Budget, joinPath(path, 'Budget'), 0, 100, d.Budget, problems)
  if (problems.length > before || statuses === null || attempts === null || budget === null) return null
  return { Statuses: statuses, Attempts: attempts, Budget: budget }
}

function readLimits(raw: unknown, path: string, problems: Problem[]): Limits | null {
  const before = problems.length
  const f = readFields(raw, path, LIMITS_FIELDS, problems)
  if (f === null) return null
  const d = POLICY_DEFAULTS.limits
  const conns = readInt(f.MaxConnections, joinPath(path, 'MaxConnections'), 0, BOUNDS.limit, d.MaxConnections, problems)
  const pending = readInt(f.MaxPending, joinPath(path, 'MaxPending'), 0, BOUNDS.limit, d.MaxPending, problems)
  if (problems.length > before || conns === null || pending === null) return null
  return { MaxConnections: conns, MaxPending: pending }
}

/** One of `choices`, matched case-insensitively, written back in the case the choices use. */
function readChoice<C extends string>(f: Found | undefined, choices: readonly C[], fallback: C, problems: Problem[]): C | null {
  if (f === undefined || isMissing(f)) return fallback
  const v = f.value
  const hit = typeof v === 'string' ? choices.find((c) => c.toLowerCase() === v.trim().toLowerCase()) : undefined
  if (hit !== undefined) return hit
  problems.push({ path: f.path, message: `must be ${choices.map((c) => JSON.stringify(c)).join(' or ')}, got ${describeValue(v)}` })
  return null
}

function readText(f: Found | undefined, fallback: string, problems: Problem[], check: (s: string) => string | null): string | null {
  if (f === undefined || isMissing(f)) return fallback
  if (typeof f.value !== 'string') {
    problems.push({ path: f.path, message: `must be a string, got ${describeValue(f.value)}` })
    return null
  }
  const s = f.value.trim()
  const message = check(s)
  if (message === null) return s
  problems.push({ path: f.path, message })
  return null
}

function readBool(f: Found | undefined, fallback: boolean, problems: Problem[]): boolean | null {
  if (f === undefined || isMissing(f)) return fallback
  const v = f.value
  if (typeof v === 'boolean') return v
  if (typeof v === 'string' && /^(true|false)$/i.test(v.trim())) return v.trim().toLowerCase() === 'true'
  problems.push({ path: f.path, message: `must be true or false, got ${describeValue(v)}` })
  return null
}

interface Duration {
  ms: number
  text: string
}

/** A duration within [min, max] ms, written back in its shortest exact unit (`90s` -> `90s`, `60000` -> `1m`). */
function readDuration(f: Found | undefined, fallback: string, min: number, max: number, problems: Problem[]): Duration | null {
  if (f === undefined || isMissing(f)) return { ms: parseDuration(fallback) ?? 0, text: fallback }
  const v = f.value
  let ms: number | null = null
  if (typeof v === 'number') ms = Number.isInteger(v) && v >= 0 ? v : null
  else if (typeof v === 'string' && /[a-z]\s*$/i.test(v)) ms = parseDuration(v.toLowerCase())
  if (ms === null) {
    problems.push({ path: f.path, message: `must be a duration like 5s or 500ms, got ${describeValue(v)}` })
    return null
  }
  if (ms < min || ms > max) {
    problems.push({ path: f.path, message: `must be between ${formatDuration(min)} and ${formatDuration(max)}, got ${describeValue(v)}` })
    return null
  }
  return { ms, text: formatDuration(ms) }
}

/** A list, or one comma-separated string (`"200-399,404"`, as labels write it). */
function listOf(f: Found, problems: Problem[]): Array<{ v: unknown; path: string }> | null {
  const v = f.value
  if (typeof v === 'string' || typeof v === 'number') {
    const parts =
      typeof v === 'number'
        ? [v]
        : v
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s !== '')
    return parts.map((p) => ({ v: p, path: f.path }))
  }
  if (!Array.isArray(v)) {
    problems.push({ path: f.path, message: `must be a list of statuses, got ${describeValue(v)}` })
    return null
  }
  return v.map((x: unknown, i) => ({ v: x, path: `${f.path}[${i}]` }))
}

function statusCode(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*[0-9]{3}\s*$/.test(v) ? Number(v) : Number.NaN
  return Number.isInteger(n) && n >= 100 && n <= 599 ? n : null
}

/** health.Statuses: codes and `lo-hi` ranges, written as strings (`"204"`, `"200-399"`), duplicates dropped. */
function readStatusRanges(f: Found | undefined, fallback: string[], problems: Problem[]): string[] | null {
  if (f === undefined || isMissing(f)) return fallback
  const items = listOf(f, problems)
  if (items === null) return null
  const out: string[] = []
  let ok = true
  for (const { v, path } of items) {
    const m = typeof v === 'string' ? /^\s*([0-9]{3})\s*(?:-\s*([0-9]{3})\s*)?$/.exec(v) : null
    const lo = m !== null ? statusCode(m[1]) : statusCode(v)
    const hi = m?.[2] !== undefined ? statusCode(m[2]) : lo
    if (lo === null || hi === null || hi < lo) {
      problems.push({ path, message: `must be a status 100-599 or a range like "200-399", got ${describeValue(v)}` })
      ok = false
      continue
    }
    const text = lo === hi ? `${lo}` : `${lo}-${hi}`
    if (!out.includes(text)) out.push(text)
  }
  if (ok && out.length === 0) {
    problems.push({ path: f.path, message: 'must list at least one status, e.g. ["200-399"]' })
    return null
  }
  return ok ? out : null
}

/** retry.Statuses: codes only, sorted and unique; empty means "retry on no status". */
function readStatusCodes(f: Found | undefined, fallback: number[], problems: Problem[]): number[] | null {
  if (f === undefined || isMissing(f)) return fallback
  const items = listOf(f, problems)
  if (items === null) return null
  const set = new Set<number>()
  let ok = true
  for (const { v, path } of items) {
    const n = statusCode(v)
    if (n === null) {
      problems.push({ path, message: `must be a status 100-599, got ${describeValue(v)}` })
      ok = false
    } else set.add(n)
  }
  return ok ? [...set].sort((a, b) => a - b) : null
}
