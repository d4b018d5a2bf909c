// Where each part of the served configuration comes from, and the rule that
// makes discovered parts read-only in the API: a write may change what the
// store holds, never what a discovery source publishes. The merge records
// every discovered part by originKey() (servers, routes, upstreams and
// fallbacks); anything it did not record is the store's.

import { canonicalServer, policyOf } from '../model/canonical.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { originKey } from './merge.ts'
import type { MemberList, Provenance } from './merge.ts'
import type { Member, Route, Server } from '../model/types.ts'
import { isServiceRef, ROUTE_DEFAULT, upstreamKey } from '../model/types.ts'

export type { MemberList, Provenance }
export { originKey }

/** What origins a served configuration carries (Served.origins). */
export interface WithOrigins {
  config: { servers: readonly Server[] }
  origins: ReadonlyMap<string, Provenance>
}

/** The origin of one part, or null when it is the store's (or not served at all). */
export function originOf(served: WithOrigins, address: string, route?: string, list?: MemberList, member?: { Target: string; Port: number }): Provenance | null {
  return served.origins.get(originKey(address, route, list, member)) ?? null
}

/** `docker "web-1"`, or `swarm` without a name. */
export function describeOrigin(p: Provenance): string {
  return p.name === null ? p.origin : `${p.origin} ${JSON.stringify(p.name)}`
}

/** `server ":80"`, `route "r" on server ":80"`, `upstream "10.0.0.2-8080" of route "default" on server ":80"`. */
export function describePart(address: string, route?: string, list?: MemberList, member?: { Target: string; Port: number }): string {
  const server = `server ${JSON.stringify(address)}`
  if (route === undefined) return server
  const r = `route ${JSON.stringify(route)} on ${server}`
  if (list === undefined || member === undefined) return r
  return `${list === 'upstreams' ? 'upstream' : 'fallback'} ${JSON.stringify(upstreamKey(member))} of ${r}`
}

/** E_READ_ONLY for a discovered part; `path` names what in the request points at it. */
export function readOnlyError(part: string, origin: Provenance, path: string): BalancerError {
  const message = `${part} is discovered (${describeOrigin(origin)}) and read-only in the API; change the labels of the container or service instead`
  return new BalancerError(ErrorCode.ReadOnly, message, [{ path, message: `discovered by ${describeOrigin(origin)}` }])
}

/**
 * Throws E_READ_ONLY, naming the first discovered part of `before` that
 * `after` changes, drops or takes over (a stored server on a discovered
 * address, a stored route with a discovered route's filter, a stored
 * upstream on a discovered one's target). Both are merges of the same
 * discovered sets with two stored configurations: before and after an edit.
 */
export function assertDiscoveredUnchanged(before: WithOrigins, after: WithOrigins): void {
  if (before.origins.size === 0) return
  const was = discoveredParts(before)
  const now = discoveredParts(after)
  for (const [key, part] of was) {
    const next = now.get(key)
    if (next !== undefined && next.origin.origin === part.origin.origin && next.origin.name === part.origin.name && next.json === part.json) continue
    throw readOnlyError(part.describe, part.origin, 'body')
  }
}

interface Part {
  origin: Provenance
  describe: string
  /** Canonical JSON of the part as served. */
  json: string
}

/**
 * Every discovered part of a served configuration, with what it holds.
 * Servers and routes are known by originKey(); a member by its server, list
 * and target, not its route: a store edit may move a discovered member
 * between routes (a stored route's filter changed, so the member no longer
 * joins it and gets a route of its own) without changing it.
 */
function discoveredParts(served: WithOrigins): Map<string, Part> {
  const out = new Map<string, Part>()
  const add = (originAt: string, key: string, describe: () => string, value: () => unknown): void => {
    const origin = served.origins.get(originAt)
    if (origin !== undefined) out.set(key, { origin, describe: describe(), json: JSON.stringify(value()) })
  }
  for (const s of served.config.servers) {
    const a = s.address
    add(
      originKey(a),
      originKey(a),
      () => describePart(a),
      () => canonicalServer(s),
    )
    for (const r of routesOf(s)) {
      add(
        originKey(a, r.name),
        originKey(a, r.name),
        () => describePart(a, r.name),
        () => canonicalRoute(r),
      )
      for (const list of ['upstreams', 'fallbacks'] as const) {
        for (const u of r[list]) {
          if (isServiceRef(u)) continue
          const member = `${a}##${list}#${u.Target.toLowerCase()}-${u.Port}`
          add(
            originKey(a, r.name, list, u),
            member,
            () => describePart(a, r.name, list, u),
            () => canonicalMember(u),
          )
        }
      }
    }
  }
  return out
}

/** The server's own route (named `default`, holding the server's policy) and its named routes. */
export function routesOf(s: Server): Route[] {
  return [{ name: ROUTE_DEFAULT, filter: s.filter, upstreams: s.upstreams, fallbacks: s.fallbacks, ...policyOf(s, 'server') }, ...s.routes]
}

/** A route in the canonical form (fields in declared order). */
export function canonicalRoute(r: Route): unknown {
  return { name: r.name, filter: r.filter, upstreams: r.upstreams.map(canonicalMember), fallbacks: r.fallbacks.map(canonicalMember), ...policyOf(r, 'route') }
}

export function canonicalMember(u: Member): Member {
  if (isServiceRef(u)) return { Service: u.Service, Registry: u.Registry, Tags: [...u.Tags], Priority: u.Priority, Weight: u.Weight, ...(u.Protocol === undefined ? {} : { Protocol: u.Protocol }) }
  return { Target: u.Target, Port: u.Port, Priority: u.Priority, Weight: u.Weight, ...(u.Protocol === undefined ? {} : { Protocol: u.Protocol }) }
}
