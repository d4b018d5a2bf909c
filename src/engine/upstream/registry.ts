// Live per-endpoint state keyed by TargetRef.key (`target:port`): the idle
// connection pool, in-flight count, requests waiting for a connection
// (Limits.MaxPending), traffic counters and passive health. Active check
// state lives beside it in the Checker (src/health), keyed by key + probe.
// It outlives snapshots: apply() only adds records for new targets and
// retires the ones no snapshot references any more (their idle sockets are
// closed at once; in-flight ones finish, then the record is dropped).

import { isIP } from 'node:net'
import type { H2UpSession } from '../h2/upstream.ts'
import type { CheckStats, EngineLog, UpstreamState, UpstreamStats } from '../types.ts'
import type { UpConn } from './pool.ts'

/** How the balancer talks to an upstream: HTTP/1.1, or HTTP/2 with prior knowledge (h2c) or over TLS (h2: `tls` is set too). */
export const UpProto = { Http1: 0, H2c: 1, H2: 2 } as const

/** A request queued for a connection to an upstream at its MaxConnections (see exchange.ts). */
export interface Waiter {
  /** Still waiting for this upstream (false once it left the queue by timeout or close). */
  waitingOn: Upstream | null
}

export class Upstream {
  readonly key: string
  readonly host: string
  readonly port: number
  /** UpProto: set from the snapshot (a target keeps one protocol while it is configured). */
  protocol: number = UpProto.Http1
  /** HTTP/2 sessions (protocol h2c), each multiplexing up to its peer's MAX_CONCURRENT_STREAMS. */
  readonly h2: H2UpSession[] = []
  /** Idle keep-alive connections, oldest first; taken from the end (LIFO). */
  readonly idle: UpConn[] = []
  /** Connections attached to a request (connecting included). */
  active = 0
  requests = 0
  failures = 0
  consecutiveFailures = 0
  /** Requests sent to this upstream after failing on another (or on a retriable status). */
  retries = 0
  /** Epoch ms until which the balancer skips this upstream; 0 = up. */
  downUntil = 0
  /** Ejections in a row, for the backoff; reset by a response. */
  ejectStreak = 0
  /** Passive ejections so far. */
  ejections = 0
  /** An ejection was logged and its end not yet: the sweep logs the readmission. */
  ejectLogged = false
  /** FIFO of requests waiting for a connection; see exchange.ts wait(). */
  readonly waiters: Waiter[] = []
  retired = false
  /** An operator drained it (Engine.setDrained): no new requests, in-flight ones finish. Outlives snapshots. */
  drained = false

  /** Connections to it speak TLS (pool.ts). */
  readonly tls: boolean
  /** 4 or 6 when `host` is an IP address (connected to as it is), 0 for a host name (resolved per connection). */
  readonly family: number

  constructor(key: string, host: string, port: number, tls = false) {
    this.key = key
    this.host = host
    this.port = port
    this.tls = tls
    this.family = isIP(host)
  }
}

export class Registry {
  readonly #byKey = new Map<string, Upstream>()

  get(key: string): Upstream | undefined {
    return this.#byKey.get(key)
  }

  /** Adds records for new targets and revives retired ones still in the map; existing records keep their state. */
  ensure(targets: ReadonlyMap<string, { host: string; port: number; protocol?: string; tls?: boolean }>): void {
    for (const [key, t] of targets) {
      let up = this.#byKey.get(key)
      if (up === undefined) {
        up = new Upstream(key, t.host, t.port, t.tls === true)
        this.#byKey.set(key, up)
      } else up.retired = false
      up.protocol = t.protocol === 'h2c' ? UpProto.H2c : t.protocol === 'h2' ? UpProto.H2 : UpProto.Http1
    }
  }

  /** Retires every record not in `targets`: idle sockets closed now, the record dropped once nothing is in flight. */
  retireExcept(targets: ReadonlyMap<string, unknown>): void {
    for (const [key, up] of this.#byKey) if (!targets.has(key)) this.#retire(key, up)
  }

  /** Retires the records of `keys` (targets no snapshot references any more), as retireExcept does. */
  retire(keys: Iterable<string>): void {
    for (const key of keys) {
      const up = this.#byKey.get(key)
      if (up !== undefined) this.#retire(key, up)
    }
  }

  #retire(key: string, up: Upstream): void {
    up.retired = true
    closeIdle(up)
    if (up.active === 0 && up.waiters.length === 0) this.#byKey.delete(key)
  }

  /**
   * Closes pooled connections idle past their deadline; drops retired records
   * with nothing in flight; logs the end of ejections that ran out.
   */
  sweep(now: number, log: EngineLog): void {
    for (const [key, up] of this.#byKey) {
      if (up.ejectLogged && up.downUntil <= now) {
        up.ejectLogged = false
        log.info({ upstream: key, ejections: up.ejections }, 'upstream readmitted: ejection over')
      }
      const idle = up.idle
      let k = 0
      while (k < idle.length && (idle[k] as UpConn).idleDeadline <= now) k++
      if (k > 0) for (const uc of idle.splice(0, k)) uc.sock.destroy()
      if (up.retired && up.active === 0 && up.waiters.length === 0) this.#byKey.delete(key)
    }
  }

  closeAllIdle(): void {
    for (const up of this.#byKey.values()) closeIdle(up)
  }

  /**
   * One entry per record. `state`: draining (retired, or drained by an operator) > ejected > unhealthy
   * (some active check says so) > pending (some check has not passed yet) >
   * healthy. `checks(key)` gives the active checks probing an upstream.
   * `keys`: only those records (a key with no record is left out).
   */
  stats(now: number, checks: (key: string) => CheckStats[], keys?: Iterable<string>): UpstreamStats[] {
    const out: UpstreamStats[] = []
    for (const up of keys === undefined ? this.#byKey.values() : this.#only(keys)) {
      const down = up.downUntil > now
      const cs = checks(up.key)
      let state: UpstreamState = 'healthy'
      if (up.retired || up.drained) state = 'draining'
      else if (down) state = 'ejected'
      else if (cs.some((c) => c.state === 'unhealthy')) state = 'unhealthy'
      else if (cs.some((c) => c.state === 'pending')) state = 'pending'
      out.push({
        key: up.key,
        host: up.host,
        port: up.port,
        state,
        ejectedUntil: down ? up.downUntil : null,
        checks: cs,
        active: up.active,
        idle: up.idle.length,
        pending: up.waiters.length,
        requests: up.requests,
        failures: up.failures,
        consecutiveFailures: up.consecutiveFailures,
        retries: up.retries,
        ejections: up.ejections,
      })
    }
    return out
  }

  *#only(keys: Iterable<string>): Iterable<Upstream> {
    for (const key of keys) {
      const up = this.#byKey.get(key)
      if (up !== undefined) yield up
    }
  }
}

function closeIdle(up: Upstream): void {
  for (const uc of up.idle.splice(0)) uc.sock.destroy()
}
