// Smooth weighted round robin (nginx's algorithm) over priority tiers.
// Every pick adds each eligible member's weight to its running score, takes
// the highest score and subtracts the eligible total from it: over any window
// of sum(weights) picks each member gets exactly its share, interleaved
// (weights 3:1 give A A B A, never a burst). Ineligible members are skipped
// and their score left alone.
//
// Eligible, for a route: not drained by an operator, not passively ejected, healthy by the route's
// active check (members of a route without one share NO_CHECK, always
// healthy), not already tried by this request, and below the route's
// MaxConnections. When a tier has no eligible member but one or more were
// skipped only for MaxConnections, the request may wait for one of them
// (Limits.MaxPending): pick returns the one with the shortest queue that has
// room, and the caller sees it is at its limit and queues. Only when that is
// not possible does the next tier (then the fallbacks) get the request.
//
// pick() runs on every request: no allocation, no await; `tried` is the
// request's own list of upstreams it has attempted.

import type { RoutePlan } from '../../compiler/snapshot.ts'
import { Health, NO_CHECK } from '../../health/state.ts'
import type { CheckState } from '../../health/state.ts'
import type { Upstream } from '../upstream/registry.ts'
import type { RetryBudget } from './budget.ts'
import type { RouteMeter, Tally } from '../meter.ts'
import type { RulesRuntime } from '../rules/runtime.ts'

export class TierRuntime {
  readonly members: readonly Upstream[]
  /** Index-aligned with members: the route's check state for each (NO_CHECK without a check). */
  readonly checks: readonly CheckState[]
  readonly weights: Int32Array
  /** Running scores, kept across snapshots while the tier is unchanged. */
  readonly scores: Float64Array

  constructor(members: readonly Upstream[], checks: readonly CheckState[], weights: readonly number[]) {
    this.members = members
    this.checks = checks
    this.weights = Int32Array.from(weights)
    this.scores = new Float64Array(members.length)
  }
}

export class RouteRuntime {
  readonly id: string
  readonly plan: RoutePlan
  readonly tiers: readonly TierRuntime[]
  readonly fallbacks: readonly TierRuntime[]
  /** Every distinct upstream of the route, tiers first: the last-resort choice. */
  readonly all: readonly Upstream[]
  /** Index-aligned with all. */
  readonly allChecks: readonly CheckState[]
  /** Tier shape (priorities, keys, weights, probe) to decide whether a new snapshot changed it. */
  readonly signature: string
  /** Shared by every snapshot's runtime of this route id. */
  readonly budget: RetryBudget
  /** plan.limits, flattened for pick(). 0 = unlimited. */
  readonly maxConnections: number
  readonly maxPending: number
  /** Shared by every snapshot's runtime of this route id, like the budget. */
  readonly meter: RouteMeter
  /** Index-aligned with all: where a request that ends on that upstream is counted. */
  readonly tallies: readonly Tally[]
  /** The route rules with their state; null (most routes): none. */
  readonly rules: RulesRuntime | null
  /** plan.hsts as bytes, added to responses over TLS; null for none. */
  readonly hsts: Buffer | null
  /** The same header's value alone (HTTP/2 header blocks); '' for none. */
  readonly hstsValue: string

  constructor(plan: RoutePlan, tiers: readonly TierRuntime[], fallbacks: readonly TierRuntime[], signature: string, budget: RetryBudget, meter: RouteMeter, rules: RulesRuntime | null = null) {
    this.id = plan.id
    this.rules = rules
    this.plan = plan
    this.hsts = plan.hsts === '' ? null : Buffer.from(plan.hsts, 'latin1')
    this.hstsValue = plan.hsts === '' ? '' : plan.hsts.slice(plan.hsts.indexOf(':') + 2, -2)
    this.tiers = tiers
    this.fallbacks = fallbacks
    this.signature = signature
    this.budget = budget
    this.maxConnections = plan.limits.maxConnections
    this.maxPending = plan.limits.maxPending
    const all: Upstream[] = []
    const checks: CheckState[] = []
    for (const t of [...tiers, ...fallbacks]) {
      t.members.forEach((m, i) => {
        if (all.includes(m)) return
        all.push(m)
        checks.push(t.checks[i] ?? NO_CHECK)
      })
    }
    this.all = all
    this.allChecks = checks
    this.meter = meter
    this.tallies = meter.tallies(all.map((u) => u.key))
  }
}

/** The tally of requests that ended on `up` (null: reached no upstream). A scan of a few entries: no lookup structure. */
export function tallyOf(rt: RouteRuntime, up: Upstream | null): Tally {
  if (up !== null) {
    const all = rt.all
    for (let i = 0; i < all.length; i++) if (all[i] === up) return rt.tallies[i] as Tally
  }
  return rt.meter.none
}

/** The route's MaxConnections is reached on this upstream: the caller queues (or the pick skipped it). */
export function atLimit(rt: RouteRuntime, up: Upstream): boolean {
  return rt.maxConnections !== 0 && up.active >= rt.maxConnections
}

function pickTier(rt: RouteRuntime, t: TierRuntime, now: number, tried: readonly Upstream[]): Upstream | null {
  const members = t.members
  const checks = t.checks
  const scores = t.scores
  const weights = t.weights
  const limit = rt.maxConnections
  let best = -1
  let total = 0
  let queue = -1
  for (let i = 0; i < members.length; i++) {
    const up = members[i] as Upstream
    if (up.downUntil > now || up.drained || (checks[i] as CheckState).state !== Health.Healthy || (tried.length !== 0 && tried.includes(up))) continue
    if (limit !== 0 && up.active >= limit) {
      if (up.waiters.length < rt.maxPending && (queue < 0 || up.waiters.length < (members[queue] as Upstream).waiters.length)) queue = i
      continue
    }
    const w = weights[i] as number
    const s = (scores[i] as number) + w
    scores[i] = s
    total += w
    if (best < 0 || s > (scores[best] as number)) best = i
  }
  if (best < 0) return queue < 0 ? null : (members[queue] as Upstream)
  scores[best] = (scores[best] as number) - total
  return members[best] as Upstream
}

/** The first tier (upstreams, then fallbacks) with an eligible member picks; null when none has one. */
export function pick(rt: RouteRuntime, now: number, tried: readonly Upstream[]): Upstream | null {
  const tiers = rt.tiers
  for (let i = 0; i < tiers.length; i++) {
    const up = pickTier(rt, tiers[i] as TierRuntime, now, tried)
    if (up !== null) return up
  }
  const fb = rt.fallbacks
  for (let i = 0; i < fb.length; i++) {
    const up = pickTier(rt, fb[i] as TierRuntime, now, tried)
    if (up !== null) return up
  }
  return null
}

/**
 * When nothing is eligible only because of passive ejections: the untried
 * upstream whose ejection ends first, so that a full outage caused by our own
 * ejections is probed rather than answered 503 until the backoff runs out.
 * Never an upstream that the route's active check holds `pending` or
 * `unhealthy` (the check decides those), nor one at its MaxConnections.
 */
export function soonest(rt: RouteRuntime, tried: readonly Upstream[]): Upstream | null {
  const all = rt.all
  let best: Upstream | null = null
  for (let i = 0; i < all.length; i++) {
    const up = all[i] as Upstream
    if (up.drained || (rt.allChecks[i] as CheckState).state !== Health.Healthy || tried.includes(up) || atLimit(rt, up)) continue
    if (best === null || up.downUntil < best.downUntil) best = up
  }
  return best
}
