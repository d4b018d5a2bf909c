// The ratelimit group at run time: a token bucket per client key (its
// address or a header's value), refilled at the route's Average divided by
// the engine's share of the cluster (EngineCtx.limitShare: live instances
// sharing the store times worker processes per instance), holding at most
// Burst divided the same way (at least 1). The cluster's instances never
// talk per request: each enforces its share, and the share changes within
// seconds when an instance joins or dies (store/presence.ts).
//
// Memory is bounded: at most MAX_SOURCES buckets per route, the least
// recently used dropped first (a client seen again after that starts with a
// full bucket). Map iteration order is insertion order, so touching a key
// (delete + set) keeps the Map in LRU order at O(1).

import type { RateLimitPlan } from '../../compiler/snapshot.ts'

/** Buckets kept per limited route: about 100 bytes each. */
export const MAX_SOURCES = 10_000

interface Bucket {
  tokens: number
  /** ms (Date.now()) of the last refill. */
  at: number
}

export class RateLimiter {
  readonly plan: RateLimitPlan
  readonly #buckets = new Map<string, Bucket>()

  constructor(plan: RateLimitPlan) {
    this.plan = plan
  }

  /** 0: the request may go; otherwise the seconds to wait (for Retry-After). `share` >= 1. */
  take(key: string, now: number, share: number): number {
    const rate = this.plan.average / share
    const cap = Math.max(1, this.plan.burst / share)
    const m = this.#buckets
    let b = m.get(key)
    if (b === undefined) {
      if (m.size >= MAX_SOURCES) {
        const oldest = m.keys().next()
        if (oldest.done !== true) m.delete(oldest.value)
      }
      b = { tokens: cap, at: now }
    } else {
      m.delete(key)
      b.tokens = Math.min(cap, b.tokens + ((now - b.at) * rate) / 1000)
      b.at = now
    }
    m.set(key, b)
    if (b.tokens >= 1) {
      b.tokens -= 1
      return 0
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / rate))
  }

  /** Buckets held now (tests, memory checks). */
  size(): number {
    return this.#buckets.size
  }
}
