// Check state of one (upstream, probe) pair: the rise/fall state machine and
// what stats() shows. One record per pair, owned by the Checker and kept
// across snapshots while any route references the pair; the engine's
// balancer reads `state` on every pick (a plain field read, no lookup).

import type { CheckPlan } from '../compiler/snapshot.ts'

export const Health = { Pending: 0, Healthy: 1, Unhealthy: 2 } as const
export type Health = (typeof Health)[keyof typeof Health]

export const HEALTH_NAMES = ['pending', 'healthy', 'unhealthy'] as const

export class CheckState {
  /** TargetRef.key of the upstream probed. */
  readonly key: string
  /** CheckPlan.probe: what is probed. */
  readonly probe: string
  state: Health = Health.Pending
  /** The plan in force: interval, timeout, rise and fall may change without a reset. */
  plan: CheckPlan | null
  /** `200`, `503`, `timeout`, `ECONNREFUSED`, ...; null before the first check. */
  lastResult: string | null = null
  /** Epoch ms of the last completed check; 0 before the first. */
  lastAt = 0
  /** Checks in a row with the same outcome as the last one. */
  streak = 0
  lastOk = false
  /** Next check's timer (null while a check runs, or once stopped). */
  timer: NodeJS.Timeout | null = null
  /** Aborts the check in progress; null when none runs. */
  abort: (() => void) | null = null
  stopped = false

  constructor(key: string, probe: string, plan: CheckPlan | null, state: Health) {
    this.key = key
    this.probe = probe
    this.plan = plan
    this.state = state
  }

  /**
   * Records one check outcome; returns the state before it (equal to
   * `state` when nothing changed). pending -> healthy on the first pass;
   * healthy -> unhealthy after `fall` failures in a row; unhealthy -> healthy
   * after `rise` passes in a row. A pending pair that fails stays pending.
   */
  record(ok: boolean, result: string, now: number): Health {
    const before = this.state
    this.streak = ok === this.lastOk && this.lastAt !== 0 ? this.streak + 1 : 1
    this.lastOk = ok
    this.lastResult = result
    this.lastAt = now
    const plan = this.plan
    const rise = plan === null ? 1 : plan.rise
    const fall = plan === null ? 1 : plan.fall
    if (ok) {
      if (before === Health.Pending || (before === Health.Unhealthy && this.streak >= rise)) this.state = Health.Healthy
    } else if (before === Health.Healthy && this.streak >= fall) {
      this.state = Health.Unhealthy
    }
    return before
  }
}

/**
 * The check state of every member of a route without an active check: always
 * healthy, never probed, shared. Keeps TierRuntime's check array monomorphic
 * (no null test on the pick path).
 */
export const NO_CHECK: CheckState = new CheckState('', '', null, Health.Healthy)
