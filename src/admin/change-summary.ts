// A short account of what one write changed, for the write's log line:
// `server :8080 created`, `upstream 10.0.0.5-80 of :8080/default updated`,
// `filter of :8080/shop updated`. Pure: computed from the configuration
// before and after the write, so every route handler (and any added later)
// is described the same way without saying what it does.

import { policyOf } from '../model/canonical.ts'
import { POLICY_GROUPS } from '../model/policy.ts'
import { RULE_GROUPS } from '../model/rules.ts'
import type { Config, Member, Route, Server } from '../model/types.ts'
import { isServiceRef, ROUTE_DEFAULT, upstreamKey } from '../model/types.ts'

/** At most this many entries; the rest are counted (`and 12 more changes`). */
const MAX_ENTRIES = 20

export function summarizeChange(before: Config, after: Config): string[] {
  const out: string[] = []
  const old = new Map(before.servers.map((s) => [s.address, s]))
  const now = new Map(after.servers.map((s) => [s.address, s]))
  for (const [address] of old) if (!now.has(address)) out.push(`server ${address} deleted`)
  for (const [address, s] of now) {
    const was = old.get(address)
    if (was === undefined) out.push(`server ${address} created`)
    // An edit keeps the servers it does not change as the same objects: no need to compare them.
    else if (was !== s && JSON.stringify(was) !== JSON.stringify(s)) serverChanges(was, s, out)
  }
  if (out.length > MAX_ENTRIES) return [...out.slice(0, MAX_ENTRIES), `and ${out.length - MAX_ENTRIES} more changes`]
  return out.length === 0 ? ['no change'] : out
}

function serverChanges(was: Server, s: Server, out: string[]): void {
  const oldRoutes = new Map(routesOf(was).map((r) => [r.name, r]))
  const newRoutes = new Map(routesOf(s).map((r) => [r.name, r]))
  for (const [name] of oldRoutes) if (!newRoutes.has(name)) out.push(`route ${s.address}/${name} deleted`)
  for (const [name, r] of newRoutes) {
    const o = oldRoutes.get(name)
    if (o === undefined) out.push(`route ${s.address}/${name} created`)
    else routeChanges(`${s.address}/${name}`, o, r, out)
  }
}

function routeChanges(where: string, o: Route, r: Route, out: string[]): void {
  if (JSON.stringify(o.filter) !== JSON.stringify(r.filter)) out.push(`filter of ${where} updated`)
  memberChanges('upstream', where, o.upstreams, r.upstreams, out)
  memberChanges('fallback', where, o.fallbacks, r.fallbacks, out)
  const op = policyOf(o, 'route')
  const rp = policyOf(r, 'route')
  for (const g of [...POLICY_GROUPS, ...RULE_GROUPS]) {
    const a = JSON.stringify(op[g])
    const b = JSON.stringify(rp[g])
    if (a === b) continue
    out.push(`${g} of ${where} ${a === undefined ? 'set' : b === undefined ? 'removed' : 'updated'}`)
  }
  // Fields this module does not know by name (added later) still show up.
  if (otherFields(o) !== otherFields(r)) out.push(`settings of ${where} updated`)
}

function memberChanges(kind: string, where: string, before: readonly Member[], after: readonly Member[], out: string[]): void {
  const key = (u: Member): string => memberName(u).toLowerCase()
  const old = new Map(before.map((u) => [key(u), u]))
  const now = new Map(after.map((u) => [key(u), u]))
  for (const [k, u] of old) if (!now.has(k)) out.push(`${kind} ${memberName(u)} of ${where} deleted`)
  for (const [k, u] of now) {
    const o = old.get(k)
    if (o === undefined) out.push(`${kind} ${memberName(u)} of ${where} created`)
    else if (JSON.stringify(o) !== JSON.stringify(u)) out.push(`${kind} ${memberName(u)} of ${where} updated`)
  }
}

/** `10.0.0.5-80`, or `service consul/web[v2]` for a service reference. */
function memberName(u: Member): string {
  if (!isServiceRef(u)) return upstreamKey(u)
  return `service ${u.Registry === '' ? '' : `${u.Registry}/`}${u.Service}${u.Tags.length === 0 ? '' : `[${u.Tags.join(',')}]`}`
}

const NAMED: ReadonlySet<string> = new Set(['name', 'filter', 'upstreams', 'fallbacks', ...POLICY_GROUPS, ...RULE_GROUPS])

function otherFields(r: Route): string {
  return JSON.stringify(
    Object.entries(r)
      .filter(([k]) => !NAMED.has(k))
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  )
}

/** The server's own route (`default`, carrying the server's policy) and its named routes. */
function routesOf(s: Server): Route[] {
  const { address: _a, routes, ...own } = s
  return [{ ...own, name: ROUTE_DEFAULT }, ...routes]
}
