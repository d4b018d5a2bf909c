// The engine's public contract. The engine imports nothing from store,
// sources, admin, fastify or dockerode: it is handed snapshots and options.

/** The subset of pino's logger the engine uses. */
export interface EngineLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export interface EngineOptions {
  /** Upstream TCP connect timeout. Default 5000. */
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
  /** Idle upstream connections kept per upstream. Default 256. */
  maxIdlePerUpstream: number
  /** A request body up to this size is kept so the request can be retried on another upstream. Default 65536. */
  retryBodyBytes: number
  log: EngineLog
}

export const DEFAULT_ENGINE_OPTIONS: Omit<EngineOptions, 'log'> = {
  connectTimeoutMs: 5000,
  headersTimeoutMs: 10000,
  idleTimeoutMs: 60000,
  responseTimeoutMs: 60000,
  upstreamIdleMs: 30000,
  maxHeaderBytes: 32768,
  maxIdlePerUpstream: 256,
  retryBodyBytes: 65536,
}

export interface UpstreamStats {
  key: string
  host: string
  port: number
  /** `up`, or `down` while passively ejected after failures. */
  state: 'up' | 'down'
  downUntil: number | null
  active: number
  idle: number
  requests: number
  failures: number
  consecutiveFailures: number
}

export interface ListenerStats {
  key: string
  /** Bound port (useful when 0 was asked). */
  port: number
  connections: number
  draining: boolean
}

export interface EngineStats {
  snapshotVersion: number
  listeners: ListenerStats[]
  upstreams: UpstreamStats[]
  inFlight: number
}
