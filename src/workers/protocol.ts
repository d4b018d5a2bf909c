// Messages between the primary and its engine workers, over the IPC channel
// of child_process.fork (JSON serialization: everything here is plain data).
//
// The primary never sends a RoutingSnapshot: it holds Maps, Sets and frozen
// records, and will hold pre-rendered Buffers, none of which survive the
// channel as themselves. It sends the ValidConfig and the version, and the
// worker runs the same pure compile(): same input, same snapshot. The config
// was checked once, by the primary's parser; the worker trusts its primary
// and checks nothing again.
//
// A config goes whole to a worker that holds none, and otherwise as a
// ConfigEdit of the config the worker holds: the servers it keeps by index,
// the others whole. The worker rebuilds the config with its own server
// objects for the kept ones, so its compile works by difference (one server
// of 1,000 compiled, one listener rebuilt) and the channel carries the
// servers that changed, not 10 MiB of JSON per write.

import type { Server, ValidConfig } from '../model/types.ts'
import type { Problem } from '../model/errors.ts'
import type { AcmeChallenges, CertEntry, EngineOptions, EngineStats } from '../engine/types.ts'
import type { Traffic } from '../engine/meter.ts'
import type { CheckResult } from '../health/checker.ts'
import type { StatsDelta } from './stats-delta.ts'

export type WorkerEngineOptions = Omit<EngineOptions, 'log' | 'accessLog'>

/** A worker's access log: its own buffered, append-mode descriptor on the same file (or its stdout). */
export interface WorkerAccessLog {
  /** A file path, or '-' for standard output. */
  target: string
  sample: number
}

/** Everything a worker counts, read at one moment. */
export interface WorkerSample {
  stats: EngineStats
  traffic: Traffic
  rssBytes: number
  cpuSeconds: number
  /** Access log lines written and dropped by this worker. */
  logLines: number
  logDropped: number
}

export type ToWorker =
  /** probes: this worker runs the active health checks and reports each result (`check`); the others follow. */
  | { t: 'init'; id: number; logLevel: string; engine: WorkerEngineOptions; statsMs: number; graceMs: number; accessLog: WorkerAccessLog | null; probes: boolean }
  /** Results of the probing worker's checks, to adopt (a worker that follows); not answered. */
  | { t: 'checks'; results: CheckResult[] }
  /** Answer with a fresh `sample` carrying the same seq (a scrape wants exact counts, not the last push). */
  | { t: 'sample'; seq: number }
  /** Reopen the access log file (logrotate moved it). */
  | { t: 'reopen' }
  /** Rate limits are shared by `n` engines (Engine.setLimitShare); no answer. */
  | { t: 'share'; n: number }
  /** Drain (on) or restore an upstream by key; no answer. */
  | { t: 'drain'; key: string; on: boolean }
  /** Apply this config (or this edit of the config the worker holds) as snapshot `version`; answered by `applied` or `refused` with the same seq. */
  | { t: 'apply'; seq: number; config: ValidConfig; version: number }
  | { t: 'apply'; seq: number; edit: ConfigEdit; version: number }
  /** The certificates TLS listeners choose from (before the apply that needs them); not answered. */
  | { t: 'certs'; certs: CertEntry[] }
  /** The pending ACME challenges every worker answers; not answered. */
  | { t: 'challenges'; challenges: AcmeChallenges }
  /** Go back to the snapshot served before apply `seq` (another worker refused it); answered by `applied`. */
  | { t: 'rollback'; seq: number }
  /** Stop accepting (answered by `refusing`), drain within graceMs, exit 0. */
  | { t: 'shutdown'; graceMs: number }

/** A config as an edit of the one a worker holds (the config of snapshot `base`). */
export interface ConfigEdit {
  /** The version of the config the worker holds; a worker holding another refuses the edit. */
  base: number
  /** Each server: its index among the held config's servers (the same server), or the server. */
  servers: Array<number | Server>
}

/** The edit that turns `held` into `next`: every server of `next` that is one of held's (the same object) by its index. */
export function configEdit(held: ValidConfig, heldVersion: number, next: ValidConfig): ConfigEdit {
  const index = new Map<Server, number>()
  held.servers.forEach((s, i) => index.set(s, i))
  return { base: heldVersion, servers: next.servers.map((s) => index.get(s) ?? s) }
}

export interface WireError {
  code: string
  message: string
  problems: Problem[]
}

export type FromWorker =
  | { t: 'ready' }
  /** `stats`: by difference from the worker's previous stats (stats-delta.ts). */
  | { t: 'applied'; seq: number; stats: StatsDelta }
  | { t: 'refused'; seq: number; error: WireError }
  | { t: 'stats'; stats: StatsDelta }
  | { t: 'sample'; seq: number; sample: WorkerSample }
  | { t: 'refusing' }
  /** One completed active check (the probing worker only). */
  | { t: 'check'; result: CheckResult }
