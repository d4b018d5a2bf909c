// The engine's public contract. The engine imports nothing from store,
// sources, admin, fastify or dockerode: it is handed snapshots and options.

import type { CheckResult } from '../health/checker.ts'
import type { DescriptorBudget } from './fd-budget.ts'

/** The subset of pino's logger the engine uses. */
export interface EngineLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export interface EngineOptions {
  /**
   * Upstream TCP connect timeout. Default 5000. Also the longest a request
   * waits in an upstream's queue for a connection (Limits.MaxPending) before
   * it moves on to the next pick.
   */
  connectTimeoutMs: number
  /** A client's request head must arrive completely within this. Default 10000 (slowloris guard). */
  headersTimeoutMs: number
  /** Idle client keep-alive connection is closed after this. Default 60000. */
  idleTimeoutMs: number
  /** Upstream must send the response head within this after the request was sent. Default 60000. */
  responseTimeoutMs: number
  /** A pooled idle upstream connection is closed after this. Default 30000. */
  upstreamIdleMs: number
  /** Request line + headers limit; over it: 431 (414 for the request line alone). Default 32768. */
  maxHeaderBytes: number
  /** Idle upstream connections kept per upstream (each also closes after upstreamIdleMs). Default 4096. */
  maxIdlePerUpstream: number
  /** A request body up to this size is kept so the request can be retried on another upstream. Default 65536. */
  retryBodyBytes: number
  /**
   * Secret (hex) the TLS session ticket keys are derived from, rotated every
   * hour (tls/tickets.ts). Engines given the same secret resume each
   * other's sessions: the workers of one balancer share one. '' = a random
   * secret of this engine's own.
   */
  ticketSecret: string
  /**
   * CIDRs (`10.0.0.0/8`, `2001:db8::/32`, or a single address) of proxies in
   * front of the balancer whose X-Forwarded-For, X-Real-IP and Forwarded are
   * believed and appended to; from anyone else they are replaced. Default none.
   */
  trustedProxies: readonly string[]
  /**
   * CA certificates (PEM) that upstreams with Scheme `https` are verified
   * against, instead of the system's; '' = the system's CAs.
   */
  upstreamCa: string
  log: EngineLog
  /**
   * Descriptors kept free for client and upstream connections: a snapshot
   * whose new listeners would leave fewer is refused (fd-budget.ts).
   * Null or absent: a quarter of the limit, 64-4096.
   */
  fdReserve?: number | null
  /** Where access log lines go; null (the default) logs nothing and costs nothing per request. */
  accessLog?: AccessLogSink | null
  /**
   * Active health checks: 'probe' (the default) runs them; 'follow' runs none
   * and serves by the results adoptChecks() hands it (the workers but one:
   * health/checker.ts).
   */
  checks?: 'probe' | 'follow'
  /** Every active check this engine completes, for the engines that follow. */
  onCheck?: (r: CheckResult) => void
}

/**
 * The engine's access log output (src/observability/access-log.ts). write()
 * must never block or throw: it buffers, and drops (counting) what it cannot
 * keep.
 */
export interface AccessLogSink {
  /** Fraction of requests logged, 0 < sample <= 1. */
  readonly sample: number
  /** One complete JSON line, without its newline. */
  write(line: string): void
}

/**
 * A certificate the engine may serve, as PEM, handed over with
 * setCertificates(). Wire-safe (plain strings): workers receive them over IPC.
 * Whoever builds them has already checked them (src/tls/).
 */
export interface CertEntry {
  /** TlsPlan's reference to it: `file:<cert>\0<key>` (compiler's certFileId), or `store:<name>` for a certificate kept in the store (every TLS listener may serve those). */
  id: string
  /** The certificate, then its chain. */
  cert: string
  key: string
  /** DNS names it covers, lower-case (`*.example.com` for a wildcard): what SNI selects it by. */
  names: readonly string[]
  /** Epoch ms the certificate expires: among stored certificates naming the same name, the later one is served. */
  notAfter: number
}

export const DEFAULT_ENGINE_OPTIONS: Omit<EngineOptions, 'log'> = {
  connectTimeoutMs: 5000,
  headersTimeoutMs: 10000,
  idleTimeoutMs: 60000,
  responseTimeoutMs: 60000,
  upstreamIdleMs: 30000,
  maxHeaderBytes: 32768,
  maxIdlePerUpstream: 4096,
  retryBodyBytes: 65536,
  ticketSecret: '',
  trustedProxies: [],
  upstreamCa: '',
}

/** What an ACME CA's validation asks of every instance (src/tls/acme/): wire-safe. */
export interface AcmeChallenges {
  /** http-01: token -> key authorization, answered on every plain listener at /.well-known/acme-challenge/<token>. */
  http01: Array<[string, string]>
  /** tls-alpn-01: the challenge certificate per host, served to a handshake offering ALPN acme-tls/1 for that name. */
  tlsAlpn01: Array<{ host: string; cert: string; key: string }>
}

export interface UpstreamStats {
  key: string
  host: string
  port: number
  /**
   * `healthy`; `pending` (an active check applies and none has passed yet:
   * no traffic); `unhealthy` (an active check failed Fall times in a row);
   * `ejected` (passive detection, until `ejectedUntil`); `draining` (no
   * longer in the configuration, requests still in flight).
   */
  state: UpstreamState
  /** Epoch ms when a passive ejection ends; null when not ejected. */
  ejectedUntil: number | null
  /** One entry per distinct active check probing this upstream (routes may differ). */
  checks: CheckStats[]
  /** Connections attached to a request (connecting included). */
  active: number
  idle: number
  /** Requests waiting for a connection (Limits.MaxPending). */
  pending: number
  requests: number
  failures: number
  consecutiveFailures: number
  /** Requests sent again to this upstream after failing on another. */
  retries: number
  /** Passive ejections so far. */
  ejections: number
}

export type UpstreamState = 'healthy' | 'pending' | 'unhealthy' | 'ejected' | 'draining'

export interface CheckStats {
  /** CheckPlan.probe: what is probed, e.g. `http GET  /healthz 200-399` or `tcp`. */
  probe: string
  state: 'pending' | 'healthy' | 'unhealthy'
  /** `200`, `503`, `timeout`, `ECONNREFUSED`, ...; null before the first check. */
  lastResult: string | null
  /** Epoch ms of the last completed check; null before the first. */
  lastAt: number | null
  /** Checks in a row with the same outcome as the last one. */
  streak: number
}

export interface ListenerStats {
  key: string
  /** The address speaks TLS (set by every engine; optional for stats built by hand). */
  tls?: boolean
  /** Bound port (useful when 0 was asked). */
  port: number
  connections: number
  /** Of `connections`, those speaking each protocol (TLS handshakes in progress are in neither). Optional for stats built by hand. */
  protocols?: ProtocolCounts
  draining: boolean
}

/** Per client protocol: `http1` (HTTP/1.0 and 1.1), `h2` (HTTP/2, over TLS or h2c). */
export interface ProtocolCounts {
  http1: number
  h2: number
}

export interface EngineStats {
  snapshotVersion: number
  listeners: ListenerStats[]
  upstreams: UpstreamStats[]
  inFlight: number
  /** Requests (HTTP/2: streams) routed since the engine started, per client protocol. Optional for stats built by hand. */
  requests?: ProtocolCounts
  /** The process's descriptor limit, descriptors open and the reserve (fd-budget.ts); with workers, the worker with the fewest free. */
  descriptors?: DescriptorBudget
  /** Connections taken beyond libuv's one per turn, and descriptor-exhaustion events while accepting (accept-batch.ts). */
  accepts?: { extra: number; exhausted: number }
}
