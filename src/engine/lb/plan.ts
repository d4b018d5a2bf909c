// The engine's runtime view of a ListenerPlan: each route with its balancing
// state and live Upstream records. Built on apply(), never per request. A
// route keeps its RouteRuntime (and so its round-robin position) across
// snapshots while its tiers are unchanged; any change to them starts afresh.

import type { ListenerPlan, RoutePlan, Tier } from '../../compiler/snapshot.ts'
import type { Registry, Upstream } from '../upstream/registry.ts'
import { RouteRuntime, TierRuntime } from './pick.ts'

export interface ListenerRuntime {
  readonly plan: ListenerPlan
  /** Index-aligned with plan.routes. */
  readonly routes: readonly RouteRuntime[]
  /** No route has a PathPrefix: the request path string is not needed to match. */
  readonly anyPath: boolean
}

function signature(r: RoutePlan): string {
  const part = (tiers: readonly Tier[]): string =>
    tiers.map((t) => `${t.priority}:${t.targets.map((x) => `${x.key}*${x.weight}`).join(',')}`).join('|')
  return `${part(r.tiers)}/${part(r.fallbacks)}`
}

function tiersOf(tiers: readonly Tier[], registry: Registry): TierRuntime[] {
  return tiers.map((t) => {
    const members = t.targets.map((x) => {
      const up = registry.get(x.key)
      if (up === undefined) throw new Error(`engine: target ${x.key} missing from the snapshot's targets`)
      return up
    })
    return new TierRuntime(members, t.targets.map((x) => x.weight))
  })
}

function sameRecords(rt: RouteRuntime, registry: Registry): boolean {
  return rt.all.every((up: Upstream) => registry.get(up.key) === up)
}

/**
 * Builds the runtime for every listener of a snapshot. `known` holds the
 * previous RouteRuntimes by route id and is replaced by the new set.
 */
export function buildRuntimes(
  listeners: ReadonlyMap<string, ListenerPlan>,
  registry: Registry,
  known: Map<string, RouteRuntime>,
): Map<string, ListenerRuntime> {
  const next = new Map<string, RouteRuntime>()
  const out = new Map<string, ListenerRuntime>()
  for (const [key, plan] of listeners) {
    const routes = plan.routes.map((r) => {
      const sig = signature(r)
      const prev = known.get(r.id)
      const rt =
        prev !== undefined && prev.signature === sig && sameRecords(prev, registry)
          ? prev
          : new RouteRuntime(r.id, tiersOf(r.tiers, registry), tiersOf(r.fallbacks, registry), sig)
      next.set(r.id, rt)
      return rt
    })
    out.set(key, { plan, routes, anyPath: plan.routes.every((r) => r.pathPrefix === '') })
  }
  known.clear()
  for (const [id, rt] of next) known.set(id, rt)
  return out
}
