// Passive health: what request outcomes say about an upstream, under the
// PassivePlan of the route whose request it was. The balancer skips an
// ejected upstream until its ejection ends or an active check passes.
//   - failures = 0 turns passive ejection off (failures are still counted);
//   - a refused or timed-out connect ejects at once: nothing listens there,
//     and finding that out again costs every request that tries;
//   - a failure after connecting (reset or EOF before any response byte,
//     response timeout, a malformed response, and a 5xx when on5xx is set)
//     ejects after `failures` of them in a row;
//   - an ejection lasts ejectionMs, doubling with every ejection in a row up
//     to maxEjectionMs; failures while already ejected do not extend it (a
//     burst of requests failing together counts as one);
//   - when an ejection runs out the upstream is on probation: its failure
//     streak is kept, so its next failure ejects it again (for twice as
//     long); a response, or a passing active check, clears the streak;
//   - any other response head resets the streaks.
// Runs on the request path: plain field arithmetic, no allocation; the log
// line is written only when the state changes.

import type { PassivePlan } from '../../compiler/snapshot.ts'
import type { EngineLog } from '../types.ts'
import type { Upstream } from './registry.ts'

export function isAvailable(up: Upstream, now: number): boolean {
  return up.downUntil <= now
}

export function connectFailed(up: Upstream, p: PassivePlan, now: number, log: EngineLog, reason: string): void {
  up.failures++
  up.consecutiveFailures++
  if (p.failures !== 0) eject(up, p, now, log, reason)
}

export function responseFailed(up: Upstream, p: PassivePlan, now: number, log: EngineLog, reason: string): void {
  up.failures++
  up.consecutiveFailures++
  if (p.failures !== 0 && up.consecutiveFailures >= p.failures) eject(up, p, now, log, reason)
}

export function succeeded(up: Upstream): void {
  if (up.consecutiveFailures === 0 && up.downUntil === 0) return
  up.consecutiveFailures = 0
  up.ejectStreak = 0
  up.downUntil = 0
}

/** A passing active check ends an ejection at once (the backoff streak is kept until a response succeeds). */
export function readmit(up: Upstream, now: number, log: EngineLog, probe: string): void {
  if (up.downUntil === 0) return
  const was = up.downUntil > now
  up.downUntil = 0
  up.consecutiveFailures = 0
  if (up.ejectLogged) log.info({ upstream: up.key, probe }, was ? 'upstream readmitted: active check passed' : 'upstream readmitted: ejection over')
  up.ejectLogged = false
}

function eject(up: Upstream, p: PassivePlan, now: number, log: EngineLog, reason: string): void {
  if (up.downUntil > now) return
  const ms = Math.min(p.ejectionMs * 2 ** up.ejectStreak, p.maxEjectionMs)
  up.ejectStreak++
  up.ejections++
  up.downUntil = now + ms
  up.ejectLogged = true
  log.warn({ upstream: up.key, reason, ms, consecutiveFailures: up.consecutiveFailures }, 'upstream ejected')
}
