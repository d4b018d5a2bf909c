// Passive health: what request outcomes say about an upstream. The balancer
// skips an ejected upstream until its ejection ends. Policy (the core one; a
// later change adds active checks and makes it configurable, behind these
// same four functions):
//   - a connect failure or connect timeout ejects at once;
//   - a failure after connecting (reset or EOF before any response byte,
//     response timeout) ejects after EJECT_AFTER consecutive ones;
//   - an ejection lasts BASE_MS, doubling with every ejection in a row up to
//     MAX_MS; failures while already ejected do not extend it (a burst of
//     requests failing together counts as one);
//   - any response head received resets everything.
// Runs on the request path: plain field arithmetic, no allocation.

import type { Upstream } from './registry.ts'

export const PASSIVE = { BASE_MS: 1000, MAX_MS: 30_000, EJECT_AFTER: 3 } as const

export function isAvailable(up: Upstream, now: number): boolean {
  return up.downUntil <= now
}

export function connectFailed(up: Upstream, now: number): void {
  up.failures++
  up.consecutiveFailures++
  eject(up, now)
}

export function responseFailed(up: Upstream, now: number): void {
  up.failures++
  up.consecutiveFailures++
  if (up.consecutiveFailures >= PASSIVE.EJECT_AFTER) eject(up, now)
}

export function succeeded(up: Upstream): void {
  if (up.consecutiveFailures === 0 && up.downUntil === 0) return
  up.consecutiveFailures = 0
  up.ejections = 0
  up.downUntil = 0
}

function eject(up: Upstream, now: number): void {
  if (up.downUntil > now) return
  const ms = Math.min(PASSIVE.BASE_MS * 2 ** up.ejections, PASSIVE.MAX_MS)
  up.ejections++
  up.downUntil = now + ms
}
