// Active health checks: one loop per (upstream, probe) pair that the current
// snapshot references (route tiers and fallbacks of routes with a check).
// Driven by the engine: ensure() adds the pairs of the listeners being
// applied (their first check starts at once), retainOnly() stops the pairs
// the applied snapshot no longer references and hands the kept ones their
// new plan; given the listeners that changed, both look at those alone (a
// write that changes one server of 1,000 looks at that server's pairs). A pair's state outlives snapshots: a reload that keeps the pair (same
// target, same probe) keeps its state even when interval, timeout, rise or
// fall change; a changed probe is a new pair and starts pending.
//
// When several routes probe one upstream the same way, the pair runs once,
// on the plan with the shortest interval (first such route on a tie).
//
// With --workers N, one worker probes (mode 'probe', onResult set) and the
// others follow (mode 'follow'): they hold the same pairs, run no probe, and
// adopt() each result the probing worker reports through the primary. So an
// upstream sees one probe per interval whatever N is, and every worker picks
// by the same state. Passive ejection stays local to each worker; an adopted
// passing check readmits an ejected upstream there as a local one does.

import type { CheckPlan, ListenerPlan, RoutingSnapshot } from '../compiler/snapshot.ts'
import { probe } from './probe.ts'
import type { ProbeTarget } from './probe.ts'
import type { SecureContext } from 'node:tls'
import { CheckState, Health } from './state.ts'

export interface CheckEvents {
  /** The pair's state changed from `before` to `cs.state` (a check of this process: a follower is not told). */
  changed(cs: CheckState, before: Health): void
  /** A check passed (every pass, not only on a change; a follower: every adopted pass). */
  passed(cs: CheckState): void
}

/** One completed check as a follower adopts it: the pair and its whole state after the check (plain data). */
export interface CheckResult {
  /** The pair: upstream key and probe (pairId). */
  id: string
  state: Health
  streak: number
  lastOk: boolean
  lastResult: string | null
  lastAt: number
}

export interface CheckerOptions {
  /** 'probe' (default): run the checks; 'follow': run none, adopt() results. */
  mode?: 'probe' | 'follow'
  /** Every completed check of this process, for the followers. */
  onResult?: (r: CheckResult) => void
  /** The client context https upstreams are checked over (the engine's, with its CAs). */
  tls?: () => SecureContext
}

/** Checks start within ±JITTER of their interval, so many upstreams do not fire together. */
const JITTER = 0.1

interface Wanted {
  key: string
  target: ProbeTarget
  plan: CheckPlan
}

/** A pair's identity: the upstream's key and the probe's text. */
export function pairId(key: string, probeText: string): string {
  return `${key}\n${probeText}`
}

/** Every pair one listener references, with the plan it runs on (its first route with the shortest interval); `tls` is what https upstreams are checked over. */
function wantedIn(l: ListenerPlan, tls: (() => SecureContext) | null): Map<string, Wanted> {
  const out = new Map<string, Wanted>()
  for (const r of l.routes) {
    const plan = r.check
    if (plan === null) continue
    for (const tiers of [r.tiers, r.fallbacks]) {
      for (const t of tiers) {
        for (const ref of t.targets) {
          const id = pairId(ref.key, plan.probe)
          const have = out.get(id)
          if (have !== undefined && have.plan.intervalMs <= plan.intervalMs) continue
          const authority = ref.tls ? ref.key.slice('https://'.length) : ref.key
          out.set(id, { key: ref.key, target: { host: ref.host, port: ref.port, authority, tls: ref.tls && tls !== null ? tls() : null }, plan })
        }
      }
    }
  }
  return out
}

export class Checker {
  readonly #events: CheckEvents
  readonly #follow: boolean
  readonly #onResult: ((r: CheckResult) => void) | null
  readonly #pairs = new Map<string, CheckState>()
  readonly #targets = new Map<CheckState, ProbeTarget>()
  /** The pairs each listener of the retained snapshot references, and the listeners referencing each pair. */
  readonly #wants = new Map<string, Map<string, Wanted>>()
  readonly #users = new Map<string, Set<string>>()
  /** Pairs ensure() started since the last retain (a refused apply's are stopped by the retain that follows). */
  readonly #fresh = new Set<string>()
  #closed = false
  readonly #tls: (() => SecureContext) | null

  constructor(events: CheckEvents, o: CheckerOptions = {}) {
    this.#events = events
    this.#follow = o.mode === 'follow'
    this.#onResult = o.onResult ?? null
    this.#tls = o.tls ?? null
  }

  /**
   * A follower takes a check result of the probing process. A result for a
   * pair it does not hold (yet), or not newer than what it has, changes nothing.
   */
  adopt(r: CheckResult): void {
    const cs = this.#pairs.get(r.id)
    if (cs === undefined || cs.stopped || r.lastAt <= cs.lastAt) return
    cs.state = r.state
    cs.streak = r.streak
    cs.lastOk = r.lastOk
    cs.lastResult = r.lastResult
    cs.lastAt = r.lastAt
    if (r.lastOk) this.#events.passed(cs)
  }

  /** The state of a pair that ensure() has added; undefined when not checked. */
  get(key: string, probeText: string): CheckState | undefined {
    return this.#pairs.get(pairId(key, probeText))
  }

  /** Every running pair grouped by upstream key, for stats. */
  byKey(): Map<string, CheckState[]> {
    const out = new Map<string, CheckState[]>()
    for (const cs of this.#pairs.values()) {
      const list = out.get(cs.key)
      if (list === undefined) out.set(cs.key, [cs])
      else list.push(cs)
    }
    return out
  }

  /** Adds (and starts) the pairs the listeners reference that are not running yet; touches nothing else. */
  ensure(listeners: Iterable<ListenerPlan>): void {
    if (this.#closed) return
    for (const l of listeners) {
      for (const [id, w] of wantedIn(l, this.#tls)) {
        if (this.#pairs.has(id)) continue
        const cs = new CheckState(w.key, w.plan.probe, w.plan, Health.Pending)
        this.#pairs.set(id, cs)
        this.#targets.set(cs, w.target)
        this.#fresh.add(id)
        if (!this.#follow) this.#run(cs)
      }
    }
  }

  /**
   * Stops every pair `snap` does not reference; the kept ones take its plan
   * (a shorter interval applies now). With `changed` (the listeners whose
   * plan is not the retained snapshot's, SnapshotDiff.listeners), only the
   * pairs those listeners referenced or reference now are looked at.
   */
  retainOnly(snap: RoutingSnapshot, changed?: Iterable<string>): void {
    const affected = new Set(this.#fresh)
    this.#fresh.clear()
    if (changed === undefined) {
      this.#wants.clear()
      this.#users.clear()
      for (const [key, l] of snap.listeners) this.#index(key, wantedIn(l, this.#tls))
      for (const id of this.#pairs.keys()) affected.add(id)
    } else {
      for (const key of changed) {
        for (const id of this.#wants.get(key)?.keys() ?? []) {
          affected.add(id)
          this.#users.get(id)?.delete(key)
        }
        this.#wants.delete(key)
        const l = snap.listeners.get(key)
        if (l === undefined) continue
        const w = wantedIn(l, this.#tls)
        this.#index(key, w)
        for (const id of w.keys()) affected.add(id)
      }
    }
    for (const id of affected) this.#settle(snap, id)
  }

  #index(listener: string, wanted: Map<string, Wanted>): void {
    if (wanted.size === 0) return
    this.#wants.set(listener, wanted)
    for (const id of wanted.keys()) {
      const users = this.#users.get(id)
      if (users === undefined) this.#users.set(id, new Set([listener]))
      else users.add(listener)
    }
  }

  /** A pair no listener references stops; a kept one runs on its users' plan with the shortest interval (the first listener's of `snap` on a tie). */
  #settle(snap: RoutingSnapshot, id: string): void {
    const cs = this.#pairs.get(id)
    const users = this.#users.get(id)
    if (users === undefined || users.size === 0) {
      this.#users.delete(id)
      if (cs !== undefined) this.#stopPair(id, cs)
      return
    }
    if (cs === undefined) return
    let w: Wanted | undefined
    let tie = false
    for (const key of users) {
      const u = this.#wants.get(key)?.get(id)
      if (u === undefined) continue
      if (w === undefined || u.plan.intervalMs < w.plan.intervalMs) {
        w = u
        tie = false
      } else if (u.plan.intervalMs === w.plan.intervalMs) tie = true
    }
    if (w === undefined) return
    if (tie) {
      const best = w.plan.intervalMs
      for (const key of snap.listeners.keys()) {
        const u = users.has(key) ? this.#wants.get(key)?.get(id) : undefined
        if (u !== undefined && u.plan.intervalMs === best) {
          w = u
          break
        }
      }
    }
    const before = cs.plan
    cs.plan = w.plan
    this.#targets.set(cs, w.target)
    if (cs.timer !== null && before !== null && before.intervalMs !== w.plan.intervalMs) {
      clearTimeout(cs.timer)
      this.#schedule(cs)
    }
  }

  /** Stops every check (engine shutdown): no timer or socket is left behind. */
  stop(): void {
    this.#closed = true
    for (const [id, cs] of this.#pairs) this.#stopPair(id, cs)
  }

  /** Runs one check of a pair now, then schedules the next when it completes. */
  #run(cs: CheckState): void {
    cs.timer = null
    const plan = cs.plan
    const target = this.#targets.get(cs)
    if (cs.stopped || plan === null || target === undefined) return
    cs.abort = probe(plan, target, (ok, result) => {
      cs.abort = null
      if (cs.stopped) return
      const before = cs.record(ok, result, Date.now())
      if (before !== cs.state) this.#events.changed(cs, before)
      if (ok) this.#events.passed(cs)
      this.#onResult?.({ id: pairId(cs.key, cs.probe), state: cs.state, streak: cs.streak, lastOk: cs.lastOk, lastResult: cs.lastResult, lastAt: cs.lastAt })
      this.#schedule(cs)
    })
  }

  #schedule(cs: CheckState): void {
    if (cs.stopped || cs.plan === null) return
    const ms = Math.max(1, Math.round(cs.plan.intervalMs * (1 - JITTER + 2 * JITTER * Math.random())))
    cs.timer = setTimeout(() => this.#run(cs), ms)
    cs.timer.unref()
  }

  #stopPair(id: string, cs: CheckState): void {
    cs.stopped = true
    if (cs.timer !== null) clearTimeout(cs.timer)
    cs.timer = null
    if (cs.abort !== null) cs.abort()
    cs.abort = null
    this.#pairs.delete(id)
    this.#targets.delete(cs)
  }
}
