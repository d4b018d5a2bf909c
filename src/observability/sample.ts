// One reading of the whole data plane, in the main process: the engine's
// stats and traffic counters summed over every worker, and each worker's
// process figures. Metrics scrapes and the dashboard's sampler read this;
// nothing here runs per request.

import type { Engine } from '../engine/engine.ts'
import type { Traffic } from '../engine/meter.ts'
import type { EngineStats } from '../engine/types.ts'
import type { WorkerGroup } from '../workers/group.ts'
import { mergeStats, mergeTraffic } from '../workers/stats.ts'
import type { AccessLog } from './access-log.ts'

export interface WorkerUsage {
  id: number
  pid: number
  rssBytes: number
  cpuSeconds: number
}

export interface PlaneSample {
  /** Epoch ms when it was taken. */
  at: number
  stats: EngineStats
  traffic: Traffic
  /** Empty when the engine runs in the main process. */
  workers: WorkerUsage[]
  /** Access log lines written and dropped, every process summed; null when the access log is off. */
  accessLog: { lines: number; dropped: number } | null
}

export type Sampler = () => Promise<PlaneSample>

/** The engine in this process: a synchronous read. */
export function engineSampler(engine: Engine, log: AccessLog | null): Sampler {
  return () =>
    Promise.resolve({
      at: Date.now(),
      stats: engine.stats(),
      traffic: engine.traffic(),
      workers: [],
      accessLog: log === null ? null : { lines: log.lines, dropped: log.dropped },
    })
}

/** Every worker asked for a fresh reading, then summed. */
export function groupSampler(group: WorkerGroup, accessLogOn: boolean): Sampler {
  return async () => {
    const got = (await group.sample()).filter((x) => x !== null)
    let lines = 0
    let dropped = 0
    for (const g of got) {
      lines += g.sample.logLines
      dropped += g.sample.logDropped
    }
    return {
      at: Date.now(),
      stats: mergeStats(got.map((g) => g.sample.stats)),
      traffic: mergeTraffic(got.map((g) => g.sample.traffic)),
      workers: got.map((g) => ({ id: g.id, pid: g.pid, rssBytes: g.sample.rssBytes, cpuSeconds: g.sample.cpuSeconds })),
      accessLog: accessLogOn ? { lines, dropped } : null,
    }
  }
}
