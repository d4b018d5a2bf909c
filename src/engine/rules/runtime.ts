// A route's rules at run time: the compiled plan plus the state the rules
// keep (the access group's cache of verified credentials). Kept across
// snapshots while a group's plan is unchanged, like the retry budget.

import type { RulesPlan } from '../../compiler/snapshot.ts'
import { AccessRuntime } from './access.ts'

export class RulesRuntime {
  readonly plan: RulesPlan
  readonly access: AccessRuntime | null

  constructor(plan: RulesPlan, prev: RulesRuntime | null) {
    this.plan = plan
    const a = plan.access
    const old = prev?.access ?? null
    this.access = a === null ? null : old !== null && old.plan.signature === a.signature ? old : new AccessRuntime(a)
  }
}

export function rulesRuntime(plan: RulesPlan | null, prev: RulesRuntime | null): RulesRuntime | null {
  return plan === null ? null : new RulesRuntime(plan, prev)
}
