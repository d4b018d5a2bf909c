// The data plane's public face: reconcile listeners to snapshots, drain,
// report. Everything per request lives in http1/; this file runs on apply,
// shutdown, stats and the timer sweep.
//
// Active checks run in src/health, owned here: a snapshot's (target, probe)
// pairs are added before its runtimes are built (each member's check state
// is resolved then, so pick() reads a field) and the pairs it no longer
// references are stopped once it is in place. Every change of an upstream's
// state is logged once: check transitions here, ejections and readmissions
// in passive.ts and the registry's sweep.
//
// Timers: one coarse interval per engine (the sweep) checks every client
// connection's single deadline field and the idle pools, instead of a timer
// per socket or per request. Its period is a quarter of the shortest timeout,
// between 10 and 250 ms, so a timeout fires within +25% of its value.

import type { ListenerPlan, RoutingSnapshot } from '../compiler/snapshot.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { Checker } from '../health/checker.ts'
import type { CheckEvents, CheckResult } from '../health/checker.ts'
import { HEALTH_NAMES, Health } from '../health/state.ts'
import type { CheckState } from '../health/state.ts'
import { EngineCtx } from './context.ts'
import { serve } from './accept.ts'
import { PARTS, loadParts } from './parts.ts'
import { Timer, drainConn, onDeadline } from './http1/conn.ts'
import type { ClientConn } from './http1/conn.ts'
import type { RouteRuntime } from './lb/pick.ts'
import { buildRuntimes } from './lb/runtimes.ts'
import type { ListenerRuntime } from './lb/runtimes.ts'
import { Listener, bindServer } from './listener.ts'
import { firstChecks } from './first-checks.ts'
import { acceptStats, batchAccepts } from './accept-batch.ts'
import { budgetShortfall, currentBudget, defaultReserve, raiseDescriptorLimit } from './fd-budget.ts'
import type { DescriptorBudget } from './fd-budget.ts'
import { CODE_CLASSES, DURATION_BUCKETS } from './meter.ts'
import type { Tally, Traffic } from './meter.ts'
import type { SecureContext } from 'node:tls'
import { CertSet } from './tls/certs.ts'
import type { BuiltCert } from './tls/certs.ts'
import { tlsRuntime } from './tls/sni.ts'
import type { TlsRuntime } from './tls/sni.ts'
import { TicketKeys } from './tls/tickets.ts'
import type { AcmeChallenges, CertEntry, CheckStats, EngineOptions, EngineStats } from './types.ts'
import { readmit } from './upstream/passive.ts'

const NO_SNAPSHOT: RoutingSnapshot = Object.freeze({ version: 0, listeners: new Map(), targets: new Map() })

/** The TLS runtime of every TLS listener of `listeners` with the certificates of `set`; throws E_TLS_CERT for a missing one. */
function tlsRuntimes(listeners: ReadonlyMap<string, ListenerPlan>, certs: CertSet, set?: ReadonlyMap<string, BuiltCert>): Map<string, TlsRuntime> {
  const out = new Map<string, TlsRuntime>()
  for (const [key, plan] of listeners) {
    if (plan.tls !== null)
      out.set(
        key,
        tlsRuntime(plan.tls, certs.resolve(plan.tls, key, set), certs.stored(set), () => certs.none()),
      )
  }
  return out
}

function checkStats(cs: CheckState): CheckStats {
  return {
    probe: cs.probe,
    state: HEALTH_NAMES[cs.state],
    lastResult: cs.lastResult,
    lastAt: cs.lastAt === 0 ? null : cs.lastAt,
    streak: cs.streak,
  }
}

const BUDGET_TTL_MS = 5000

/**
 * traffic() of an upstream that has had no request: shared, never written
 * (readers sum or copy them), so an idle upstream costs no arrays per
 * reading; most of 50,000 upstreams are idle at any time.
 */
const ZERO_CODES: number[] = Object.freeze(new Array<number>(CODE_CLASSES.length).fill(0)) as number[]
const ZERO_BUCKETS: number[] = Object.freeze(new Array<number>(DURATION_BUCKETS.length + 1).fill(0)) as number[]

function idle(t: Tally): boolean {
  for (let i = 0; i < t.codes.length; i++) if (t.codes[i] !== 0) return false
  return true
}

export class Engine {
  readonly #ctx: EngineCtx
  readonly #checker: Checker
  #snap: RoutingSnapshot | null = null
  readonly #listeners = new Map<string, Listener>()
  /** Removed listeners whose connections are still finishing. */
  readonly #draining = new Set<Listener>()
  /** RouteRuntime by route id: balancing positions survive snapshots that leave a route's tiers and probe alone; retry budgets survive every snapshot. */
  #routes = new Map<string, RouteRuntime>()
  #queue: Promise<void> = Promise.resolve()
  #sweeper: NodeJS.Timeout | null = null
  #stopping: Promise<void> | null = null
  readonly #tickMs: number
  readonly #tickets: TicketKeys
  readonly #certs: CertSet
  #budget: { at: number; budget: DescriptorBudget } | null = null

  constructor(opts: EngineOptions) {
    this.#ctx = new EngineCtx(opts)
    const ctx = this.#ctx
    const events: CheckEvents = {
      changed(cs, before) {
        const log = ctx.opts.log
        const obj = { upstream: cs.key, probe: cs.probe, result: cs.lastResult, streak: cs.streak }
        if (cs.state === Health.Unhealthy) log.warn(obj, 'upstream unhealthy: active check failing')
        else if (before === Health.Pending) log.info(obj, 'upstream healthy: first active check passed')
        else log.info(obj, 'upstream healthy again: active check passing')
      },
      passed(cs) {
        const up = ctx.registry.get(cs.key)
        if (up !== undefined && up.downUntil !== 0) readmit(up, Date.now(), ctx.opts.log, cs.probe)
      },
    }
    this.#checker = new Checker(events, { mode: opts.checks ?? 'probe', ...(opts.onCheck === undefined ? {} : { onResult: opts.onCheck }), tls: () => this.#ctx.upstreamTls })
    const shortest = Math.min(opts.connectTimeoutMs, opts.headersTimeoutMs, opts.idleTimeoutMs, opts.responseTimeoutMs, opts.upstreamIdleMs)
    this.#tickMs = Math.max(10, Math.min(250, Math.floor(shortest / 4)))
    this.#tickets = new TicketKeys(opts.ticketSecret)
    const tickets = this.#tickets
    this.#certs = new CertSet(() => tickets.keyAt(Date.now()))
    const lim = raiseDescriptorLimit()
    if (lim !== null) opts.log.info({ limit: lim[0], hard: lim[1], reserve: opts.fdReserve ?? defaultReserve(lim[0]), batchAccept: batchAccepts() }, 'descriptor limit')
  }

  /** Check results of the engine that probes (with checks: 'follow'); see health/checker.ts. */
  adoptChecks(results: readonly CheckResult[]): void {
    for (const r of results) this.#checker.adopt(r)
  }

  /**
   * Replaces the pending ACME challenges (every instance answers them,
   * whichever ordered): http-01 tokens on plain listeners, tls-alpn-01
   * certificates on TLS listeners. Nothing is looked up while there are none.
   */
  setChallenges(c: AcmeChallenges): void {
    const ctx = this.#ctx
    const tokens = new Map<string, { keep: Buffer; close: Buffer }>()
    for (const [token, keyAuth] of c.http01) {
      const head = `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${Buffer.byteLength(keyAuth)}\r\n`
      tokens.set(token, { keep: Buffer.from(`${head}\r\n${keyAuth}`), close: Buffer.from(`${head}connection: close\r\n\r\n${keyAuth}`) })
    }
    const alpn = new Map<string, object>()
    const alpnSc = new Map<string, SecureContext>()
    for (const a of c.tlsAlpn01) {
      try {
        const sc = process.getBuiltinModule('node:tls').createSecureContext({ cert: a.cert, key: a.key })
        alpn.set(a.host.toLowerCase(), sc.context as object)
        alpnSc.set(a.host.toLowerCase(), sc)
      } catch (err) {
        ctx.opts.log.error({ host: a.host, err: (err as Error).message }, 'ACME tls-alpn-01 certificate refused')
      }
    }
    ctx.acmeTokens = tokens
    ctx.acmeAlpn = alpn
    ctx.acmeAlpnSc = alpnSc
  }

  /**
   * Replaces the certificates TLS listeners choose from (a renewed file, a
   * new upload). Every entry is built first; one OpenSSL refuses, or a
   * listener left without one it serves, throws E_TLS_CERT and changes
   * nothing. New handshakes use the new set; established connections keep
   * theirs.
   */
  setCertificates(entries: readonly CertEntry[]): void {
    const next = this.#certs.build(entries)
    const runtimes = this.#snap === null ? new Map<string, TlsRuntime>() : tlsRuntimes(this.#snap.listeners, this.#certs, next)
    this.#certs.commit(next)
    for (const [key, l] of this.#listeners) l.tls = runtimes.get(key) ?? null
  }

  /**
   * Reconciles listeners to `snap`: new addresses are bound first (any
   * failure closes those and rejects with E_LISTEN, changing nothing), then
   * every kept listener's plan is swapped by one assignment, then removed
   * listeners stop accepting and drain. Applies run one at a time.
   */
  apply(snap: RoutingSnapshot): Promise<void> {
    const run = this.#queue.then(() => this.#apply(snap))
    this.#queue = run.catch(() => undefined)
    return run
  }

  /**
   * A snapshot compiled by difference from the one serving (its `diff`
   * names that one as base) is applied by difference: only the listeners,
   * targets and check pairs it names are looked at, so a write that
   * changes one server of 1,000 costs that server, not the 51,000
   * upstreams. Any other snapshot is applied whole. Both end in the same
   * state; a refused apply goes back to the serving snapshot whole.
   */
  async #apply(snap: RoutingSnapshot): Promise<void> {
    if (snap === this.#snap) return
    const ctx = this.#ctx
    if (ctx.closing) throw new BalancerError(ErrorCode.Internal, 'the engine is shutting down; no snapshot can be applied')
    const prev = this.#snap
    const diff = snap.diff !== undefined && prev !== null && snap.diff.base === prev ? snap.diff : null
    // The listeners whose runtime is built: those the diff names, or all.
    const plans = new Map<string, ListenerPlan>()
    if (diff === null) for (const [key, plan] of snap.listeners) plans.set(key, plan)
    else
      for (const key of diff.listeners) {
        const plan = snap.listeners.get(key)
        if (plan !== undefined) plans.set(key, plan)
      }
    // HTTP/2 and TLS load with the first snapshot that needs them, before anything changes.
    await loadParts(plans.values(), diff === null ? snap.targets : diff.addedTargets)
    ctx.registry.ensure(diff === null ? snap.targets : diff.addedTargets)
    this.#checker.ensure(plans.values())
    const routes = new Map<string, RouteRuntime>()
    let runtimes: Map<string, ListenerRuntime>
    let tls: Map<string, TlsRuntime>
    const fresh: Listener[] = []
    const checker = this.#checker
    try {
      this.#checkBudget([...plans.keys()].filter((k) => !this.#listeners.has(k)))
      tls = tlsRuntimes(plans, this.#certs)
      runtimes = buildRuntimes(plans, ctx.registry, (key, probe) => checker.get(key, probe), this.#routes, routes)
      await firstChecks([...runtimes].filter(([key]) => !this.#listeners.has(key)).map(([, rt]) => rt))
      for (const [key, rt] of runtimes) {
        if (this.#listeners.has(key)) continue
        fresh.push(await this.#bind(key, rt, tls.get(key) ?? null))
      }
    } catch (err) {
      for (const l of fresh) {
        void l.stopAccepting()
        for (const c of l.conns) c.sock.destroy()
        for (const p of l.pending) p.abort()
      }
      ctx.registry.retireExcept(prev?.targets ?? NO_SNAPSHOT.targets)
      this.#checker.retainOnly(prev ?? NO_SNAPSHOT)
      if (err instanceof BalancerError) throw err
      throw new BalancerError(ErrorCode.Internal, `cannot apply snapshot ${snap.version}: ${(err as Error).message}`)
    }
    if (ctx.closing) {
      for (const l of fresh) void l.stopAccepting()
      throw new BalancerError(ErrorCode.Internal, 'the engine is shutting down; no snapshot can be applied')
    }
    for (const [key, rt] of runtimes) {
      const l = this.#listeners.get(key)
      if (l === undefined) continue
      l.plan = rt
      l.tls = tls.get(key) ?? null
    }
    for (const l of fresh) this.#listeners.set(l.key, l)
    if (fresh.length > 0) this.#budget = null // counted again with the new listeners on the next stats()
    for (const key of diff === null ? [...this.#listeners.keys()] : diff.listeners) {
      const l = this.#listeners.get(key)
      if (l === undefined || runtimes.has(key)) continue
      this.#listeners.delete(key)
      this.#drain(l)
      ctx.opts.log.info({ listener: key }, 'listener removed; draining its connections')
    }
    if (diff === null) this.#routes = routes
    else {
      for (const key of diff.listeners) for (const r of prev?.listeners.get(key)?.routes ?? []) this.#routes.delete(r.id)
      for (const [id, rt] of routes) this.#routes.set(id, rt)
    }
    if (diff === null) ctx.registry.retireExcept(snap.targets)
    else ctx.registry.retire(diff.removedTargets)
    this.#checker.retainOnly(snap, diff?.listeners)
    this.#snap = snap
    this.#startSweep()
  }

  /** Refuses (E_LISTEN) listeners that would eat the descriptor reserve, before any is bound. */
  #checkBudget(adding: string[]): void {
    if (adding.length === 0) return
    const budget = currentBudget(this.#ctx.opts.fdReserve ?? null)
    this.#budget = { at: Date.now(), budget }
    const short = budgetShortfall(budget, adding.length)
    if (short === null) return
    const what = adding.length === 1 ? (adding[0] as string) : `${adding.length} new addresses (${adding.slice(0, 3).join(', ')}${adding.length > 3 ? ', ...' : ''})`
    throw new BalancerError(
      ErrorCode.Listen,
      `cannot listen on ${what}: ${short}`,
      adding.map((path) => ({ path, message: short })),
    )
  }

  /** The descriptor budget, counted at most every BUDGET_TTL_MS (stats() runs every second). */
  descriptors(): DescriptorBudget {
    const now = Date.now()
    if (this.#budget === null || now - this.#budget.at > BUDGET_TTL_MS) this.#budget = { at: now, budget: currentBudget(this.#ctx.opts.fdReserve ?? null) }
    return this.#budget.budget
  }

  async #bind(key: string, rt: ListenerRuntime, tls: TlsRuntime | null): Promise<Listener> {
    let server
    try {
      server = await bindServer(rt.plan.listen)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
      throw new BalancerError(ErrorCode.Listen, `cannot listen on ${key}: ${code}`, [{ path: key, message: code }])
    }
    const l = new Listener(key, server, rt)
    l.tls = tls
    const ctx = this.#ctx
    // Attached before anything else can run: a connection accepted now is served with this plan.
    serve(server, l, ctx)
    server.on('error', (err) => ctx.opts.log.error({ listener: key, err }, 'listener error'))
    ctx.opts.log.info({ listener: key, port: l.port, tls: tls !== null }, 'listening')
    return l
  }

  #drain(l: Listener): void {
    void l.stopAccepting()
    const h2 = PARTS.h2
    for (const c of l.conns) {
      if (h2 !== null && c instanceof h2.H2Conn) h2.drainH2(c)
      else drainConn(c as ClientConn)
    }
    // A handshake in progress has not sent a request yet: closed like an idle connection.
    for (const p of l.pending) p.abort()
    if (l.conns.size === 0 && l.pending.size === 0) return
    this.#draining.add(l)
    void l.whenEmpty().then(() => this.#draining.delete(l))
  }

  /**
   * Stops accepting everywhere, closes idle connections, lets in-flight
   * requests finish (their responses say `connection: close`), and resolves
   * when every client connection is gone, destroying what is left after graceMs.
   */
  shutdown(graceMs: number): Promise<void> {
    if (this.#stopping !== null) return this.#stopping
    // Stop accepting synchronously, before the caller's next line: a client
    // told "draining" must already be refused.
    const ctx = this.#ctx
    ctx.closing = true
    this.#checker.stop()
    for (const l of this.#listeners.values()) void l.stopAccepting()
    this.#stopping = this.#shutdown(graceMs)
    return this.#stopping
  }

  async #shutdown(graceMs: number): Promise<void> {
    const ctx = this.#ctx
    await this.#queue // an apply in progress settles first (it refuses to add listeners now)
    const all = [...this.#listeners.values(), ...this.#draining]
    for (const l of all) this.#drain(l)
    ctx.registry.closeAllIdle()
    const empty = Promise.all(all.map((l) => l.whenEmpty()))
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs)
    })
    await Promise.race([empty, grace])
    clearTimeout(timer)
    for (const l of all) {
      for (const c of l.conns) c.sock.destroy()
      for (const p of l.pending) p.abort()
    }
    await Promise.all(all.map((l) => l.stopAccepting()))
    ctx.registry.closeAllIdle()
    this.#listeners.clear()
    this.#draining.clear()
    if (this.#sweeper !== null) clearInterval(this.#sweeper)
    this.#sweeper = null
    ctx.verifier.close()
  }

  /**
   * The engine's figures. `keys`: the upstream entries of those keys only
   * (the others are left out), so an answer that needs a few does not build
   * one entry per upstream (51,000 at 10,000 routes).
   */
  stats(keys?: Iterable<string>): EngineStats {
    const now = Date.now()
    const checks = this.#checker.byKey()
    const listeners = [...this.#listeners.values(), ...this.#draining].map((l) => {
      let h2 = 0
      const part = PARTS.h2
      if (part !== null) for (const c of l.conns) if (c instanceof part.H2Conn) h2++
      return {
        key: l.key,
        port: l.port,
        tls: l.tls !== null,
        connections: l.conns.size + l.pending.size,
        protocols: { http1: l.conns.size - h2, h2 },
        draining: l.draining,
      }
    })
    const ctx = this.#ctx
    return {
      snapshotVersion: this.#snap?.version ?? 0,
      listeners,
      upstreams: ctx.registry.stats(now, (key) => (checks.get(key) ?? []).map(checkStats), keys),
      inFlight: ctx.inFlight,
      requests: { http1: ctx.requestsH1, h2: ctx.requestsH2 },
      descriptors: this.descriptors(),
      accepts: acceptStats(),
    }
  }

  /**
   * Every counter of the meters (meter.ts): the routes of the current
   * snapshot with the upstreams they reference now, and every listener.
   * Read on demand (a scrape, the dashboard's sampler), never per request.
   */
  traffic(): Traffic {
    const routes = [...this.#routes.values()].map((rt) => {
      const upstreams = [...rt.tallies, rt.meter.none].map((t) =>
        idle(t) ? { key: t.key, codes: ZERO_CODES, buckets: ZERO_BUCKETS, sum: 0 } : { key: t.key, codes: Array.from(t.codes), buckets: Array.from(t.buckets), sum: t.sum },
      )
      return { id: rt.id, server: rt.plan.server, route: rt.plan.name, upstreams }
    })
    const listeners = [...this.#listeners.values()].map((l) => ({
      key: l.key,
      server: l.plan.plan.routes[0]?.server ?? l.key,
      codes: Array.from(l.refused),
    }))
    return { routes, listeners }
  }

  /**
   * Drains (on) or restores (off) the upstream `key` (`host:port`) in every
   * route: pick() skips a drained upstream, in-flight requests finish. Kept
   * on the live record, so it outlives reloads while the upstream stays in
   * the configuration. Returns false when no such upstream is configured.
   */
  setDrained(key: string, on: boolean): boolean {
    const up = this.#ctx.registry.get(key)
    if (up === undefined || up.retired) return false
    if (up.drained !== on) this.#ctx.opts.log.info({ upstream: key }, on ? 'upstream drained by an operator' : 'upstream back in service after a drain')
    up.drained = on
    return true
  }

  /**
   * Rate limits: `n` engines enforce each route's limit together (live
   * instances sharing the store times worker processes each); this one
   * allows Average / n, with Burst / n (at least 1) at once.
   */
  setLimitShare(n: number): void {
    this.#ctx.limitShare = Math.max(1, Math.floor(n))
  }

  boundPort(listenKey: string): number | null {
    return this.#listeners.get(listenKey)?.port ?? null
  }

  #startSweep(): void {
    if (this.#sweeper !== null) return
    this.#sweeper = setInterval(() => this.#sweep(), this.#tickMs)
    this.#sweeper.unref()
  }

  #sweep(): void {
    const ctx = this.#ctx
    const now = Date.now()
    ctx.now = now
    for (const l of this.#listeners.values()) sweepConns(l, now)
    for (const l of this.#draining) sweepConns(l, now)
    ctx.registry.sweep(now, ctx.opts.log)
    if (this.#tickets.due(now)) this.#certs.setTicketKey(this.#tickets.keyAt(now))
  }
}

function sweepConns(l: Listener, now: number): void {
  const h2 = PARTS.h2
  for (const c of l.conns) {
    if (h2 !== null && c instanceof h2.H2Conn) h2.sweepH2(c, now)
    else if ((c as ClientConn).timer !== Timer.None && (c as ClientConn).deadline <= now) onDeadline(c as ClientConn)
  }
  for (const p of l.pending) if (p.deadline <= now) p.abort()
}
