// The one configuration model. The file store, the REST API and every later
// source (KV stores, Docker labels) produce and consume exactly these shapes;
// parse.ts turns the loose forms the seed shows into them.

import type { DiscoveryRule } from './discovery-rule.ts'

/** One backend: `Target:Port`. Missing Priority and Weight mean 1. */
export interface Upstream {
  Target: string
  Port: number
  /** Lower value = preferred group. Integer 0..1000, default 1. */
  Priority: number
  /** Share inside its priority group. Integer 1..1000, default 1. */
  Weight: number
  /** `h2c`: the upstream speaks HTTP/2 with prior knowledge (gRPC services); `h2`: HTTP/2 over TLS (Scheme `https`). Absent: HTTP/1.1. */
  Protocol?: 'h2c' | 'h2'
  /** `https`: the balancer speaks TLS to it (verified, SNI its Target). Absent: plain HTTP. */
  Scheme?: 'https'
}

/**
 * An upstream or fallback entry that names a service in a registry instead of
 * an address; resolved into the service's live instances by the merge
 * (model/services.ts). Stored as written.
 */
export interface ServiceRef {
  /** The service's name in its registry. */
  Service: string
  /** A --registry name; '' = every configured registry that has the service. */
  Registry: string
  /** Only instances carrying every one of these tags. */
  Tags: string[]
  /** For every instance, unless its metadata says balancer.priority. Integer 0..1000, default 1. */
  Priority: number
  /** For every instance, unless its metadata says balancer.weight. Integer 1..1000, default 1. */
  Weight: number
  /** What every instance speaks; absent = HTTP/1.1 (as Upstream.Protocol). */
  Protocol?: 'h2c' | 'h2'
  /** Never present: lets code read `m.Target` off any member (undefined for a reference). */
  Target?: never
  Port?: never
}

/** One entry of an upstream or fallback list. */
export type Member = Upstream | ServiceRef

export function isServiceRef(m: Member): m is ServiceRef {
  return typeof (m as Partial<ServiceRef>).Service === 'string'
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

/**
 * Active health check of a route's upstreams and fallbacks. Absent: no active
 * check; the upstreams count as healthy and passive detection alone ejects
 * them. Present: a new upstream is `pending` and gets no traffic until its
 * first check (run at once) passes.
 */
export interface HealthCheck {
  /** `http` (a request, healthy on an expected status) or `tcp` (connect only). */
  Type: 'http' | 'tcp' | 'grpc'
  /** http: request path, default `/`. */
  Path: string
  /** http: `GET` (default) or `HEAD`. */
  Method: 'GET' | 'HEAD'
  /** http: Host header; '' (default) = the upstream's `Target:Port`. */
  Host: string
  /** http: healthy statuses as codes or ranges, default `["200-399"]`. */
  Statuses: string[]
  /** Time between checks, a duration such as `5s` (default) or `500ms`. */
  Interval: string
  /** A check that has not passed within this fails; default `2s`. */
  Timeout: string
  /** Passing checks in a row that make an unhealthy upstream healthy; default 2. */
  Rise: number
  /** Failing checks in a row that make a healthy upstream unhealthy; default 3. */
  Fall: number
}

/** Passive outlier detection from request outcomes. */
export interface Passive {
  /** Consecutive failures (reset, response timeout; 5xx with EjectOn5xx) that eject; a refused or timed-out connect ejects at once; default 3; 0 turns passive ejection off. */
  Failures: number
  /** First ejection length, doubling on each ejection in a row; default `1s`. */
  Ejection: string
  /** Longest ejection; default `30s`. */
  MaxEjection: string
  /** Count 5xx responses as failures too; default false. */
  EjectOn5xx: boolean
}

/** When a failed request is sent again (to another upstream, then the fallbacks). */
export interface Retry {
  /** Response statuses treated as failures and retried, default `[502, 503, 504]`. */
  Statuses: number[]
  /** Tries per request including the first, default 3; 1 = never retry. */
  Attempts: number
  /** Retries may add at most this percent to the route's request rate (retry budget); default 20. */
  Budget: number
}

/** Per-upstream limits; over a limit the upstream counts as unavailable for that pick. 0 = unlimited. */
export interface Limits {
  /** Connections to one upstream (busy ones; idle pooled ones do not count); default 0. */
  MaxConnections: number
  /** Requests waiting for a connection to one upstream when MaxConnections is reached; default 0 (none wait). */
  MaxPending: number
}

/** `rewrite`: what the upstream sees of the request's path and Host (src/model/rewrite.ts has the bounds). */
export interface Rewrite {
  /** Remove the route's PathPrefix from the path (keeping a leading `/`); the prefix goes upstream as X-Forwarded-Prefix. */
  StripPrefix: boolean
  /** Put before the path (after StripPrefix and ReplacePathRegex); '' = none. */
  AddPrefix: string
  /** Replace the path (not the query) where Regex matches; RE2 syntax, linear time on any input. null = none. */
  ReplacePathRegex: ReplacePath | null
  /** The Host sent upstream: `client` (as received), `upstream` (the picked upstream's `Target:Port`) or a fixed name. */
  Host: string
}

export interface ReplacePath {
  Regex: string
  /** `$1`, `${name}` refer to the Regex's groups. */
  Replacement: string
}

/** Set (replace), Add (one more line) and Remove (drop every line of the name), applied Remove, Set, Add. */
export interface HeaderEdits {
  Set: Record<string, string>
  Add: Record<string, string>
  Remove: string[]
}

/** `headers`: fields added to or removed from requests and responses (src/model/header-rules.ts). */
export interface HeaderRules {
  Request: HeaderEdits
  Response: HeaderEdits
  /** `X-Frame-Options: DENY` on responses. */
  FrameDeny: boolean
  /** `X-Content-Type-Options: nosniff` on responses. */
  ContentTypeNosniff: boolean
}

/** `access`: who may use a route (src/model/access.ts has the order and bounds). */
export interface Access {
  /** IP addresses or CIDRs; not empty: only these. */
  Allow: string[]
  /** IP addresses or CIDRs refused, before Allow. */
  Deny: string[]
  /** htpasswd lines `user:hash` (bcrypt or argon2); empty = no credentials asked. */
  BasicAuth: string[]
  ForwardAuth: ForwardAuth | null
}

export interface ForwardAuth {
  /** `http://host:port/path` of the auth service. */
  Address: string
  /** Lower-case names copied from a 2xx auth response onto the request. */
  ResponseHeaders: string[]
  /** A duration, default `5s`. */
  Timeout: string
}

/** `ratelimit`: a token bucket per client, shared by the instances (src/model/ratelimit.ts). */
export interface RateLimit {
  /** Requests per second. */
  Average: number
  Burst: number
  /** Lower-case header name identifying the client; '' = its address. */
  SourceHeader: string
}

/** `errors`: custom error pages (src/model/error-pages.ts). */
export interface ErrorPages {
  /** `http://host:port/path` or `file:///path`; `{status}` is replaced by the status. */
  Page: string
  Statuses: number[]
  /** A duration, default `2s`. */
  Timeout: string
}

/** `body`: request body size (src/model/body.ts). */
export interface Body {
  /** Bytes; 0 = no limit. */
  MaxRequestBytes: number
  /** Bytes of the upstream's response body; 0 = no limit. */
  MaxResponseBytes: number
}

/** `compress`: responses compressed for clients that ask (src/model/compress.ts). */
export interface Compress {
  /** `zstd`, `br`, `gzip`, in the order preferred. */
  Encodings: string[]
  /** Lower-case `type/subtype` or `type/*`. */
  Types: string[]
  /** A Content-Length below this is sent as it is. */
  MinBytes: number
}

/**
 * The route rules (src/model/rules.ts): what a route does to a request
 * besides picking its upstream. On a route, absent means its server's group
 * and `null` means none even if the server has one.
 */
export interface Rules {
  access?: Access | null
  ratelimit?: RateLimit | null
  body?: Body | null
  rewrite?: Rewrite | null
  headers?: HeaderRules | null
  errors?: ErrorPages | null
  compress?: Compress | null
}

/** Strict-Transport-Security added to responses relayed over TLS (src/model/hsts.ts). */
export interface Hsts {
  /** Seconds browsers keep to HTTPS. */
  MaxAge: number
  IncludeSubDomains: boolean
  Preload: boolean
}

/**
 * Health, retry and limit policy. Set on a server it applies to all its
 * routes; a route's own value replaces the server's, field group by field
 * group. Absent groups take the documented defaults (POLICY_DEFAULTS).
 * Bounds of every field: src/model/policy.ts.
 */
export interface Policy extends Rules {
  /**
   * On a route, `null` means "no active check, whatever the server sets" (a
   * route's absent group inherits the server's). A server never holds `null`:
   * the model reads it as absent.
   */
  health?: HealthCheck | null
  passive?: Passive
  retry?: Retry
  limits?: Limits
  /**
   * Which discovered containers/services may join (discovery-rule.ts). Set
   * only by the store, never by labels. On a route, absent means its server's.
   */
  discovery?: DiscoveryRule
  /** On a route, `null` means "no header, whatever the server sets"; a server never holds `null`. */
  hsts?: Hsts | null
}

export const POLICY_DEFAULTS = {
  health: { Type: 'http', Path: '/', Method: 'GET', Host: '', Statuses: ['200-399'], Interval: '5s', Timeout: '2s', Rise: 2, Fall: 3 },
  passive: { Failures: 3, Ejection: '1s', MaxEjection: '30s', EjectOn5xx: false },
  retry: { Statuses: [502, 503, 504], Attempts: 3, Budget: 20 },
  limits: { MaxConnections: 0, MaxPending: 0 },
} as const satisfies { health: HealthCheck; passive: Passive; retry: Retry; limits: Limits }

/** A named extra route on a server's address (virtual hosting). */
export interface Route extends Policy {
  /** Unique on its server, `[a-z0-9][a-z0-9_.-]{0,62}`; `default` is reserved for the server's own route. */
  name: string
  filter: Filter
  upstreams: Member[]
  fallbacks: Member[]
}

/** A certificate chain and its private key, as PEM files on the balancer's host. */
export interface CertFiles {
  /** The certificate, then its intermediates (leaf first). Relative paths resolve against the working directory. */
  CertFile: string
  /** The private key of the first certificate in CertFile. */
  KeyFile: string
}

/**
 * TLS on a server's address (src/model/tls.ts has the bounds). Present, even
 * empty (`{}`), the address speaks HTTPS; absent, plain HTTP.
 */
export interface Tls {
  /** Certificate files; the first is the default (no SNI, or a name no certificate covers). */
  Certificates: CertFiles[]
  /** ALPN protocols offered, in preference order: `h2`, `http/1.1`. Absent: both, h2 first. */
  Alpn?: string[]
  /** A certificate for these hosts ordered (and renewed) from the ACME CA; absent: none. */
  Acme?: Acme
  /**
   * The merge's output only (never read from input, stored or shown): the
   * certificates discovered containers and services ask for with
   * balancer.tls=true, one group each, so each is ordered and renewed on
   * its own.
   */
  Labelled?: Acme[]
}

/** What to order from the ACME CA (src/tls/acme/). */
export interface Acme {
  /** DNS names, no wildcard: one certificate names them all (the first is its name in the store). */
  Hosts: string[]
  /** The account's contact; '' for none. */
  Email: string
  /** How the CA validates: `http-01` (port 80 of every host) or `tls-alpn-01` (port 443). */
  Challenge: 'http-01' | 'tls-alpn-01'
}

/**
 * A listening address with its default route (the seed's single-filter form)
 * and any number of extra named routes.
 */
export interface Server extends Policy {
  /** As written by the user: `:8080`, `0.0.0.0:80`, `127.0.0.1:8080`, `[::1]:8080`. */
  address: string
  /** Absent: plain HTTP. */
  tls?: Tls
  /**
   * What a plain (non-TLS) address speaks: `http/1.1`, and `h2c` (HTTP/2
   * with prior knowledge) when listed. Absent: `http/1.1` only. A TLS
   * address chooses by ALPN (tls.Alpn) instead.
   */
  Protocols?: string[]
  filter: Filter
  upstreams: Member[]
  fallbacks: Member[]
  routes: Route[]
}

/** The whole desired configuration held by the store. */
export interface Config {
  servers: Server[]
}

declare const validated: unique symbol

/**
 * A Config that passed every rule of the model: field rules, same filters on
 * one server, listen address clashes. Only the parser (parse.ts) makes one;
 * the stores, the merge, the compiler and the workers take this type and do
 * not check again. A ValidConfig is never mutated: an edit builds new objects
 * and goes through the parser's parseEdit.
 */
export type ValidConfig = Config & { readonly [validated]: true }

export const ROUTE_DEFAULT = 'default'

/** `target-port`, the key the REST API and the seed's fallback map use. */
export function upstreamKey(u: { Target: string; Port: number }): string {
  return `${u.Target}-${u.Port}`
}
