// Hand-built RoutingSnapshots for engine tests. compile() rejects port 0, and
// engine tests must listen on port 0, so this builds exactly what
// src/compiler/snapshot.ts describes (route order, tiers, TargetRef keys)
// without going through the config model.

import { Scheme } from '../../src/compiler/snapshot.ts'
import type { CheckPlan, LimitsPlan, ListenerPlan, PassivePlan, RetryPlan, RoutePlan, RoutingSnapshot, RulesPlan, SchemeMask, TargetRef, Tier } from '../../src/compiler/snapshot.ts'
import { DEFAULT_PLANS, certFileId } from '../../src/compiler/compile.ts'

export interface TargetSpec {
  host: string
  port: number
  /** `h2c`: an HTTP/2 upstream; `h2`: one over TLS (set `tls` too). */
  protocol?: 'h2c' | 'h2'
  /** The balancer speaks TLS to it. */
  tls?: boolean
  weight?: number
  priority?: number
}

export interface RouteSpec {
  name?: string
  /** Exact names or `*.domain` wildcards; empty or missing = any host. */
  hosts?: string[]
  pathPrefix?: string
  schemes?: Array<'http' | 'https'>
  upstreams: TargetSpec[]
  fallbacks?: TargetSpec[]
  /** Active check; fields not given take the defaults. Missing = no active check. */
  check?: Partial<CheckPlan>
  passive?: Partial<PassivePlan>
  retry?: Partial<RetryPlan>
  limits?: Partial<LimitsPlan>
  /** Compiled route rules (compiler/rules.ts rulesPlan); absent: none. */
  rules?: RulesPlan | null
  /** The Strict-Transport-Security line (RoutePlan.hsts). */
  hsts?: string
  /** RoutePlan.httpsPort: plain requests get a 308 to https on this port. */
  httpsPort?: number
}

export interface ListenerSpec {
  /** Loopback address to bind; port 0 unless given. Default 127.0.0.1. */
  host?: string
  port?: number
  /** TLS with these certificate files (their CertEntry ids: certFileId); absent: plain HTTP. */
  tls?: Array<{ certFile: string; keyFile: string }>
  /** The ALPN offer of a TLS listener; default h2 then http/1.1. */
  alpn?: string[]
  /** A plain listener also takes h2c with prior knowledge. */
  h2c?: boolean
  routes: RouteSpec[]
}

/** The listen key the builder gives a listener: `host:port` as asked (port 0 stays 0). */
export function listenKey(host = '127.0.0.1', port = 0): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

export const MAIN_KEY = listenKey()

/** One listener on 127.0.0.1:0 with the given routes. */
export function snapshotFor(spec: { routes: RouteSpec[] }, version: number): RoutingSnapshot {
  return snapshotWith([{ routes: spec.routes }], version)
}

/** Several listeners; each needs a distinct host:port key (use 127.0.0.2, 127.0.0.3, ... for more port-0 listeners). */
export function snapshotWith(listeners: ListenerSpec[], version: number): RoutingSnapshot {
  const targets = new Map<string, { host: string; port: number; protocol?: string; tls?: boolean }>()
  const plans = new Map<string, ListenerPlan>()
  for (const l of listeners) {
    const host = l.host ?? '127.0.0.1'
    const port = l.port ?? 0
    const key = listenKey(host, port)
    if (plans.has(key)) throw new Error(`snapshot builder: listener ${key} given twice`)
    const routes = l.routes.map((r, i) => routePlan(key, r, i, targets))
    const tls =
      l.tls === undefined
        ? null
        : Object.freeze({
            files: Object.freeze(l.tls.map((f) => Object.freeze({ id: certFileId(f.certFile, f.keyFile), ...f }))),
            alpn: Object.freeze(l.alpn ?? ['h2', 'http/1.1', 'acme-tls/1']),
            defaultHost: null,
          })
    plans.set(key, Object.freeze({ listen: Object.freeze({ key, host, port }), tls, h2c: l.h2c === true, routes: Object.freeze(orderRoutes(routes)) }))
  }
  return Object.freeze({ version, listeners: plans, targets })
}

export function targetKey(host: string, port: number): string {
  const h = host.toLowerCase()
  return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`
}

function routePlan(server: string, r: RouteSpec, i: number, targets: Map<string, { host: string; port: number; protocol?: string; tls?: boolean }>): RoutePlan {
  const name = r.name ?? (i === 0 ? 'default' : `r${i}`)
  const exact = new Set<string>()
  const suffixes: string[] = []
  for (const h of r.hosts ?? []) {
    const host = h.toLowerCase()
    if (host.startsWith('*.')) suffixes.push(host.slice(1))
    else exact.add(host)
  }
  suffixes.sort((a, b) => b.length - a.length)
  return Object.freeze({
    id: `${server}#${name}`,
    server,
    name,
    hostsExact: exact,
    hostSuffixes: Object.freeze(suffixes),
    anyHost: exact.size === 0 && suffixes.length === 0,
    schemes: schemeMask(r.schemes ?? []),
    pathPrefix: r.pathPrefix ?? '',
    tiers: tiersOf(r.upstreams, targets),
    fallbacks: tiersOf(r.fallbacks ?? [], targets),
    check: r.check === undefined ? null : Object.freeze({ ...DEFAULT_PLANS.check, ...r.check }),
    passive: Object.freeze({ ...DEFAULT_PLANS.passive, ...r.passive }),
    retry: Object.freeze({ ...DEFAULT_PLANS.retry, ...r.retry }),
    limits: Object.freeze({ ...DEFAULT_PLANS.limits, ...r.limits }),
    rules: r.rules ?? null,
    hsts: r.hsts ?? '',
    httpsPort: r.httpsPort ?? 0,
  })
}

function schemeMask(schemes: readonly string[]): SchemeMask {
  let mask = 0
  for (const s of schemes) mask |= s === 'http' ? Scheme.Http : Scheme.Https
  return mask === 0 ? Scheme.Any : mask
}

function tiersOf(list: readonly TargetSpec[], targets: Map<string, { host: string; port: number; protocol?: string; tls?: boolean }>): readonly Tier[] {
  const byPriority = new Map<number, TargetRef[]>()
  for (const t of list) {
    const tls = t.tls === true
    const key = tls ? `https://${targetKey(t.host, t.port)}` : targetKey(t.host, t.port)
    if (!targets.has(key)) targets.set(key, Object.freeze({ host: t.host, port: t.port, ...(t.protocol === undefined ? {} : { protocol: t.protocol }), ...(tls ? { tls } : {}) }))
    const ref: TargetRef = Object.freeze(tls ? { key, host: t.host, port: t.port, weight: t.weight ?? 1, tls: true as const } : { key, host: t.host, port: t.port, weight: t.weight ?? 1 })
    const p = t.priority ?? 1
    const tier = byPriority.get(p)
    if (tier === undefined) byPriority.set(p, [ref])
    else tier.push(ref)
  }
  return Object.freeze([...byPriority.keys()].sort((a, b) => a - b).map((priority) => Object.freeze({ priority, targets: Object.freeze(byPriority.get(priority) ?? []) })))
}

/** ListenerPlan.routes order: exact hosts, then longest wildcard, then any host; longer PathPrefix first in each. */
function orderRoutes(routes: RoutePlan[]): RoutePlan[] {
  const cls = (r: RoutePlan): number => (r.hostsExact.size > 0 ? 0 : r.hostSuffixes.length > 0 ? 1 : 2)
  return routes.sort((a, b) => {
    const d = cls(a) - cls(b)
    if (d !== 0) return d
    if (cls(a) === 1) {
      const s = (b.hostSuffixes[0]?.length ?? 0) - (a.hostSuffixes[0]?.length ?? 0)
      if (s !== 0) return s
    }
    return b.pathPrefix.length - a.pathPrefix.length
  })
}
