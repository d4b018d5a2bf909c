// The routing snapshot: what the engine serves from. Produced by compile()
// (pure, no I/O) from a validated Config, never mutated after that; the engine
// swaps a whole snapshot in with one assignment. Live state (health, pools,
// in-flight counts, balancing cursors) lives in the engine, keyed by
// TargetRef.key, never in here.

import type { RE2JS } from 're2js'

/** A socket address to listen on. host '' means every interface (dual stack). */
export interface ListenAddress {
  /** Canonical key: `host:port`, `[v6]:port`, or `*:port` for every interface. */
  key: string
  host: string
  port: number
}

/** One upstream or fallback endpoint as a route sees it. */
export interface TargetRef {
  /** Registry key shared by every route and snapshot: `target:port`, target lower-cased; `https://target:port` for a TLS upstream. */
  key: string
  host: string
  port: number
  weight: number
  /** The balancer speaks TLS to it (Upstream.Scheme `https`); absent for plain HTTP. */
  tls?: true
}

/** One priority group: all its members share traffic by weight. */
export interface Tier {
  priority: number
  targets: readonly TargetRef[]
}

export const Scheme = { Http: 1, Https: 2, Any: 3 } as const
export type SchemeMask = number

/** A compiled HealthCheck; durations in ms, statuses as inclusive ranges. */
export interface CheckPlan {
  type: 'http' | 'tcp' | 'grpc'
  method: 'GET' | 'HEAD'
  path: string
  /** '' = the upstream's `host:port`. */
  host: string
  statuses: readonly (readonly [number, number])[]
  intervalMs: number
  timeoutMs: number
  rise: number
  fall: number
  /**
   * What is probed, not how often: `type method host path statuses`. Check
   * state is kept per (TargetRef.key, probe): changing Interval or Timeout
   * keeps an upstream's health; changing what is probed starts it pending.
   */
  probe: string
}

export interface PassivePlan {
  /** 0 = no passive ejection. */
  failures: number
  ejectionMs: number
  maxEjectionMs: number
  on5xx: boolean
}

export interface RetryPlan {
  /** Sorted ascending. */
  statuses: readonly number[]
  /** Tries per request including the first. */
  attempts: number
  budgetPercent: number
}

export interface LimitsPlan {
  /** 0 = unlimited. */
  maxConnections: number
  maxPending: number
}

/** How the Host sent upstream is chosen (rewrite.Host). */
export const HostMode = { Client: 0, Upstream: 1, Fixed: 2 } as const

/**
 * Header edits of one direction, compiled (headers.Request / Response and
 * the shortcuts). Protocol-neutral: HTTP/1 writes `lines`, HTTP/2 adds
 * `fields`; both drop every field whose lower-case name is in `drop`.
 */
export interface HeaderEditPlan {
  /** Lower-case names removed from what was received: Remove and Set's names. */
  drop: ReadonlySet<string>
  /** Set then Add as HTTP/1 lines, `name: value\r\n` each. */
  lines: string
  /** The same as [name, value] pairs. */
  fields: readonly (readonly [string, string])[]
}

/** What a route changes in the request it forwards (rewrite, headers.Request); src/engine/rules/request.ts applies it. */
export interface RequestRulesPlan {
  /** rewrite.StripPrefix: the route's PathPrefix to remove; '' = none. */
  strip: string
  /** rewrite.ReplacePathRegex, compiled by re2js (linear time). */
  replace: { readonly re: RE2JS; readonly replacement: string } | null
  /** rewrite.AddPrefix; '' = none. */
  addPrefix: string
  /** The path changes at all (strip, replace or addPrefix). */
  rewritesPath: boolean
  host: (typeof HostMode)[keyof typeof HostMode]
  /** HostMode.Fixed: the name sent. */
  hostName: string
  edits: HeaderEditPlan | null
}

/** The access group, compiled (src/model/access.ts has its rules). */
export interface AccessPlan {
  /** IP addresses or CIDRs; empty: no Allow check. */
  allow: readonly string[]
  deny: readonly string[]
  /** BasicAuth: user -> hash; empty: no credentials asked. */
  users: ReadonlyMap<string, string>
  forward: ForwardAuthPlan | null
  /** JSON of the group: the engine keeps a route's auth cache while this stays the same. */
  signature: string
}

/** The ratelimit group, compiled: the cluster-wide figures; each engine enforces its share (EngineCtx.limitShare). */
export interface RateLimitPlan {
  /** Requests per second. */
  average: number
  burst: number
  /** Lower-case header name; '' = the client address. */
  sourceHeader: string
  /** The engine keeps a route's buckets while this stays the same. */
  signature: string
}

/** The body group, compiled; absent when it sets no limit. */
export interface BodyPlan {
  /** Request body bytes allowed (> 0). */
  maxRequestBytes: number
}

export interface ForwardAuthPlan {
  host: string
  port: number
  /** Path and query sent to the auth service. */
  path: string
  /** The `host` header for the auth service (`host:port` as in Address). */
  authority: string
  /** Lower-case names copied from a 2xx answer onto the request (client-sent ones are always dropped). */
  responseHeaders: readonly string[]
  timeoutMs: number
}

/**
 * The route rules, compiled. A route without any is `rules: null`, the one
 * field the engine tests per request; each group inside is null when unset.
 * Order of application: README "Route rules".
 */
export interface RulesPlan {
  /** Something must be decided before the request may go upstream (access, ratelimit, body): the engine's gate (rules/gate.ts) runs. */
  gated: boolean
  access: AccessPlan | null
  ratelimit: RateLimitPlan | null
  body: BodyPlan | null
  request: RequestRulesPlan | null
  /** headers.Response and its shortcuts, applied to responses relayed from upstream. */
  response: HeaderEditPlan | null
  errors: ErrorPagesPlan | null
  compress: CompressPlan | null
  /** body.MaxResponseBytes: the upstream's response body may be at most this; 0: no limit. */
  maxResponseBytes: number
}

/** Content codings the compress group offers (model/compress.ts ENCODINGS); None: the body is sent as it is. */
export const Enc = { None: 0, Gzip: 1, Br: 2, Zstd: 3 } as const
export type Enc = (typeof Enc)[keyof typeof Enc]

/** The compress group, compiled (src/engine/rules/compress.ts applies it). */
export interface CompressPlan {
  /** The codings offered, in the order preferred. */
  encodings: readonly Enc[]
  /** Lower-case `type/subtype` compressed. */
  types: ReadonlySet<string>
  /** `type/` of each `type/*` entry. */
  typePrefixes: readonly string[]
  /** A Content-Length below this is sent as it is. */
  minBytes: number
  /** The route's headers.Response (empty when none): a compressed response's head is built with it. */
  base: HeaderEditPlan
  /** base.drop and `etag`: a strong ETag is replaced by its weak form. */
  dropEtag: ReadonlySet<string>
}

/** The errors group, compiled (src/engine/rules/error-page.ts serves it). */
export interface ErrorPagesPlan {
  /** `http://...` or `file:///...`, `{status}` not yet replaced. */
  page: string
  statuses: readonly number[]
  timeoutMs: number
}

/** A compiled filter plus its upstream tiers. */
export interface RoutePlan {
  /** `address` as written + `#` + route name, e.g. `:8080#default`; unique in a snapshot. */
  id: string
  server: string
  name: string
  /** Lower-cased exact host names; empty with no suffixes = any host. */
  hostsExact: ReadonlySet<string>
  /** Wildcard suffixes with the leading dot: `*.example.com` -> `.example.com`. */
  hostSuffixes: readonly string[]
  anyHost: boolean
  /** Bitmask of Scheme.Http / Scheme.Https that the route accepts. */
  schemes: SchemeMask
  /** '' matches every path. */
  pathPrefix: string
  /** Sorted by priority ascending; empty when the route has no upstream. */
  tiers: readonly Tier[]
  /** Sorted by priority ascending: the last resort. */
  fallbacks: readonly Tier[]
  /** null: no active check (upstreams are healthy unless passively ejected). */
  check: CheckPlan | null
  passive: PassivePlan
  retry: RetryPlan
  limits: LimitsPlan
  /** null: the route has no rule group (the common case costs one test per request). */
  rules: RulesPlan | null
  /** `strict-transport-security: ...\r\n` added to its responses over TLS; '' for none. */
  hsts: string
  /**
   * A route that takes https only (Schemes ["https"]): plain HTTP requests
   * it would take get a 308 to https on this port (that of a TLS server
   * routing the route's host; 443 when none does). 0 for other routes.
   */
  httpsPort: number
}

/** A certificate the listener serves from files: read and watched outside the engine, handed to it as a CertEntry with this id. */
export interface CertFileRef {
  /** `file:` + CertFile + NUL + KeyFile: the CertEntry.id the engine looks up. */
  id: string
  certFile: string
  keyFile: string
}

/** TLS on a listener: which certificates it serves, which protocols it offers. */
export interface TlsPlan {
  /** The server's own certificates, in config order; the first is the default. */
  files: readonly CertFileRef[]
  /** ALPN protocols offered, in server preference order (`h2`, `http/1.1`). */
  alpn: readonly string[]
  /**
   * Without certificate files, the default certificate (no SNI, a name none
   * covers) is the stored one covering this host: the server's first exact
   * filter host; null when it names none.
   */
  defaultHost: string | null
}

export interface ListenerPlan {
  listen: ListenAddress
  /** null: plain HTTP. */
  tls: TlsPlan | null
  /** A plain listener also speaks HTTP/2 to clients that open with its preface (h2c, prior knowledge). */
  h2c: boolean
  /** Ordered by match precedence: exact hosts, then longest wildcard, then any host; longer PathPrefix first within each. */
  routes: readonly RoutePlan[]
}

export interface RoutingSnapshot {
  /** Increases with every compiled snapshot the process has applied. */
  version: number
  listeners: ReadonlyMap<string, ListenerPlan>
  /** Every endpoint any route references, by TargetRef.key; `protocol` `h2c` for HTTP/2 upstreams (absent: HTTP/1.1), `tls` for Scheme https. */
  targets: ReadonlyMap<string, TargetSpec>
  /** How this snapshot differs from the one it was compiled from (compile's `base`); absent: compiled whole. */
  diff?: SnapshotDiff
}

export interface TargetSpec {
  host: string
  port: number
  protocol?: string
  tls?: boolean
}

/**
 * What changed from `base` to the snapshot that carries it, so an engine
 * serving `base` touches only that: a write that changes one server of
 * 1,000 rebuilds one listener's runtime and looks at that server's targets.
 */
export interface SnapshotDiff {
  base: RoutingSnapshot
  /** Listeners whose plan is not base's (the same object otherwise): added, changed, or removed (absent from `listeners`). */
  listeners: ReadonlySet<string>
  /** Targets base did not reference, or referenced with another protocol. */
  addedTargets: ReadonlyMap<string, TargetSpec>
  /** Targets base referenced and this snapshot does not. */
  removedTargets: readonly string[]
}
