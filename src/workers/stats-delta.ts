// A worker's figures sent by difference. A worker's EngineStats lists every
// upstream it knows (51,000 at 10,000 routes: about 10 MiB of JSON), and it
// pushes them every statsMs and with every apply answer; sent whole, the
// primary spent a fifth of its time parsing them. So a worker sends the
// upstream entries that changed since its previous message and the keys
// gone, and the primary keeps each worker's entries by key.
//
// An apply answer carries only the entries of the targets the apply added
// or removed (StatsSender.applied): the others did not change with the
// apply, and the next periodic delta carries what their counters did.
//
// Both ends stay in step because the IPC channel keeps messages in order:
// every stats message is a delta of the one before, and a sample (whole
// figures, for a scrape) resets both ends to the figures it carries.

import type { RoutingSnapshot } from '../compiler/snapshot.ts'
import type { CheckStats, EngineStats, UpstreamStats } from '../engine/types.ts'

/** EngineStats without its upstreams, the upstream entries that changed and the keys of those gone. */
export interface StatsDelta {
  stats: Omit<EngineStats, 'upstreams'>
  upstreams: UpstreamStats[]
  gone: string[]
}

/** The worker's end: what the primary holds, and the delta that brings it to `now`. */
export class StatsSender {
  /** Each upstream entry the primary holds, with the delta that last saw it (one map, updated in place). */
  readonly #sent = new Map<string, { u: UpstreamStats; seen: number }>()
  #round = 0

  delta(now: EngineStats): StatsDelta {
    const { upstreams, ...stats } = now
    const round = ++this.#round
    const changed: UpstreamStats[] = []
    for (const u of upstreams) {
      const was = this.#sent.get(u.key)
      if (was === undefined) {
        this.#sent.set(u.key, { u, seen: round })
        changed.push(u)
        continue
      }
      if (!sameUpstream(was.u, u)) changed.push(u)
      was.u = u
      was.seen = round
    }
    const gone: string[] = []
    for (const [key, e] of this.#sent) {
      if (e.seen === round) continue
      gone.push(key)
      this.#sent.delete(key)
    }
    return { stats, upstreams: changed, gone }
  }

  /**
   * The delta an apply answer carries: the entries of the targets the
   * snapshot added or removed (its diff from the one served before); a
   * snapshot compiled whole gets a whole delta.
   */
  applied(engine: { stats(keys?: Iterable<string>): EngineStats }, snap: RoutingSnapshot): StatsDelta {
    const diff = snap.diff
    if (diff === undefined) return this.delta(engine.stats())
    const keys = [...diff.addedTargets.keys(), ...diff.removedTargets]
    return this.only(engine.stats(keys), keys)
  }

  /**
   * The delta for the upstreams of `keys` only: `now` holds the entries of
   * those keys the engine has (Engine.stats(keys)), a key without one is
   * gone. The other entries the primary holds stay as they are until the
   * next whole delta. An apply answer sends this for the targets the apply
   * added and removed, instead of building and comparing one entry per
   * upstream (51,000 at 10,000 routes) with every write.
   */
  only(now: EngineStats, keys: Iterable<string>): StatsDelta {
    const { upstreams, ...stats } = now
    const round = this.#round
    const found = new Map<string, UpstreamStats>()
    for (const u of upstreams) found.set(u.key, u)
    const changed: UpstreamStats[] = []
    const gone: string[] = []
    for (const key of keys) {
      const u = found.get(key)
      const was = this.#sent.get(key)
      if (u === undefined) {
        if (was === undefined) continue
        gone.push(key)
        this.#sent.delete(key)
        continue
      }
      if (was === undefined) this.#sent.set(key, { u, seen: round })
      else if (sameUpstream(was.u, u)) continue
      else {
        was.u = u
        was.seen = round
      }
      changed.push(u)
    }
    return { stats, upstreams: changed, gone }
  }

  /** The primary was given `now` whole (a sample). */
  reset(now: EngineStats): void {
    this.#sent.clear()
    for (const u of now.upstreams) this.#sent.set(u.key, { u, seen: this.#round })
  }
}

/** The primary's end: one worker's figures, rebuilt from its deltas. */
export class StatsReceiver {
  #base: Omit<EngineStats, 'upstreams'> | null = null
  readonly #upstreams = new Map<string, UpstreamStats>()
  #whole: EngineStats | null = null

  apply(d: StatsDelta): void {
    this.#base = d.stats
    for (const u of d.upstreams) this.#upstreams.set(u.key, u)
    for (const key of d.gone) this.#upstreams.delete(key)
    this.#whole = null
  }

  /** Whole figures (a sample): the worker's sender was reset to them. */
  set(s: EngineStats): void {
    const { upstreams, ...base } = s
    this.#base = base
    this.#upstreams.clear()
    for (const u of upstreams) this.#upstreams.set(u.key, u)
    this.#whole = s
  }

  /** The worker's latest figures; null before its first message. */
  stats(): EngineStats | null {
    if (this.#base === null) return null
    this.#whole ??= { ...this.#base, upstreams: [...this.#upstreams.values()] }
    return this.#whole
  }
}

/**
 * Field by field, and each check's fields. Every field of UpstreamStats and
 * CheckStats is named here (test/workers/stats-delta.test.ts changes each one
 * in turn): a generic walk over the keys cost 50 ms per delta at 51,000.
 */
function sameUpstream(a: UpstreamStats, b: UpstreamStats): boolean {
  if (
    a.state !== b.state ||
    a.active !== b.active ||
    a.idle !== b.idle ||
    a.pending !== b.pending ||
    a.requests !== b.requests ||
    a.failures !== b.failures ||
    a.consecutiveFailures !== b.consecutiveFailures ||
    a.retries !== b.retries ||
    a.ejections !== b.ejections ||
    a.ejectedUntil !== b.ejectedUntil ||
    a.host !== b.host ||
    a.port !== b.port ||
    a.key !== b.key ||
    a.checks.length !== b.checks.length
  )
    return false
  for (let i = 0; i < a.checks.length; i++) {
    const x = a.checks[i] as CheckStats
    const y = b.checks[i] as CheckStats
    if (x.state !== y.state || x.lastAt !== y.lastAt || x.streak !== y.streak || x.lastResult !== y.lastResult || x.probe !== y.probe) return false
  }
  return true
}
