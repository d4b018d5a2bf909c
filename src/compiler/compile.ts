// ValidConfig -> RoutingSnapshot. Pure: no I/O, no clock, no randomness; the
// same (config, version) always gives a deep-equal snapshot. The config was
// validated by the parser (the type says so), so nothing is checked again
// here; the two guards below throw before anything is built if that ever
// stopped holding.

import { parseListenAddress } from '../model/address.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { parseDuration } from '../model/duration.ts'
import type { Filter, Member, Policy, Server, Tls, ValidConfig } from '../model/types.ts'
import { isServiceRef } from '../model/types.ts'
import { POLICY_DEFAULTS, ROUTE_DEFAULT } from '../model/types.ts'
import { hstsHeader } from '../model/hsts.ts'
import { Scheme } from './snapshot.ts'
import { rulesPlan } from './rules.ts'
import { rulesOf } from '../model/rules-of.ts'
import { upstreamRefKey } from '../model/address.ts'
import type { CertFileRef, CheckPlan, LimitsPlan, TlsPlan, ListenerPlan, PassivePlan, RetryPlan, RoutePlan, RoutingSnapshot, SchemeMask, SnapshotDiff, TargetRef, Tier } from './snapshot.ts'

type Target = { host: string; port: number; protocol?: string; tls?: boolean }
type Targets = Map<string, Target>

/** A server compiled on its own: its listen key, its plan and the targets its routes reference. */
interface ServerPart {
  key: string
  plan: ListenerPlan
  targets: ReadonlyArray<readonly [string, Target]>
}

/**
 * Servers of a ValidConfig are never mutated, and an edit keeps the servers
 * it does not change as the same objects (control/control.ts): a server
 * seen before compiles to the part it compiled to then, so a write that
 * changes one server of 1,000 compiles one. The part is a function of the
 * server alone; what it is given across servers (targets, address clashes)
 * is checked again on every compile.
 */
const parts = new WeakMap<Server, ServerPart>()

/**
 * What a compile leaves for the next one to start from (compile's `base`):
 * the servers it compiled, each listener's plan before redirects, how many
 * servers reference each target, and the TLS listeners. Handed on, not
 * copied: a compile from `base` takes it (mutates it for its own snapshot),
 * so a second compile from the same base compiles whole.
 */
interface CompileState {
  servers: readonly Server[]
  raw: Map<string, ListenerPlan>
  refs: Map<string, { t: Target; n: number }>
  secure: Set<string>
}

const states = new WeakMap<RoutingSnapshot, CompileState>()

/**
 * Compiles `cfg` as snapshot `version`. With `base` (the snapshot compiled
 * before, from which this config was edited), only the servers that are
 * not base's (by object) are compiled and looked at: the result is the same
 * snapshot a whole compile gives (listeners, targets), plus `diff`, which
 * tells the engine what to touch. A base that cannot be used (compiled
 * from already, or not made by compile) gives a whole compile.
 */
export function compile(cfg: ValidConfig, version: number, base?: RoutingSnapshot): RoutingSnapshot {
  const st = base === undefined ? undefined : states.get(base)
  if (base === undefined || st === undefined) return compileWhole(cfg, version)
  // Taken before anything is changed: a compile that throws leaves no state behind it.
  states.delete(base)
  return compileDiff(cfg, version, base, st)
}

function compileWhole(cfg: ValidConfig, version: number): RoutingSnapshot {
  const st: CompileState = { servers: cfg.servers, raw: new Map(), refs: new Map(), secure: new Set() }
  cfg.servers.forEach((server, i) => {
    const part = partOf(server, i)
    if (st.raw.has(part.key)) throw usedTwice(i, part.key)
    st.raw.set(part.key, part.plan)
    if (part.plan.tls !== null) st.secure.add(part.key)
    for (const [key, t] of part.targets) {
      const known = st.refs.get(key)
      if (known === undefined) st.refs.set(key, { t, n: 1 })
      else if (known.t.protocol !== t.protocol) throw twoProtocols(t.host, t.port, known.t.protocol, t.protocol)
      else known.n++
    }
  })
  const listeners = new Map(st.raw)
  withRedirects(listeners)
  return snapshot(version, cfg.servers, listeners, null, st)
}

/**
 * The servers base compiled and cfg does not hold are taken out, those cfg
 * holds and base did not are put in; every other listener keeps base's plan
 * (the same object), unless a TLS listener came or went (redirects to https
 * name TLS ports: then every listener's redirects are worked out again).
 */
function compileDiff(cfg: ValidConfig, version: number, base: RoutingSnapshot, st: CompileState): RoutingSnapshot {
  const before = new Set(st.servers)
  const after = new Set(cfg.servers)
  const listeners = new Map(base.listeners)
  const changed = new Set<string>()
  /** Each target touched, as base had it (null: base had none). */
  const touched = new Map<string, Target | null>()
  const touch = (key: string): void => {
    if (!touched.has(key)) touched.set(key, st.refs.get(key)?.t ?? null)
  }
  let tlsChanged = false
  for (const server of st.servers) {
    if (after.has(server)) continue
    const part = parts.get(server) as ServerPart // base compiled it
    st.raw.delete(part.key)
    listeners.delete(part.key)
    changed.add(part.key)
    if (st.secure.delete(part.key)) tlsChanged = true
    for (const [key] of part.targets) {
      touch(key)
      const r = st.refs.get(key)
      if (r !== undefined && --r.n === 0) st.refs.delete(key)
    }
  }
  const added: string[] = []
  cfg.servers.forEach((server, i) => {
    if (before.has(server)) return
    const part = partOf(server, i)
    if (st.raw.has(part.key)) throw usedTwice(i, part.key)
    st.raw.set(part.key, part.plan)
    changed.add(part.key)
    added.push(part.key)
    if (part.plan.tls !== null) {
      st.secure.add(part.key)
      tlsChanged = true
    }
    for (const [key, t] of part.targets) {
      touch(key)
      const r = st.refs.get(key)
      if (r === undefined) st.refs.set(key, { t, n: 1 })
      else if (r.t.protocol !== t.protocol) throw twoProtocols(t.host, t.port, r.t.protocol, t.protocol)
      else r.n++
    }
  })
  if (tlsChanged) {
    for (const [key, plan] of st.raw) listeners.set(key, plan)
    withRedirects(listeners)
    for (const [key, plan] of listeners) if (base.listeners.get(key) !== plan) changed.add(key)
  } else {
    const secure = [...st.secure].map((k) => st.raw.get(k) as ListenerPlan)
    for (const key of added) listeners.set(key, redirected(st.raw.get(key) as ListenerPlan, secure))
  }
  const addedTargets: Targets = new Map()
  const removedTargets: string[] = []
  for (const [key, was] of touched) {
    const now = st.refs.get(key)?.t ?? null
    if (now === null) {
      if (was !== null) removedTargets.push(key)
    } else if (was === null || was.protocol !== now.protocol || was.tls !== now.tls) addedTargets.set(key, now)
  }
  st.servers = cfg.servers
  const diff: SnapshotDiff = Object.freeze({ base, listeners: changed, addedTargets, removedTargets: Object.freeze(removedTargets) })
  return snapshot(version, cfg.servers, listeners, diff, st)
}

/**
 * The snapshot, its compile state remembered for the next compile. Its
 * `targets` map (51,000 entries at 10,000 routes) is built from the
 * servers' parts when first read: an engine applying the snapshot by
 * difference never reads it.
 */
function snapshot(version: number, servers: readonly Server[], listeners: Map<string, ListenerPlan>, diff: SnapshotDiff | null, st: CompileState): RoutingSnapshot {
  let targets: Targets | null = null
  const snap: RoutingSnapshot = Object.freeze({
    version,
    listeners,
    get targets(): Targets {
      targets ??= targetsOf(servers)
      return targets
    },
    ...(diff === null ? {} : { diff }),
  })
  states.set(snap, st)
  return snap
}

function targetsOf(servers: readonly Server[]): Targets {
  const out: Targets = new Map()
  for (const server of servers) for (const [key, t] of (parts.get(server) as ServerPart).targets) if (!out.has(key)) out.set(key, t)
  return out
}

function partOf(server: Server, i: number): ServerPart {
  let part = parts.get(server)
  if (part === undefined) {
    part = compileServer(server, i)
    parts.set(server, part)
  }
  return part
}

function usedTwice(i: number, key: string): BalancerError {
  return new BalancerError(ErrorCode.Conflict, `servers[${i}].address: ${key} is used twice`)
}

function compileServer(server: Server, i: number): ServerPart {
  const listen = parseListenAddress(server.address)
  // Unreachable for a ValidConfig; kept so a gap in the parser cannot produce a half-built snapshot.
  if ('error' in listen) throw new BalancerError(ErrorCode.Validation, `servers[${i}].address: ${listen.error}`)
  const targets: Targets = new Map()
  const plan: ListenerPlan = Object.freeze({
    listen: Object.freeze({ key: listen.key, host: listen.host, port: listen.port }),
    tls: server.tls === undefined ? null : tlsPlan(server, server.tls),
    h2c: server.tls === undefined && (server.Protocols ?? []).includes('h2c'),
    routes: Object.freeze(orderRoutes(serverRoutes(server, targets))),
  })
  return { key: listen.key, plan, targets: [...targets] }
}

function twoProtocols(host: string, port: number, a: string | undefined, b: string | undefined): BalancerError {
  return new BalancerError(ErrorCode.Validation, `upstream ${host}-${port} is given two protocols (${a ?? 'http/1.1'} and ${b ?? 'http/1.1'}): one upstream speaks one`, [
    { path: `${host}-${port}`, message: 'one upstream has one Protocol everywhere it is used' },
  ])
}

/** Sets RoutePlan.httpsPort on every route that takes https only. */
function withRedirects(listeners: Map<string, ListenerPlan>): void {
  const secure = [...listeners.values()].filter((l) => l.tls !== null)
  for (const [key, l] of listeners) listeners.set(key, redirected(l, secure))
}

/** The plan with httpsPort set on its https-only routes (itself when it has none), given every TLS listener's plan. */
function redirected(l: ListenerPlan, secure: readonly ListenerPlan[]): ListenerPlan {
  if (!l.routes.some((r) => r.schemes === Scheme.Https)) return l
  const routes = l.routes.map((r) => (r.schemes !== Scheme.Https ? r : Object.freeze({ ...r, httpsPort: httpsPortOf(r, secure) })))
  return Object.freeze({ ...l, routes: Object.freeze(routes) })
}

/** The port of a TLS server that routes the route's host (443 when one of them is on 443, or none does). */
function httpsPortOf(r: RoutePlan, secure: readonly ListenerPlan[]): number {
  const host = r.hostsExact.values().next().value ?? (r.hostSuffixes[0] !== undefined ? `x${r.hostSuffixes[0]}` : '')
  const path = r.pathPrefix === '' ? '/' : r.pathPrefix
  const ports = secure.filter((l) => routesOver(l, host, path)).map((l) => l.listen.port)
  return ports.includes(443) ? 443 : (ports[0] ?? 443)
}

/**
 * Whether some route of the listener takes `host` and `path` over https (at
 * compile time, once per redirecting route: the same rules as the engine's
 * matcher, src/engine/match.ts, which the compiler does not import).
 */
function routesOver(l: ListenerPlan, host: string, path: string): boolean {
  return l.routes.some(
    (r) =>
      (r.schemes & Scheme.Https) !== 0 &&
      (r.pathPrefix === '' || path.startsWith(r.pathPrefix)) &&
      (r.anyHost || r.hostsExact.has(host) || r.hostSuffixes.some((s) => host.length > s.length && host.endsWith(s))),
  )
}

/** The CertEntry id of a pair of certificate files (src/tls/files.ts makes the entries). */
export function certFileId(certFile: string, keyFile: string): string {
  return `file:${certFile}\u0000${keyFile}`
}

/**
 * HTTP/2 first, then HTTP/1.1, unless tls.Alpn narrows it; `acme-tls/1`
 * (RFC 8737: offered only by an ACME CA validating a tls-alpn-01
 * challenge, answered with the challenge certificate) always last. The
 * protocol handlers the engine knows are in src/engine/tls/alpn.ts.
 */
const ALPN: readonly string[] = Object.freeze(['h2', 'http/1.1', 'acme-tls/1'])

function tlsPlan(server: Server, t: Tls): TlsPlan {
  const files: CertFileRef[] = t.Certificates.map((c) => Object.freeze({ id: certFileId(c.CertFile, c.KeyFile), certFile: c.CertFile, keyFile: c.KeyFile }))
  const exact = [...server.filter.Hosts, ...server.routes.flatMap((r) => r.filter.Hosts)].find((h) => !h.startsWith('*.')) ?? t.Acme?.Hosts[0] ?? t.Labelled?.[0]?.Hosts[0]
  return Object.freeze({ files: Object.freeze(files), alpn: t.Alpn === undefined ? ALPN : Object.freeze([...t.Alpn, 'acme-tls/1']), defaultHost: exact ?? null })
}

/** The server's own filter is route `default`, then its named routes, in config order. */
function serverRoutes(server: Server, targets: Targets): RoutePlan[] {
  const own = routePlan(server.address, ROUTE_DEFAULT, server.filter, server.upstreams, server.fallbacks, server, targets)
  return [own, ...server.routes.map((r) => routePlan(server.address, r.name, r.filter, r.upstreams, r.fallbacks, { ...pickPolicy(server), ...pickPolicy(r) }, targets))]
}

/** The policy groups `p` sets itself (a route's own groups replace its server's). */
function pickPolicy(p: Policy): Policy {
  const out: Policy = {}
  if (p.health !== undefined) out.health = p.health
  if (p.passive !== undefined) out.passive = p.passive
  if (p.retry !== undefined) out.retry = p.retry
  if (p.limits !== undefined) out.limits = p.limits
  if (p.hsts !== undefined) out.hsts = p.hsts
  // Rule groups the object sets, null ("none") included.
  return { ...out, ...rulesOf(p, 'route') }
}

/** Durations were validated; a gap there must not reach the engine as NaN. */
function ms(text: string, field: string): number {
  const v = parseDuration(text)
  if (v === null) throw new BalancerError(ErrorCode.Validation, `${field}: must be a duration like 5s or 500ms, got "${text}"`)
  return v
}

/** `200-399` -> [200, 399]; `204` -> [204, 204]. */
function statusRange(text: string): readonly [number, number] {
  const m = /^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$/.exec(text)
  if (m === null) throw new BalancerError(ErrorCode.Validation, `health.Statuses: "${text}" is not a status or a range like 200-399`)
  const lo = Number(m[1])
  return Object.freeze([lo, m[2] === undefined ? lo : Number(m[2])] as const)
}

function checkPlan(p: Policy): CheckPlan | null {
  const h = p.health
  // undefined: no check; null: a route opted out of its server's check.
  if (h == null) return null
  const statuses = Object.freeze(h.Statuses.map(statusRange))
  const host = h.Host.toLowerCase()
  return Object.freeze({
    type: h.Type,
    method: h.Method,
    path: h.Path,
    host,
    statuses,
    intervalMs: ms(h.Interval, 'health.Interval'),
    timeoutMs: ms(h.Timeout, 'health.Timeout'),
    rise: h.Rise,
    fall: h.Fall,
    probe: h.Type === 'tcp' ? 'tcp' : h.Type === 'grpc' ? `grpc ${host} ${h.Path}` : `http ${h.Method} ${host} ${h.Path} ${statuses.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',')}`,
  })
}

function passivePlan(p: Policy): PassivePlan {
  const v = p.passive ?? POLICY_DEFAULTS.passive
  return Object.freeze({
    failures: v.Failures,
    ejectionMs: ms(v.Ejection, 'passive.Ejection'),
    maxEjectionMs: ms(v.MaxEjection, 'passive.MaxEjection'),
    on5xx: v.EjectOn5xx,
  })
}

function retryPlan(p: Policy): RetryPlan {
  const v = p.retry ?? POLICY_DEFAULTS.retry
  return Object.freeze({
    statuses: Object.freeze([...new Set(v.Statuses)].sort((a, b) => a - b)),
    attempts: v.Attempts,
    budgetPercent: v.Budget,
  })
}

function limitsPlan(p: Policy): LimitsPlan {
  const v = p.limits ?? POLICY_DEFAULTS.limits
  return Object.freeze({ maxConnections: v.MaxConnections, maxPending: v.MaxPending })
}

/** The plans a route gets when neither it nor its server sets a policy. */
export const DEFAULT_PLANS = Object.freeze({
  passive: passivePlan({}),
  retry: retryPlan({}),
  limits: limitsPlan({}),
  /** The check a `health` object with only defaults compiles to. */
  check: checkPlan({ health: { ...POLICY_DEFAULTS.health, Statuses: [...POLICY_DEFAULTS.health.Statuses] } }) as CheckPlan,
})

function routePlan(address: string, name: string, filter: Filter, upstreams: readonly Member[], fallbacks: readonly Member[], policy: Policy, targets: Targets): RoutePlan {
  const exact = new Set<string>()
  const suffixes: string[] = []
  for (const h of filter.Hosts) {
    const host = h.toLowerCase()
    if (host.startsWith('*.')) suffixes.push(host.slice(1))
    else exact.add(host)
  }
  // Longest first: the matcher's first hit in a route is its most specific suffix.
  suffixes.sort((a, b) => b.length - a.length)
  return Object.freeze({
    id: `${address}#${name}`,
    server: address,
    name,
    hostsExact: exact,
    hostSuffixes: Object.freeze(suffixes),
    anyHost: exact.size === 0 && suffixes.length === 0,
    schemes: schemeMask(filter.Schemes),
    pathPrefix: filter.PathPrefix,
    tiers: tiersOf(upstreams, targets),
    fallbacks: tiersOf(fallbacks, targets),
    check: checkPlan(policy),
    passive: passivePlan(policy),
    retry: retryPlan(policy),
    limits: limitsPlan(policy),
    rules: rulesPlan(policy, filter.PathPrefix),
    hsts: policy.hsts == null ? '' : hstsHeader(policy.hsts),
    httpsPort: 0,
  })
}

function schemeMask(schemes: readonly string[]): SchemeMask {
  let mask = 0
  for (const s of schemes) {
    const v = s.toLowerCase()
    if (v === 'http') mask |= Scheme.Http
    else if (v === 'https') mask |= Scheme.Https
  }
  return mask === 0 ? Scheme.Any : mask
}

/**
 * Groups by Priority ascending; members keep their config order inside a
 * tier. Service references are resolved into addresses by the merge before
 * compiling; one still here (its registry absent) has no address and no traffic.
 */
function tiersOf(list: readonly Member[], targets: Targets): readonly Tier[] {
  const byPriority = new Map<number, TargetRef[]>()
  for (const u of list) {
    if (isServiceRef(u)) continue
    const tls = u.Scheme === 'https'
    const key = upstreamRefKey(u)
    const known = targets.get(key)
    if (known === undefined) targets.set(key, Object.freeze({ host: u.Target, port: u.Port, ...(u.Protocol === undefined ? {} : { protocol: u.Protocol }), ...(tls ? { tls } : {}) }))
    else if (known.protocol !== u.Protocol) throw twoProtocols(u.Target, u.Port, known.protocol, u.Protocol)
    const ref: TargetRef = Object.freeze(tls ? { key, host: u.Target, port: u.Port, weight: u.Weight, tls } : { key, host: u.Target, port: u.Port, weight: u.Weight })
    const tier = byPriority.get(u.Priority)
    if (tier === undefined) byPriority.set(u.Priority, [ref])
    else tier.push(ref)
  }
  const priorities = [...byPriority.keys()].sort((a, b) => a - b)
  return Object.freeze(priorities.map((priority) => Object.freeze({ priority, targets: Object.freeze(byPriority.get(priority) ?? []) })))
}

/** 0: has exact hosts, 1: wildcards only, 2: any host. */
function hostClass(r: RoutePlan): number {
  return r.hostsExact.size > 0 ? 0 : r.hostSuffixes.length > 0 ? 1 : 2
}

/**
 * Match precedence (ListenerPlan.routes): exact-host routes, then wildcard
 * routes by longer suffix, then any-host routes; longer PathPrefix first in
 * each; config order otherwise (Array#sort is stable).
 */
function orderRoutes(routes: RoutePlan[]): RoutePlan[] {
  return routes.sort((a, b) => {
    const ca = hostClass(a)
    const cb = hostClass(b)
    if (ca !== cb) return ca - cb
    if (ca === 1) {
      const d = (b.hostSuffixes[0]?.length ?? 0) - (a.hostSuffixes[0]?.length ?? 0)
      if (d !== 0) return d
    }
    return b.pathPrefix.length - a.pathPrefix.length
  })
}
