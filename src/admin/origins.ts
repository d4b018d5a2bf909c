// What the API shows is what is served: the stored configuration with every
// discovered part merged in. Each discovered server, route, upstream and
// fallback carries `"origin": {"source": "docker", "name": "web-1"}` (Swarm:
// the service's name); a part without `origin` is the store's. `?origin=store`
// shows the stored configuration alone, exactly as stored (what a backup or a
// PUT round trip needs). docs/api.md, "Origins".
//
// A body may carry what a GET showed: parts marked with a discovery origin
// are not stored. One equal to what is served is left out (a GET, PUT back
// as is, changes nothing); one that differs is refused with E_READ_ONLY.

import type { FastifyRequest } from 'fastify'
import type { Control, Served } from '../control/control.ts'
import { canonicalRoute, describePart, originOf, readOnlyError, routesOf } from '../control/provenance.ts'
import type { MemberList, Provenance } from '../control/provenance.ts'
import { canonicalServer, policyOf } from '../model/canonical.ts'
import { BalancerError, ErrorCode, validationError } from '../model/errors.ts'
import { normalizeRoute, normalizeUpstream } from '../model/parse.ts'
import type { Member, Route, Server, Upstream } from '../model/types.ts'
import { isServiceRef } from '../model/types.ts'

/** How an origin is written in the API. */
export interface OriginJson {
  source: string
  name?: string
}

export function originJson(p: Provenance): OriginJson {
  return p.name === null ? { source: p.origin } : { source: p.origin, name: p.name }
}

/** `?origin=store`: the stored configuration alone; without it, what is served. */
export function wantsStored(req: FastifyRequest): boolean {
  const q = req.query as Record<string, unknown> | undefined
  const v = q?.['origin']
  if (v === undefined) return false
  if (v === 'store') return true
  throw validationError([{ path: 'query.origin', message: `must be "store" (the stored configuration alone), got ${JSON.stringify(v)}` }])
}

type View = Record<string, unknown>

function member(served: Served, address: string, route: string, list: MemberList, u: Member): View {
  // A service reference (only where nothing resolved it) is shown as written; its instances carry their registry as origin.
  if (isServiceRef(u)) return { Service: u.Service, Registry: u.Registry, Tags: [...u.Tags], Priority: u.Priority, Weight: u.Weight, ...(u.Protocol === undefined ? {} : { Protocol: u.Protocol }) }
  const out: View = {
    Target: u.Target,
    Port: u.Port,
    Priority: u.Priority,
    Weight: u.Weight,
    ...(u.Protocol === undefined ? {} : { Protocol: u.Protocol }),
    ...(u.Scheme === 'https' ? { Scheme: 'https' } : {}),
  }
  const o = originOf(served, address, route, list, u)
  if (o !== null) out.origin = originJson(o)
  return out
}

/** A route as served, with the origin of it and of each member that discovery contributed. */
export function routeView(served: Served, address: string, r: Route): View {
  const out: View = { name: r.name }
  const o = originOf(served, address, r.name)
  if (o !== null) out.origin = originJson(o)
  out.filter = { Hosts: [...r.filter.Hosts], Schemes: [...r.filter.Schemes], PathPrefix: r.filter.PathPrefix }
  out.upstreams = r.upstreams.map((u) => member(served, address, r.name, 'upstreams', u))
  out.fallbacks = r.fallbacks.map((u) => member(served, address, r.name, 'fallbacks', u))
  return { ...out, ...policyOf(r, 'route') }
}

/** A server as served: its canonical form with `origin` on each discovered part. */
export function serverView(served: Served, s: Server): View {
  const canonical = canonicalServer(s) as unknown as View
  const out: View = { address: s.address }
  const o = originOf(served, s.address)
  if (o !== null) out.origin = originJson(o)
  const own = routesOf(s)[0] as Route
  return {
    ...out,
    ...canonical,
    upstreams: own.upstreams.map((u) => member(served, s.address, own.name, 'upstreams', u)),
    fallbacks: own.fallbacks.map((u) => member(served, s.address, own.name, 'fallbacks', u)),
    routes: s.routes.map((r) => routeView(served, s.address, r)),
  }
}

export function memberView(served: Served, address: string, route: string, list: MemberList, u: Member): View {
  return member(served, address, route, list, u)
}

/** GET / as served, 2-space indented like the stored text. */
export function configText(served: Served): string {
  return `${JSON.stringify({ servers: served.config.servers.map((s) => serverView(served, s)) }, null, 2)}\n`
}

/** True when any part of the server (or of its route) is discovered: its view differs from the stored one. */
export function hasDiscovered(served: Served, address: string, route?: string): boolean {
  if (served.origins.size === 0) return false
  const self = route === undefined ? address : `${address}#${route}`
  for (const key of served.origins.keys()) if (key === self || key.startsWith(`${self}#`)) return true
  return false
}

/** The server a GET names: as shown (stored with ?origin=store, else served) and as stored. */
export interface Lookup {
  served: Served
  fromStore: boolean
  /** undefined: only discovery serves it. */
  stored: Server | undefined
  shown: Server
}

export function lookupServer(control: Control, req: FastifyRequest, address: string): Lookup {
  const fromStore = wantsStored(req)
  const served = control.served()
  const stored = control.stored().config.servers.find((s) => s.address === address)
  const shown = fromStore ? stored : served.config.servers.find((s) => s.address === address)
  if (shown === undefined) throw notFound(`server "${address}" not found`)
  return { served, fromStore, stored, shown }
}

function notFound(message: string): BalancerError {
  return new BalancerError(ErrorCode.NotFound, message)
}

// --- bodies ---------------------------------------------------------------

interface Marked {
  origin: boolean
  rest: Record<string, unknown>
}

/** Splits an object's `origin` field (any letter case) off; origin: true when it names a discovery source. */
function unmark(raw: unknown): Marked | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null
  const rest: Record<string, unknown> = {}
  let origin = false
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (k.toLowerCase() !== 'origin') rest[k] = v
    else origin = isDiscovered(v)
  }
  return { origin, rest }
}

function isDiscovered(v: unknown): boolean {
  if (v === null || v === undefined || v === 'store') return false
  if (typeof v === 'object' && !Array.isArray(v)) {
    const source = Object.entries(v as Record<string, unknown>).find(([k]) => k.toLowerCase() === 'source')?.[1]
    return source !== undefined && source !== 'store'
  }
  return true
}

function field(obj: Record<string, unknown>, name: string): [string, unknown] | undefined {
  return Object.entries(obj).find(([k]) => k.toLowerCase() === name)
}

/** The members of a list body that are not discovered; a discovered one must equal what is served. */
function storedMembers(list: unknown, served: Served, address: string, route: string, which: MemberList, path: string): unknown {
  if (!Array.isArray(list)) return list
  const out: unknown[] = []
  list.forEach((raw: unknown, i) => {
    const m = unmark(raw)
    if (m === null) out.push(raw)
    else if (!m.origin) out.push(m.rest)
    else {
      const u = normalizeUpstream(m.rest, `${path}[${i}]`)
      const now = routeOf(served, address, route)?.[which].find((x): x is Upstream => !isServiceRef(x) && x.Port === u.Port && x.Target.toLowerCase() === u.Target.toLowerCase())
      const origin = now === undefined ? null : originOf(served, address, route, which, now)
      // No longer discovered: nothing to store. Discovered and different: read-only.
      if (now !== undefined && origin !== null && (now.Priority !== u.Priority || now.Weight !== u.Weight)) {
        throw readOnlyError(describePart(address, route, which, now), origin, `${path}[${i}]`)
      }
    }
  })
  return out
}

function routeOf(served: Served, address: string, name: string): Route | undefined {
  const s = served.config.servers.find((x) => x.address === address)
  return s === undefined ? undefined : routesOf(s).find((r) => r.name === name)
}

/**
 * A route body (PUT .../route/{name}, or the server's own route) without its
 * discovered members; `origin` fields dropped.
 */
export function storedPartsOfRoute(body: unknown, served: Served, address: string, name: string, path = 'body'): unknown {
  const m = unmark(body)
  if (m === null) return body
  if (m.origin) throw readOnlyOrGone(served, address, name, path)
  const out = { ...m.rest }
  for (const which of ['upstreams', 'fallbacks'] as const) {
    const f = field(out, which)
    if (f !== undefined) out[f[0]] = storedMembers(f[1], served, address, name, which, `${path}.${f[0]}`)
  }
  return out
}

/**
 * A server body (PUT /server/{address}) without what discovery serves on
 * that server: discovered routes and members equal to what is served are
 * left out; `origin` fields dropped.
 */
export function storedPartsOfServer(body: unknown, served: Served, address: string): unknown {
  const m = unmark(body)
  if (m === null) return body
  if (m.origin) throw readOnlyOrGone(served, address, undefined, 'body')
  const out = storedPartsOfRoute(m.rest, served, address, 'default') as Record<string, unknown>
  const routes = field(out, 'routes')
  if (routes !== undefined && Array.isArray(routes[1])) {
    const kept: unknown[] = []
    routes[1].forEach((raw: unknown, i) => {
      const r = unmark(raw)
      const at = `body.${routes[0]}[${i}]`
      if (r === null || !r.origin) return kept.push(r === null ? raw : storedPartsOfRoute(r.rest, served, address, routeName(r.rest), at))
      sameAsServed(r.rest, served, address, at)
    })
    out[routes[0]] = kept
  }
  return out
}

function routeName(raw: Record<string, unknown>): string {
  const n = field(raw, 'name')?.[1]
  return typeof n === 'string' ? n : ''
}

/** A discovered route sent back: left out when it equals what is served (or is no longer served), else E_READ_ONLY. */
function sameAsServed(raw: Record<string, unknown>, served: Served, address: string, path: string): void {
  const name = routeName(raw)
  const now = routeOf(served, address, name)
  const origin = now === undefined ? null : originOf(served, address, name)
  if (now === undefined || origin === null) return
  const stripped = { ...raw }
  for (const which of ['upstreams', 'fallbacks'] as const) {
    const f = field(stripped, which)
    if (f !== undefined && Array.isArray(f[1])) stripped[f[0]] = f[1].map((x: unknown) => unmark(x)?.rest ?? x)
  }
  let same = false
  try {
    same = JSON.stringify(canonicalRoute(normalizeRoute(stripped, path))) === JSON.stringify(canonicalRoute(now))
  } catch {
    // Not even a valid route: it differs.
  }
  if (!same) throw readOnlyError(describePart(address, name), origin, path)
}

function readOnlyOrGone(served: Served, address: string, route: string | undefined, path: string): BalancerError {
  const origin = originOf(served, address, route)
  const part = describePart(address, route)
  if (origin !== null) return readOnlyError(part, origin, path)
  return validationError([{ path: `${path}.origin`, message: `${part} is not discovered; send it without "origin"` }])
}

/** A member body without its `origin` field (the URL names the member; a discovered one is refused by the write). */
export function withoutOrigin(body: unknown): unknown {
  return unmark(body)?.rest ?? body
}
