// The one configuration model. The file store, the REST API and every later
// source (KV stores, Docker labels) produce and consume exactly these shapes;
// parse.ts turns the loose forms the seed shows into them.

/** One backend: `Target:Port`. Missing Priority and Weight mean 1. */
export interface Upstream {
  Target: string
  Port: number
  /** Lower value = preferred group. Integer 0..1000, default 1. */
  Priority: number
  /** Share inside its priority group. Integer 1..1000, default 1. */
  Weight: number
}

/** Which requests a route takes. Empty lists / empty string match everything. */
export interface Filter {
  /** Exact names or `*.domain` wildcards, lower-cased, no port. */
  Hosts: string[]
  /** Subset of `http`, `https`. */
  Schemes: string[]
  /** Must start with `/` when not empty. */
  PathPrefix: string
}

/** A named extra route on a server's address (virtual hosting). */
export interface Route {
  /** Unique on its server, `[a-z0-9][a-z0-9_.-]{0,62}`; `default` is reserved for the server's own route. */
  name: string
  filter: Filter
  upstreams: Upstream[]
  fallbacks: Upstream[]
}

/**
 * A listening address with its default route (the seed's single-filter form)
 * and any number of extra named routes.
 */
export interface Server {
  /** As written by the user: `:8080`, `0.0.0.0:80`, `127.0.0.1:8080`, `[::1]:8080`. */
  address: string
  filter: Filter
  upstreams: Upstream[]
  fallbacks: Upstream[]
  routes: Route[]
}

/** The whole desired configuration held by the store. */
export interface Config {
  servers: Server[]
}

export const ROUTE_DEFAULT = 'default'

/** `target-port`, the key the REST API and the seed's fallback map use. */
export function upstreamKey(u: { Target: string; Port: number }): string {
  return `${u.Target}-${u.Port}`
}
