// The live state of the data plane, typed, for the API: upstream health and
// counters, listeners, in-flight requests, and the workers, read
// synchronously from the latest figures (with workers, pushed every
// statsMs). Desired state lives in control.ts; this is what the engine
// reports about serving it (CONVENTIONS: desired config and live state live
// apart). Metrics and the dashboard take a fresh reading instead
// (observability/sample.ts).

import type { EngineStats, UpstreamState, UpstreamStats } from '../engine/types.ts'
import type { WorkerStatus } from '../workers/group.ts'

export type { EngineStats, UpstreamState, UpstreamStats, WorkerStatus }

export interface PlaneView {
  /**
   * The engine's figures: listeners, in-flight requests and every upstream it
   * knows (`UpstreamStats.key` is `target:port`, lower-cased, IPv6 in
   * brackets). With workers, merged over them and at most their stats
   * period old; an upstream's state is the most severe any worker reports.
   */
  engine(): EngineStats
  /** One entry per worker with --workers N > 1; null when the engine runs in this process. */
  workers(): readonly WorkerStatus[] | null
}

/** The view of an in-process Engine or a WorkerGroup (whichever has workers()). */
export function planeViewOf(plane: { stats(): EngineStats; workers?(): WorkerStatus[] }): PlaneView {
  return {
    engine: () => plane.stats(),
    workers: () => plane.workers?.() ?? null,
  }
}
