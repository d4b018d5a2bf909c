// Reconnection pacing shared by every loop that talks to a server which may
// go away: the KV stores' watchers, the Docker/Swarm sources and the service
// registry sources. One copy, here, because stores and sources may not
// import each other.

/** Exponential backoff with jitter (50-100% of the step), so many balancers do not reconnect in step. */
export class Backoff {
  readonly #min: number
  readonly #max: number
  #attempt = 0

  constructor(minMs: number, maxMs: number) {
    this.#min = minMs
    this.#max = maxMs
  }

  next(): number {
    const step = Math.min(this.#max, this.#min * 2 ** this.#attempt)
    this.#attempt = Math.min(this.#attempt + 1, 30)
    return Math.round(step / 2 + (Math.random() * step) / 2)
  }

  reset(): void {
    this.#attempt = 0
  }
}

/** Resolves after ms, or at once when the signal aborts (never rejects). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const t = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
