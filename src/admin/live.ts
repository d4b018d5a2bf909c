// Live upstream state next to the configuration. The engine reports one
// UpstreamStats per target (`target:port`, lower-cased, IPv6 in brackets:
// upstreamRefKey in model/address.ts, `https://` first for Scheme https) through the PlaneView the composition root hands
// the API. The API shows it keyed the way its URLs name members
// (`target-port`), in a read-only `status` object beside the configuration,
// never inside it: a client that PUTs back what it GETs sends `status` along,
// and the API ignores it (body.ts).

import { upstreamRefKey } from '../model/address.ts'
import type { PlaneView, UpstreamStats } from '../control/plane-view.ts'
import type { UpstreamState } from '../control/plane-view.ts'
import type { Member, Route, Server } from '../model/types.ts'
import { isServiceRef } from '../model/types.ts'
import { upstreamKey } from '../model/types.ts'

/** One upstream's live state as the API shows it; times are ISO 8601. */
export interface UpstreamStatus {
  /** The engine's state, or `unknown` when the engine has no entry (the configuration holding it is not applied). */
  state: UpstreamState | 'unknown'
  ejectedUntil: string | null
  checks: Array<{ probe: string; state: string; lastResult: string | null; lastAt: string | null; streak: number }>
  active: number
  idle: number
  pending: number
  requests: number
  failures: number
  consecutiveFailures: number
  retries: number
  ejections: number
}

export interface MembersStatus {
  upstreams: Record<string, UpstreamStatus>
  fallbacks: Record<string, UpstreamStatus>
}

/** The engine's upstreams by key; null when the API runs without an engine. */
export function liveUpstreams(plane: PlaneView | null): ReadonlyMap<string, UpstreamStats> | null {
  if (plane === null) return null
  return new Map(plane.engine().upstreams.map((u) => [u.key, u]))
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString()
}

export function upstreamStatus(u: UpstreamStats | undefined): UpstreamStatus {
  if (u === undefined) {
    return { state: 'unknown', ejectedUntil: null, checks: [], active: 0, idle: 0, pending: 0, requests: 0, failures: 0, consecutiveFailures: 0, retries: 0, ejections: 0 }
  }
  return {
    state: u.state,
    ejectedUntil: iso(u.ejectedUntil),
    checks: u.checks.map((c) => ({ probe: c.probe, state: c.state, lastResult: c.lastResult, lastAt: iso(c.lastAt), streak: c.streak })),
    active: u.active,
    idle: u.idle,
    pending: u.pending,
    requests: u.requests,
    failures: u.failures,
    consecutiveFailures: u.consecutiveFailures,
    retries: u.retries,
    ejections: u.ejections,
  }
}

/** The state of every upstream and fallback of the given routes, keyed `target-port`. */
export function membersStatus(routes: readonly Route[], live: ReadonlyMap<string, UpstreamStats>): MembersStatus {
  const out: MembersStatus = { upstreams: {}, fallbacks: {} }
  const add = (into: Record<string, UpstreamStatus>, list: readonly Member[]): void => {
    for (const u of list) if (!isServiceRef(u)) into[upstreamKey(u)] = upstreamStatus(live.get(upstreamRefKey(u)))
  }
  for (const r of routes) {
    add(out.upstreams, r.upstreams)
    add(out.fallbacks, r.fallbacks)
  }
  return out
}

/** Every route of a server, its own first. */
export function serverRoutesOf(s: Server): Route[] {
  return [{ name: 'default', filter: s.filter, upstreams: s.upstreams, fallbacks: s.fallbacks }, ...s.routes]
}

/** GET /status: every upstream the engine knows, keyed `target-port` like the API's URLs. */
export function allUpstreamsStatus(live: ReadonlyMap<string, UpstreamStats>): Record<string, UpstreamStatus> {
  const out: Record<string, UpstreamStatus> = {}
  const sorted = [...live.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  for (const u of sorted) out[upstreamKey({ Target: u.host, Port: u.port })] = upstreamStatus(u)
  return out
}
