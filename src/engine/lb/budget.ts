// Retry budget of one route: a token bucket. Every request adds
// budgetPercent/100 of a token, every retry that reaches an upstream again
// spends one; time adds MIN_PER_SEC tokens a second, so a quiet route can
// still fail over. The bucket holds at most CAP tokens: a burst of failures
// can use what a calm period saved, then retries are held to the budget's
// share of the request rate. Kept per route id across snapshots.
// Runs per request: field arithmetic only.

const MIN_PER_SEC = 3
const CAP = 10

export class RetryBudget {
  tokens = CAP
  /** Epoch ms of the last time refill. */
  last = 0

  /** One request started (with the route's budgetPercent). */
  request(percent: number): void {
    const t = this.tokens + percent / 100
    this.tokens = t > CAP ? CAP : t
  }

  /** A retry would be allowed now. */
  can(now: number): boolean {
    this.#refill(now)
    return this.tokens >= 1
  }

  /** Spends a token for a retry; false when the budget is used up. */
  spend(now: number): boolean {
    this.#refill(now)
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  #refill(now: number): void {
    if (now <= this.last) return
    const t = this.tokens + ((now - this.last) * MIN_PER_SEC) / 1000
    this.tokens = t > CAP ? CAP : t
    this.last = now
  }
}
