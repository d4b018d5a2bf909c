// Smooth weighted round robin (nginx's algorithm) over priority tiers.
// Every pick adds each eligible member's weight to its running score, takes
// the highest score and subtracts the eligible total from it: over any window
// of sum(weights) picks each member gets exactly its share, interleaved
// (weights 3:1 give A A B A, never a burst). Ineligible members (ejected, or
// already tried by this request) are skipped and their score left alone.
//
// pick() runs on every request: no allocation, no await; `tried` is the
// request's own list of upstreams it has attempted.

import { isAvailable } from '../upstream/passive.ts'
import type { Upstream } from '../upstream/registry.ts'

export class TierRuntime {
  readonly members: readonly Upstream[]
  readonly weights: Int32Array
  /** Running scores, kept across snapshots while the tier is unchanged. */
  readonly scores: Float64Array

  constructor(members: readonly Upstream[], weights: readonly number[]) {
    this.members = members
    this.weights = Int32Array.from(weights)
    this.scores = new Float64Array(members.length)
  }
}

export class RouteRuntime {
  readonly id: string
  readonly tiers: readonly TierRuntime[]
  readonly fallbacks: readonly TierRuntime[]
  /** Every distinct upstream of the route, tiers first: the retry budget and the last-resort choice. */
  readonly all: readonly Upstream[]
  /** Tier shape (priorities, keys, weights) to decide whether a new snapshot changed it. */
  readonly signature: string

  constructor(id: string, tiers: readonly TierRuntime[], fallbacks: readonly TierRuntime[], signature: string) {
    this.id = id
    this.tiers = tiers
    this.fallbacks = fallbacks
    this.signature = signature
    const all: Upstream[] = []
    for (const t of [...tiers, ...fallbacks]) for (const m of t.members) if (!all.includes(m)) all.push(m)
    this.all = all
  }
}

function pickTier(t: TierRuntime, now: number, tried: readonly Upstream[]): Upstream | null {
  const members = t.members
  const scores = t.scores
  const weights = t.weights
  let best = -1
  let total = 0
  for (let i = 0; i < members.length; i++) {
    const up = members[i] as Upstream
    if (!isAvailable(up, now) || (tried.length !== 0 && tried.includes(up))) continue
    const w = weights[i] as number
    const s = (scores[i] as number) + w
    scores[i] = s
    total += w
    if (best < 0 || s > (scores[best] as number)) best = i
  }
  if (best < 0) return null
  scores[best] = (scores[best] as number) - total
  return members[best] as Upstream
}

/** The first tier (upstreams, then fallbacks) with an eligible member picks; null when none has one. */
export function pick(rt: RouteRuntime, now: number, tried: readonly Upstream[]): Upstream | null {
  const tiers = rt.tiers
  for (let i = 0; i < tiers.length; i++) {
    const up = pickTier(tiers[i] as TierRuntime, now, tried)
    if (up !== null) return up
  }
  const fb = rt.fallbacks
  for (let i = 0; i < fb.length; i++) {
    const up = pickTier(fb[i] as TierRuntime, now, tried)
    if (up !== null) return up
  }
  return null
}

/**
 * When every upstream of the route is ejected: the untried one whose ejection
 * ends first, so that a full outage caused by our own ejections is probed
 * rather than answered 503 until the backoff runs out.
 */
export function soonest(rt: RouteRuntime, tried: readonly Upstream[]): Upstream | null {
  let best: Upstream | null = null
  for (const up of rt.all) {
    if (tried.includes(up)) continue
    if (best === null || up.downUntil < best.downUntil) best = up
  }
  return best
}
