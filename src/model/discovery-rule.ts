// A stored server's or route's `discovery` field: which discovered containers
// and services may add themselves to it (docs/discovery.md, "Who is trusted").
//
//   absent        a route: its server's rule; a server: "allow"
//   "allow"       any discovered member may join (one owner at a time: a
//                 second owner claiming the same address and filter is refused)
//   "deny"        nothing discovered joins, and no discovered route may take
//                 any of its hosts on this address
//   {"Constraint": "EXPR"}
//                 only members matching EXPR join (constraint.ts), and they may
//                 come from several owners: the operator vouched for them
//
// Only the store sets it: labels never do (a container cannot grant itself
// trust). Canonical form: as written, "allow"/"deny" lower-case, the
// constraint trimmed.

import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { describeValue, isPlainObject, readFields } from './fields.ts'
import { constraintErrorText, parseConstraint } from './constraint.ts'
import type { Constraint } from './constraint.ts'

export type DiscoveryRule = 'allow' | 'deny' | { Constraint: string }

const RULE_FIELDS = ['Constraint'] as const

/** undefined when absent or null (inherit). */
export function readDiscoveryRule(f: Found | undefined, problems: Problem[]): DiscoveryRule | undefined {
  if (f === undefined || f.value === null || f.value === undefined) return undefined
  const v = f.value
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase()
    if (t === 'allow' || t === 'deny') return t
    problems.push({ path: f.path, message: `must be "allow", "deny" or {"Constraint": "EXPR"}, got ${JSON.stringify(v)}` })
    return undefined
  }
  if (!isPlainObject(v)) {
    problems.push({ path: f.path, message: `must be "allow", "deny" or {"Constraint": "EXPR"}, got ${describeValue(v)}` })
    return undefined
  }
  const fields = readFields(v, f.path, RULE_FIELDS, problems)
  const c = fields?.Constraint
  if (c === undefined || typeof c.value !== 'string') {
    if (fields !== null) problems.push({ path: c?.path ?? `${f.path}.Constraint`, message: `must be a constraint expression like "label:team=web", got ${describeValue(c?.value)}` })
    return undefined
  }
  const parsed = parseConstraint(c.value)
  if ('error' in parsed) {
    problems.push({ path: c.path, message: constraintErrorText(parsed) })
    return undefined
  }
  return { Constraint: parsed.text }
}

/** The parsed constraint of a rule (valid: it was checked when stored). */
export function ruleConstraint(rule: { Constraint: string }): Constraint {
  const c = parseConstraint(rule.Constraint)
  if ('error' in c) throw new Error(`stored discovery constraint does not parse: ${constraintErrorText(c)}`)
  return c
}
