// Reading loose objects field by field while collecting every problem with
// its path. Field names match case-insensitively (`Target`, `target`,
// `pathprefix`): the seed was written in Go, whose JSON decoder does the same,
// so configs written for it keep working. Any other key is reported, so a
// typo (`upstream` for `upstreams`) is an error instead of a silent no-op.

import type { Problem } from './errors.ts'

/** One known field as found in the input: its value and the key as the user spelled it. */
export interface Found {
  value: unknown
  path: string
}

/** `servers[0]` + `Port` -> `servers[0].Port`; keys that are not identifiers are quoted: `fallbacks["10.0.0.1-80"]`. */
export function joinPath(path: string, key: string): string {
  if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key)) return path === '' ? key : `${path}.${key}`
  return `${path}[${JSON.stringify(key)}]`
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** How a value is named in a message: strings and numbers as JSON, containers by kind. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object' && v !== null) return 'an object'
  return JSON.stringify(v)
}

/**
 * Maps each key of `raw` to one of `fields` (case-insensitively). Unknown and
 * repeated fields become problems. Returns null, with a problem, when `raw` is
 * not an object.
 */
export function readFields<F extends string>(raw: unknown, path: string, fields: readonly F[], problems: Problem[]): Partial<Record<F, Found>> | null {
  if (!isPlainObject(raw)) {
    problems.push({ path, message: `must be an object, got ${describeValue(raw)}` })
    return null
  }
  const out: Partial<Record<F, Found>> = {}
  const spelled: Partial<Record<F, string>> = {}
  for (const key of Object.keys(raw)) {
    const lower = key.toLowerCase()
    const field = fields.find((f) => f.toLowerCase() === lower)
    const at = joinPath(path, key)
    if (field === undefined) {
      problems.push({ path: at, message: `unknown field (expected one of ${fields.join(', ')})` })
      continue
    }
    const before = spelled[field]
    if (before !== undefined) {
      problems.push({ path: at, message: `same field as ${JSON.stringify(before)}; keep only one` })
      continue
    }
    spelled[field] = key
    out[field] = { value: raw[key], path: at }
  }
  return out
}

/** True when the field is absent or null: optional fields then take their default. */
export function isMissing(f: Found | undefined): boolean {
  return f === undefined || f.value === null || f.value === undefined
}

/**
 * An integer in [min, max]; a string of digits counts (KV stores and Docker
 * labels carry numbers as strings). Missing or null yields `fallback`, or a
 * "required" problem when there is none. Returns null after a problem.
 */
export function readInt(f: Found | undefined, missingPath: string, min: number, max: number, fallback: number | null, problems: Problem[]): number | null {
  if (f === undefined || isMissing(f)) {
    if (fallback !== null) return fallback
    problems.push({ path: f?.path ?? missingPath, message: `required: an integer ${min}-${max}` })
    return null
  }
  const v = f.value
  let n = Number.NaN
  if (typeof v === 'number') n = v
  else if (typeof v === 'string' && /^[0-9]{1,10}$/.test(v.trim())) n = Number(v.trim())
  if (!Number.isInteger(n) || n < min || n > max) {
    problems.push({ path: f.path, message: `must be an integer ${min}-${max}, got ${describeValue(v)}` })
    return null
  }
  return n
}

/** A string field; null after a problem. Missing gives `fallback`, or "required" when it is null. */
export function readString(f: Found | undefined, missingPath: string, fallback: string | null, problems: Problem[]): string | null {
  if (f === undefined || isMissing(f)) {
    if (fallback !== null) return fallback
    problems.push({ path: f?.path ?? missingPath, message: 'required' })
    return null
  }
  if (typeof f.value !== 'string') {
    problems.push({ path: f.path, message: `must be a string, got ${describeValue(f.value)}` })
    return null
  }
  return f.value
}
