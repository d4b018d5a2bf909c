// The one merge: the store's configuration plus what discovery sources
// (Docker, Swarm) currently publish -> the config the compiler gets. Pure and
// deterministic: the same inputs give the same output, byte for byte.
//
// Rules (docs/discovery.md has the operator's view):
//  - A discovered server whose address is the same listen address as an
//    existing server (the store's, or one discovered earlier) merges into it.
//    Each of its routes whose filter accepts exactly the same requests as an
//    existing route adds its upstreams and fallbacks to that route; so
//    containers that share address and filter share one upstream set. The same
//    target-port twice is kept once (the store's, or the first discovered).
//  - A discovered route with a filter no route there has becomes an extra
//    named route, `<origin>-<8 hex>` from a hash of origin and filter.
//  - A new address becomes a new server, unless it clashes with a listen
//    address already taken (same port on a wildcard, ...): then it is left
//    out and reported. Nothing discovered can make the store's config invalid.
//  - Policy groups (health, passive, retry, limits; from `balancer.health.*`
//    ... labels) belong to an upstream set. Members that set no label of a
//    group adopt the set's; the first member (in the order above) that sets a
//    group decides it, and a later member setting it differently still joins
//    but is reported. A store route's groups are the operator's: labels that
//    differ from them are reported and ignored. A discovered route on a
//    discovered server never inherits another set's groups through the
//    server: the groups it does not set are its own defaults (`health: null`).
//  - Service references (`{"Service": "web"}`, from the store or from
//    `balancer.service` labels) are merged like any member, then resolved
//    last into the service's live instances (services.ts), each shown with
//    its registry as origin.
//
//  - Trust (admission.ts): a stored server's or route's `discovery` rule can
//    refuse discovered members, and two owners (Compose projects, stacks)
//    claiming the same address and filter are not merged: the first keeps it.
//    Refused members are listed in `refused`, never merged silently.
//
// Inputs are processed by origin name, then in the order each source gives.

import { createHash } from 'node:crypto'
import type { ParsedListenAddress } from '../model/address.ts'
import { listenConflict, parseListenAddress } from '../model/address.ts'
import type { Problem } from '../model/errors.ts'
import { BalancerError } from '../model/errors.ts'
import { normalizeServer } from '../model/normalize.ts'
import { policyOf, tlsOf } from '../model/canonical.ts'
import type { PolicyGroup } from '../model/policy.ts'
import { POLICY_GROUPS, defaultsOf } from '../model/policy.ts'
import type { RuleGroup } from '../model/rules.ts'
import { RULE_GROUPS, copyRule } from '../model/rules.ts'
import type { Config, Filter, Member, Policy, Route, Server, Tls } from '../model/types.ts'
import { isServiceRef, ROUTE_DEFAULT, upstreamKey } from '../model/types.ts'
import type { RegistryView } from '../model/services.ts'
import { referencedServices, resolveServices } from '../model/services.ts'
import { filterKey } from '../model/validate.ts'
import type { Subject } from '../model/constraint.ts'
import type { Claim, DiscoveredMeta, Refused } from '../model/admission.ts'
import { firstClaim, hostsOverlap, ruleRefusal } from '../model/admission.ts'

/** What one source publishes: its whole current set. */
export interface Discovered {
  /** `docker`, `swarm`. */
  origin: string
  servers: Server[]
  /** names[i]: the container or service servers[i] comes from, for messages and the API. */
  names?: readonly string[]
  /** meta[i]: owner, creation time and what constraints see of servers[i]. Without it a server takes part in no claim. */
  meta?: ReadonlyArray<DiscoveredMeta | undefined>
}

/** Where a discovered part of the merged config came from. */
export interface Provenance {
  origin: string
  /** Container or service name; null when the source gave none. */
  name: string | null
}

export type MemberList = 'upstreams' | 'fallbacks'

export interface MergeResult {
  config: Config
  /** Discovered servers (or parts) left out, each with the container or service in the message. */
  problems: Problem[]
  /**
   * Every discovered part of `config`, by originKey(): servers and routes that
   * discovery created, and upstreams/fallbacks it added (also to store routes).
   * Anything not in here came from the store and is editable in the API.
   */
  origins: Map<string, Provenance>
  /** Discovered servers or routes refused by the store's discovery rules or by another owner's claim. */
  refused: Refused[]
  /** The services the merged config refers to, by registry name ('' = any), before resolution. */
  services: Map<string, Set<string>>
}

/**
 * `address`, `address#route`, or `address#route#upstreams#target-port`
 * (`fallbacks` likewise). The address is spelled as in the merged config; the
 * server's own route is `default`.
 */
export function originKey(address: string, route?: string, list?: MemberList, member?: { Target: string; Port: number }): string {
  if (route === undefined) return address
  if (list === undefined || member === undefined) return `${address}#${route}`
  return `${address}#${route}#${list}#${upstreamKey(member)}`
}

/** A route name valid per the model (`[a-z0-9][a-z0-9_.-]{0,62}`), stable for one origin and filter. */
export function discoveredRouteName(origin: string, filter: Filter): string {
  let slug = origin
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .slice(0, 40)
  if (!/^[a-z0-9]/.test(slug)) slug = `d${slug}`.slice(0, 40)
  const hash = createHash('sha256')
    .update(`${origin}\n${filterKey(filter)}`)
    .digest('hex')
    .slice(0, 8)
  return `${slug}-${hash}`
}

interface Who {
  origin: string
  name: string | null
  /** For Problem.path: `docker:web-1`, or `docker.servers[3]` without a name. */
  path: string
  /** For messages: `docker "web-1"`. */
  label: string
  /** null when the source gave no meta: then no claim and no constraint can admit it. */
  meta: DiscoveredMeta | null
}

/**
 * A source's set with each server parsed once, when it is published: in the
 * model's form, or the problems (naming its container or service) that keep
 * it out. The merge takes only this, so a merge (one per change of the
 * stored configuration or of any source) parses nothing again.
 */
export interface ParsedDiscovered {
  origin: string
  servers: ReadonlyArray<Server | Problem[]>
  names: readonly string[]
  meta: ReadonlyArray<DiscoveredMeta | undefined>
}

export function parseDiscovered(f: Discovered): ParsedDiscovered {
  return {
    origin: f.origin,
    servers: f.servers.map((s, i) => {
      try {
        return normalizeServer(s, 'server')
      } catch (err) {
        if (!(err instanceof BalancerError)) throw err
        const who = whoOf(f.origin, f.names?.[i] ?? null, i, null)
        return err.problems.map((p) => ({ path: who.path, message: `${who.label}: ${p.path}: ${p.message}` }))
      }
    }),
    names: f.names ?? [],
    meta: f.meta ?? [],
  }
}

function sameHosts(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((h) => b.includes(h))
}

function whoOf(origin: string, name: string | null, i: number, meta: DiscoveredMeta | null): Who {
  return {
    origin,
    name,
    path: name === null ? `${origin}.servers[${i}]` : `${origin}:${name}`,
    label: name === null ? `${origin} servers[${i}]` : `${origin} ${JSON.stringify(name)}`,
    meta,
  }
}

/**
 * base (valid) plus every parsed set. Its rules keep the result valid (the
 * golden tests check every output), so nothing is validated again here.
 * view: the registries' current instances; service references resolve
 * against it (no view: no registry is configured).
 */
export function mergeDiscovered(base: Config, found: ReadonlyArray<ParsedDiscovered>, view: RegistryView = new Map()): MergeResult {
  const m = new Merge(base.servers.map(copyServer))
  const ordered = [...found].sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0))
  const entries: Array<{ d: Server | Problem[]; who: Who }> = []
  for (const f of ordered) {
    f.servers.forEach((d, i) => entries.push({ d, who: whoOf(f.origin, f.names[i] ?? null, i, f.meta[i] ?? null) }))
  }
  // Claims are settled before anything is placed, so the order of the inputs never decides them.
  for (const { d, who } of entries) if (!Array.isArray(d)) m.claim(d, who)
  for (const { d, who } of entries) {
    if (Array.isArray(d)) m.problems.push(...d)
    else m.add(d, who)
  }
  m.isolateDiscoveredRoutes()
  return resolved({ servers: m.servers }, view, m)
}

/**
 * Resolves the service references of a merged config; every resolved member
 * is recorded with its registry. Instances come checked by their sources, and
 * one at a target-port already in the list is skipped, so the result stays valid.
 */
function resolved(config: Config, view: RegistryView, m: Merge): MergeResult {
  const services = referencedServices(config)
  if (services.size === 0) return { config, problems: m.problems, origins: m.origins, refused: m.refused, services }
  const r = resolveServices(config, view)
  for (const x of r.members) m.origins.set(originKey(x.address, x.route, x.list, x.member), { origin: x.registry, name: x.name })
  return { config: r.config, problems: [...m.problems, ...r.problems], origins: m.origins, refused: m.refused, services }
}

class Merge {
  readonly servers: Server[]
  readonly problems: Problem[] = []
  readonly origins = new Map<string, Provenance>()
  readonly refused: Refused[] = []
  /** `listenKey|filterKey` -> the first owner claiming it. */
  readonly #claims = new Map<string, Claim>()
  readonly #listen: ParsedListenAddress[] = []
  /** Discovered routes (originKey(address, route)) -> which member decided each policy group. */
  readonly #decided = new Map<string, Map<Group, Who>>()

  constructor(servers: Server[]) {
    this.servers = servers
    for (const s of servers) {
      const p = parseListenAddress(s.address)
      // The base config is valid, so every address parses.
      this.#listen.push('error' in p ? { host: '', port: 0, key: `invalid:${s.address}` } : p)
    }
  }

  /** Records d's claims on its address and filters (admission.ts: the first owner keeps them). */
  claim(d: Server, who: Who): void {
    if (who.meta === null) return
    const listen = parseListenAddress(d.address)
    if ('error' in listen) return
    for (const r of routesOf(d)) firstClaim(this.#claims, claimKey(listen.key, r.filter), { owner: who.meta.owner, created: who.meta.created })
  }

  add(d: Server, who: Who): void {
    const listen = parseListenAddress(d.address)
    if ('error' in listen) return this.#problem(who, listen.error)
    const same = this.#listen.findIndex((l) => l.key === listen.key)
    const into = same === -1 ? undefined : this.servers[same]
    if (into !== undefined) return this.#mergeInto(into, listen.key, d, who)
    const clash = this.#listen.findIndex((l) => listenConflict(l, listen))
    if (clash !== -1) {
      const other = this.servers[clash]?.address ?? ''
      return this.#problem(who, `listen address ${JSON.stringify(d.address)} clashes with server ${JSON.stringify(other)} (port ${listen.port} on overlapping interfaces); left out`)
    }
    for (const r of routesOf(d)) {
      const taken = this.#claimRefusal(listen.key, d.address, r.filter, who)
      if (taken !== null) return this.#refuse(who, taken)
    }
    // A copy: the parsed fragment is merged again at every change, and joining servers add to this one.
    const placed = copyServer(d)
    this.#joinTls(placed, d, who, true)
    this.servers.push(placed)
    this.#listen.push(listen)
    const own: Provenance = { origin: who.origin, name: who.name }
    this.origins.set(originKey(d.address), own)
    for (const r of routesOf(d)) {
      this.origins.set(originKey(d.address, r.name), own)
      this.#decided.set(originKey(d.address, r.name), new Map(setGroups(r).map((g) => [g, who])))
      this.#markMembers(d.address, r.name, 'upstreams', r.upstreams, own)
      this.#markMembers(d.address, r.name, 'fallbacks', r.fallbacks, own)
    }
  }

  #mergeInto(into: Server, listenKey: string, d: Server, who: Who): void {
    const own: Provenance = { origin: who.origin, name: who.name }
    this.#joinTls(into, d, who)
    const storeServer = !this.origins.has(originKey(into.address))
    for (const dr of routesOf(d)) {
      const key = filterKey(dr.filter)
      const hit = routesOf(into).find((r) => filterKey(r.filter) === key)
      if (hit !== undefined) {
        // A stored route's rule first; a constraint there admits every owner it matches.
        let vouched = false
        if (!this.origins.has(originKey(into.address, hit.name))) {
          const rule = hit.name === ROUTE_DEFAULT ? into.discovery : (hit.discovery ?? into.discovery)
          const why = ruleRefusal(rule, `route ${JSON.stringify(hit.name)} of server ${JSON.stringify(into.address)}`, subjectOf(who))
          if (why !== null) {
            this.#refuse(who, why)
            continue
          }
          vouched = typeof rule === 'object'
        }
        const taken = vouched ? null : this.#claimRefusal(listenKey, into.address, dr.filter, who)
        if (taken !== null) {
          this.#refuse(who, taken)
          continue
        }
        this.#joinPolicy(into, hit, dr, who)
        this.#addMembers(into.address, hit.name, 'upstreams', hit.upstreams, dr.upstreams, own)
        this.#addMembers(into.address, hit.name, 'fallbacks', hit.fallbacks, dr.fallbacks, own)
        continue
      }
      const why =
        (storeServer ? ruleRefusal(into.discovery, `server ${JSON.stringify(into.address)}`, subjectOf(who)) : null) ??
        this.#deniedOverlap(into, dr, who) ??
        this.#claimRefusal(listenKey, into.address, dr.filter, who)
      if (why !== null) {
        this.#refuse(who, why)
        continue
      }
      const name = this.#freeName(into, discoveredRouteName(who.origin, dr.filter))
      const route: Route = { name, filter: dr.filter, upstreams: [], fallbacks: [], ...policyOf(dr, 'route') }
      into.routes.push(route)
      this.origins.set(originKey(into.address, name), own)
      this.#decided.set(originKey(into.address, name), new Map(setGroups(dr).map((g) => [g, who])))
      this.#addMembers(into.address, name, 'upstreams', route.upstreams, dr.upstreams, own)
      this.#addMembers(into.address, name, 'fallbacks', route.fallbacks, dr.fallbacks, own)
    }
  }

  /**
   * A discovered server that asks for TLS (balancer.tls=true) placed at, or
   * joining, an address: its ACME hosts become a certificate of their own
   * (tls.Labelled; a container or service coming or going never re-orders
   * the others'); an address served as plain HTTP stays so, reported.
   * `placed`: `into` is d's own copy (the first at its address), whose
   * Acme is d's and moves to Labelled.
   */
  #joinTls(into: Server, d: Server, who: Who, placed = false): void {
    if (d.tls === undefined) return
    if (into.tls === undefined) {
      this.#problem(who, `asks for TLS on ${JSON.stringify(into.address)}, which is served as plain HTTP; its routes join it as plain HTTP`)
      return
    }
    const want = d.tls.Acme
    const { Acme: own, Labelled: before, ...rest } = into.tls
    // A new group object: the server may still share its tls with the stored configuration.
    const next: Tls = { ...rest, ...(own === undefined || placed ? {} : { Acme: own }) }
    const labelled = [...(before ?? [])]
    if (want !== undefined && !labelled.some((a) => sameHosts(a.Hosts, want.Hosts))) labelled.push({ Hosts: [...want.Hosts], Email: want.Email, Challenge: want.Challenge })
    if (labelled.length > 0) next.Labelled = labelled
    into.tls = next
  }

  /** The policy groups `dr` sets, checked against (or adopted by) the set it joins. */
  #joinPolicy(into: Server, hit: Route, dr: Route, who: Who): void {
    const decided = this.#decided.get(originKey(into.address, hit.name))
    for (const g of setGroups(dr)) {
      const want = groupText(dr, g)
      if (decided === undefined) {
        if (want !== groupText(hit, g)) {
          this.#problem(who, `its balancer.${g}.* labels are ignored: route ${JSON.stringify(hit.name)} of server ${JSON.stringify(into.address)} is in the store, whose ${g} settings apply`)
        }
        continue
      }
      const first = decided.get(g)
      if (first === undefined) {
        decided.set(g, who)
        setGroup(hit.name === ROUTE_DEFAULT ? into : hit, g, dr)
      } else if (want !== groupText(hit, g)) {
        this.#problem(who, `its balancer.${g}.* labels differ from those of ${first.label}, which shares its address and filter; those of ${first.label} apply`)
      }
    }
  }

  /**
   * A discovered route on a discovered server gets its defaults for each
   * group it does not set, so it never inherits another set's labels through
   * the server. Runs once, after every add, when the server's groups are final.
   */
  isolateDiscoveredRoutes(): void {
    for (const s of this.servers) {
      if (!this.origins.has(originKey(s.address))) continue
      for (const r of s.routes) {
        for (const g of GROUPS) {
          if (s[g] == null || r[g] !== undefined) continue
          if (g === 'health' || isRule(g)) setGroup(r, g, {})
          else setGroup(r, g, { [g]: defaultsOf(g) } as Policy)
        }
      }
    }
  }

  /** A store route could carry the generated name by chance: then `-2`, `-3`, ... */
  #freeName(server: Server, want: string): string {
    const taken = new Set(server.routes.map((r) => r.name))
    if (!taken.has(want)) return want
    for (let n = 2; ; n++) if (!taken.has(`${want}-${n}`)) return `${want}-${n}`
  }

  #addMembers(address: string, route: string, list: MemberList, into: Member[], add: readonly Member[], own: Provenance): void {
    for (const u of add) {
      const id = memberId(u)
      if (into.some((x) => memberId(x) === id)) continue
      const copy = copyUpstream(u)
      into.push(copy)
      // A reference's origin is recorded on the instances it resolves to.
      if (!isServiceRef(copy)) this.origins.set(originKey(address, route, list, copy), own)
    }
  }

  #markMembers(address: string, route: string, list: MemberList, members: readonly Member[], own: Provenance): void {
    for (const u of members) if (!isServiceRef(u)) this.origins.set(originKey(address, route, list, u), own)
  }

  /** A stored route of `into` that does not admit `who` and whose hosts overlap dr's: dr would take part of its traffic. */
  #deniedOverlap(into: Server, dr: Route, who: Who): string | null {
    for (const r of routesOf(into)) {
      if (this.origins.has(originKey(into.address, r.name))) continue
      const rule = r.name === ROUTE_DEFAULT ? into.discovery : (r.discovery ?? into.discovery)
      const why = ruleRefusal(rule, `route ${JSON.stringify(r.name)} of server ${JSON.stringify(into.address)}`, subjectOf(who))
      if (why !== null && hostsOverlap(r.filter.Hosts, dr.filter.Hosts)) return `its hosts overlap those of a route that does not admit it: ${why}`
    }
    return null
  }

  /** null when who's owner holds the claim on this address and filter (or takes part in no claim). */
  #claimRefusal(listenKey: string, address: string, filter: Filter, who: Who): string | null {
    if (who.meta === null) return null
    const first = this.#claims.get(claimKey(listenKey, filter))
    if (first === undefined || first.owner === who.meta.owner) return null
    const hosts = filter.Hosts.length === 0 ? 'every host' : filter.Hosts.join(',')
    const since = first.created === '' ? '' : ` since ${first.created}`
    return `${address} ${hosts}${filter.PathPrefix === '' ? '' : ` ${filter.PathPrefix}`} is claimed by ${first.owner}${since}; ${who.meta.owner} may not join it (give it another host or path, or let a stored route admit both with a discovery constraint)`
  }

  #refuse(who: Who, reason: string): void {
    this.refused.push({ origin: who.origin, name: who.name ?? who.path, reason })
  }

  #problem(who: Who, message: string): void {
    this.problems.push({ path: who.path, message: `${who.label}: ${message}` })
  }
}

/** The server's own route (named `default`) and its named routes, as live views. */
function routesOf(s: Server): Route[] {
  const own: Route = { name: ROUTE_DEFAULT, filter: s.filter, upstreams: s.upstreams, fallbacks: s.fallbacks, ...policyOf(s, 'server') }
  return [own, ...s.routes]
}

function claimKey(listenKey: string, f: Filter): string {
  return `${listenKey}|${filterKey(f)}`
}

function subjectOf(who: Who): Subject | null {
  return who.meta?.subject ?? null
}

/** Policy and rule groups: both belong to an upstream set and merge the same way. */
type Group = PolicyGroup | RuleGroup
const GROUPS: readonly Group[] = [...POLICY_GROUPS, ...RULE_GROUPS]

function isRule(g: Group): g is RuleGroup {
  return (RULE_GROUPS as readonly string[]).includes(g)
}

function setGroups(p: Policy): Group[] {
  return GROUPS.filter((g) => p[g] != null)
}

function groupText(p: Policy, g: Group): string {
  return JSON.stringify(policyOf(p, 'route')[g] ?? null)
}

/** Copies group g of `from` onto `to` (a server for a default route, else the route). */
function setGroup(to: Policy, g: Group, from: Policy): void {
  if (isRule(g)) return copyRule(to, from, g)
  const v = policyOf(from, 'route')
  if (g === 'health') to.health = v.health ?? null
  else if (g === 'passive' && v.passive !== undefined) to.passive = v.passive
  else if (g === 'retry' && v.retry !== undefined) to.retry = v.retry
  else if (g === 'limits' && v.limits !== undefined) to.limits = v.limits
}

function memberId(u: Member): string {
  if (isServiceRef(u)) return `service:${u.Registry}/${u.Service}/${[...u.Tags].sort().join(',')}`
  return `${u.Target.toLowerCase()}-${u.Port}`
}

function copyUpstream(u: Member): Member {
  if (isServiceRef(u)) return { Service: u.Service, Registry: u.Registry, Tags: [...u.Tags], Priority: u.Priority, Weight: u.Weight, ...(u.Protocol === undefined ? {} : { Protocol: u.Protocol }) }
  return {
    Target: u.Target,
    Port: u.Port,
    Priority: u.Priority,
    Weight: u.Weight,
    ...(u.Protocol === undefined ? {} : { Protocol: u.Protocol }),
    ...(u.Scheme === 'https' ? { Scheme: 'https' as const } : {}),
  }
}

function copyFilter(f: Filter): Filter {
  return { Hosts: [...f.Hosts], Schemes: [...f.Schemes], PathPrefix: f.PathPrefix }
}

function copyServer(s: Server): Server {
  return {
    address: s.address,
    ...(s.tls === undefined ? {} : { tls: tlsOf(s.tls) }),
    ...(s.Protocols === undefined ? {} : { Protocols: [...s.Protocols] }),
    filter: copyFilter(s.filter),
    upstreams: s.upstreams.map(copyUpstream),
    fallbacks: s.fallbacks.map(copyUpstream),
    ...policyOf(s, 'server'),
    routes: s.routes.map((r) => ({ name: r.name, filter: copyFilter(r.filter), upstreams: r.upstreams.map(copyUpstream), fallbacks: r.fallbacks.map(copyUpstream), ...policyOf(r, 'route') })),
  }
}
