// A route's rules at run time: the compiled plan plus the state the rules
// keep (the access group's cache of verified credentials, the rate limit's
// buckets). Kept across snapshots while a group's plan is unchanged, like the
// retry budget.

import type { RulesPlan } from '../../compiler/snapshot.ts'
import { AccessRuntime } from './access.ts'
import { RateLimiter } from './ratelimit.ts'

export class RulesRuntime {
  readonly plan: RulesPlan
  readonly access: AccessRuntime | null
  readonly limiter: RateLimiter | null

  constructor(plan: RulesPlan, prev: RulesRuntime | null) {
    this.plan = plan
    const a = plan.access
    const old = prev?.access ?? null
    this.access = a === null ? null : old !== null && old.plan.signature === a.signature ? old : new AccessRuntime(a)
    const r = plan.ratelimit
    const oldLimiter = prev?.limiter ?? null
    this.limiter = r === null ? null : oldLimiter !== null && oldLimiter.plan.signature === r.signature ? oldLimiter : new RateLimiter(r)
  }
}

export function rulesRuntime(plan: RulesPlan | null, prev: RulesRuntime | null): RulesRuntime | null {
  return plan === null ? null : new RulesRuntime(plan, prev)
}
