// Before a new listener is bound, the upstreams its routes check get their
// first result. Bound earlier, it would take connections it can only answer
// 503 (every member still `pending`): harmless on a fresh port, but with
// SO_REUSEPORT a new balancer starting beside a serving one (a Swarm
// start-first upgrade, a hand-over on one host) shares the port at once, and
// the kernel sends it clients from the moment it binds. Bounded by the
// checks' own timeouts and by FIRST_CHECK_WAIT_MS, so a silent upstream
// delays the bind by at most a second and stays pending as before.

import type { CheckState } from '../health/state.ts'
import type { ListenerRuntime } from './lb/runtimes.ts'

const POLL_MS = 5
/** The longest a bind waits for first check results (a check may be allowed up to its Interval). */
export const FIRST_CHECK_WAIT_MS = 1000

/** Resolves once every active check of the routes of `listeners` has a first result, or its timeout has passed. */
export async function firstChecks(listeners: readonly ListenerRuntime[]): Promise<void> {
  const waiting: CheckState[] = []
  let bound = 0
  for (const l of listeners) {
    for (const rt of l.routes) {
      for (const cs of rt.allChecks) {
        if (cs.plan === null || cs.lastAt !== 0) continue
        waiting.push(cs)
        bound = Math.max(bound, cs.plan.timeoutMs)
      }
    }
  }
  if (waiting.length === 0) return
  const end = Date.now() + Math.min(bound, FIRST_CHECK_WAIT_MS)
  while (Date.now() < end && waiting.some((cs) => cs.lastAt === 0 && !cs.stopped)) {
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
}
