// When to try a refused state again: 1 s after the refusal, doubling to
// 15 s while it keeps being refused; a success or a different refusal
// clears it. The timer does not keep the process alive.

const FIRST_MS = 1000
const MAX_MS = 15_000

export class RetryTimer {
  #timer: NodeJS.Timeout | null = null
  #delay = 0
  #stopped = false

  /** Runs fn after the next delay, unless one is already waiting. */
  schedule(fn: () => void): void {
    if (this.#stopped || this.#timer !== null) return
    this.#delay = this.#delay === 0 ? FIRST_MS : Math.min(this.#delay * 2, MAX_MS)
    this.#timer = setTimeout(() => {
      this.#timer = null
      fn()
    }, this.#delay)
    this.#timer.unref()
  }

  /** Back to the first delay; a waiting retry is cancelled. */
  clear(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#delay = 0
  }

  stop(): void {
    this.clear()
    this.#stopped = true
  }
}
