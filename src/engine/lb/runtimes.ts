// The engine's runtime view of a ListenerPlan: each route with its balancing
// state, live Upstream records and, per member, the route's active check
// state. Built on apply(), never per request. A new RouteRuntime is made for
// every applied snapshot (it carries that snapshot's plan), but it shares the
// previous one's TierRuntimes (round-robin positions) while the tiers and the
// probe are unchanged, and always its retry budget and traffic meter.

import type { ListenerPlan, RoutePlan, Tier } from '../../compiler/snapshot.ts'
import { NO_CHECK } from '../../health/state.ts'
import type { CheckState } from '../../health/state.ts'
import type { Registry, Upstream } from '../upstream/registry.ts'
import { RetryBudget } from './budget.ts'
import { RouteMeter } from '../meter.ts'
import { RouteRuntime, TierRuntime } from './pick.ts'
import { rulesRuntime } from '../rules/runtime.ts'

export interface ListenerRuntime {
  readonly plan: ListenerPlan
  /** Index-aligned with plan.routes. */
  readonly routes: readonly RouteRuntime[]
  /** No route has a PathPrefix: the request path string is not needed to match. */
  readonly anyPath: boolean
}

/** The check state of a (target key, probe) pair; undefined when no check runs for it. */
export type CheckLookup = (key: string, probe: string) => CheckState | undefined

function signature(r: RoutePlan): string {
  const part = (tiers: readonly Tier[]): string => tiers.map((t) => `${t.priority}:${t.targets.map((x) => `${x.key}*${x.weight}`).join(',')}`).join('|')
  return `${part(r.tiers)}/${part(r.fallbacks)}/${r.check === null ? '' : r.check.probe}`
}

function tiersOf(r: RoutePlan, tiers: readonly Tier[], registry: Registry, checks: CheckLookup): TierRuntime[] {
  const probe = r.check === null ? null : r.check.probe
  return tiers.map((t) => {
    const members = t.targets.map((x) => {
      const up = registry.get(x.key)
      if (up === undefined) throw new Error(`engine: target ${x.key} missing from the snapshot's targets`)
      return up
    })
    const states = t.targets.map((x) => {
      if (probe === null) return NO_CHECK
      const cs = checks(x.key, probe)
      if (cs === undefined) throw new Error(`engine: no check runs for ${x.key} (${probe})`)
      return cs
    })
    return new TierRuntime(
      members,
      states,
      t.targets.map((x) => x.weight),
    )
  })
}

function sameRecords(rt: RouteRuntime, registry: Registry, checks: CheckLookup): boolean {
  const probe = rt.plan.check === null ? null : rt.plan.check.probe
  return rt.all.every((up: Upstream, i) => {
    if (registry.get(up.key) !== up) return false
    return probe === null || checks(up.key, probe) === rt.allChecks[i]
  })
}

/**
 * Builds the runtime of each listener given (every listener of a snapshot,
 * or those a SnapshotDiff names). `known` holds the RouteRuntimes serving
 * now by route id (read, not changed); `next` gets the runtime of every
 * route of the listeners given.
 */
export function buildRuntimes(
  listeners: ReadonlyMap<string, ListenerPlan>,
  registry: Registry,
  checks: CheckLookup,
  known: ReadonlyMap<string, RouteRuntime>,
  next: Map<string, RouteRuntime>,
): Map<string, ListenerRuntime> {
  const out = new Map<string, ListenerRuntime>()
  for (const [key, plan] of listeners) {
    const routes = plan.routes.map((r) => {
      const prev = known.get(r.id)
      // The compiler hands an unchanged server's plans over as the same objects: keep their runtime as it is.
      if (prev !== undefined && prev.plan === r && sameRecords(prev, registry, checks)) {
        next.set(r.id, prev)
        return prev
      }
      const sig = signature(r)
      const budget = prev?.budget ?? new RetryBudget()
      const meter = prev?.meter ?? new RouteMeter()
      const keep = prev !== undefined && prev.signature === sig && sameRecords(prev, registry, checks)
      const rules = rulesRuntime(r.rules, prev?.rules ?? null)
      const rt = keep
        ? new RouteRuntime(r, prev.tiers, prev.fallbacks, sig, budget, meter, rules)
        : new RouteRuntime(r, tiersOf(r, r.tiers, registry, checks), tiersOf(r, r.fallbacks, registry, checks), sig, budget, meter, rules)
      next.set(r.id, rt)
      return rt
    })
    out.set(key, { plan, routes, anyPath: plan.routes.every((r) => r.pathPrefix === '') })
  }
  return out
}
