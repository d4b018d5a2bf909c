// Pure edits of a Config, used inside store mutations. Every function returns
// new objects and leaves its input untouched (a ValidConfig is never mutated,
// and the parser checks only the servers an edit replaced); lookups that fail
// throw E_NOT_FOUND, or E_READ_ONLY when what they look for is only
// discovered, so a mutation can simply call them.

import type { Served } from '../control/control.ts'
import { describePart, originOf, readOnlyError } from '../control/provenance.ts'
import { policyOf } from '../model/canonical.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { ROUTE_DEFAULT } from '../model/types.ts'
import type { Config, Member, Route, Server } from '../model/types.ts'
import { isServiceRef } from '../model/types.ts'
import type { MemberRef } from './addressing.ts'

export type MemberList = 'upstreams' | 'fallbacks'

/** Exact string match on the address as stored. */
export function findServer(cfg: Config, address: string): Server | undefined {
  return cfg.servers.find((s) => s.address === address)
}

/** E_READ_ONLY when discovery serves this server (or its route) and the store does not hold it: a write may not create it in the store either. */
export function refuseDiscovered(served: Served, address: string, route?: string): void {
  const origin = originOf(served, address, route)
  if (origin !== null) throw readOnlyError(describePart(address, route), origin, route === undefined ? 'path.address' : 'path.name')
}

/** With `served` (a write), a server only discovery serves is E_READ_ONLY rather than E_NOT_FOUND. */
export function requireServer(cfg: Config, address: string, served?: Served): Server {
  const server = findServer(cfg, address)
  if (server !== undefined) return server
  if (served !== undefined) refuseDiscovered(served, address)
  throw notFound(`server "${address}" not found`)
}

/** Replaces the server with the same address, or appends it. */
export function withServer(cfg: Config, server: Server): Config {
  const i = cfg.servers.findIndex((s) => s.address === server.address)
  return { ...cfg, servers: i < 0 ? [...cfg.servers, server] : cfg.servers.with(i, server) }
}

export function withoutServer(cfg: Config, address: string): Config {
  return { ...cfg, servers: cfg.servers.filter((s) => s.address !== address) }
}

/** The route called name; `default` is a view of the server's own filter, upstreams and fallbacks. */
export function findRoute(server: Server, name: string): Route | undefined {
  if (name === ROUTE_DEFAULT) return defaultRoute(server)
  return server.routes.find((r) => r.name === name)
}

/** With `served` (a write), a route only discovery serves is E_READ_ONLY rather than E_NOT_FOUND. */
export function requireRoute(server: Server, name: string, served?: Served): Route {
  const route = findRoute(server, name)
  if (route !== undefined) return route
  if (served !== undefined) refuseDiscovered(served, server.address, name)
  throw notFound(`route "${name}" not found on server "${server.address}"`)
}

/** The server's own route; its policy groups are the server's (which its named routes inherit). */
export function defaultRoute(server: Server): Route {
  return { name: ROUTE_DEFAULT, filter: server.filter, upstreams: server.upstreams, fallbacks: server.fallbacks, ...policyOf(server, 'server') }
}

/** Writes route into server: the default route into the top-level fields, a named one replaced or appended. */
export function withRoute(server: Server, route: Route): Server {
  if (route.name === ROUTE_DEFAULT) {
    const { address, tls, Protocols, routes } = server
    return {
      address,
      ...(tls === undefined ? {} : { tls }),
      ...(Protocols === undefined ? {} : { Protocols }),
      filter: route.filter,
      upstreams: route.upstreams,
      fallbacks: route.fallbacks,
      ...policyOf(route, 'server'),
      routes,
    }
  }
  const i = server.routes.findIndex((r) => r.name === route.name)
  return { ...server, routes: i < 0 ? [...server.routes, route] : server.routes.with(i, route) }
}

export function withoutRoute(server: Server, name: string): Server {
  return { ...server, routes: server.routes.filter((r) => r.name !== name) }
}

/** Host names compare case-insensitively; ports exactly. A service reference has no target-port: never the same. */
export function sameMember(u: Member, ref: MemberRef): boolean {
  if (isServiceRef(u)) return false
  return u.Port === ref.port && u.Target.toLowerCase() === ref.target.toLowerCase()
}

export function notFound(message: string): BalancerError {
  return new BalancerError(ErrorCode.NotFound, message)
}

export function exists(message: string): BalancerError {
  return new BalancerError(ErrorCode.Exists, message)
}
