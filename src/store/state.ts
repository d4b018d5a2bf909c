// The configuration the process currently serves, as last accepted from the
// store, plus the last watch/apply error. No I/O: the composition root feeds
// it (store.watch -> replace) and the admin API both reads it and replaces it
// after its own writes; subscribers (the compiler) hear of each new revision once.

import { BalancerError, ErrorCode } from '../model/errors.ts'
import type { Problem } from '../model/errors.ts'
import type { StoreState } from './store.ts'

export interface LastError {
  code: string
  message: string
  problems: Problem[]
  /** ISO 8601 time the error was recorded. */
  at: string
}

export type StateListener = (state: StoreState) => unknown

export class ConfigState {
  #state: StoreState
  #error: LastError | null = null
  #settled: Promise<void> = Promise.resolve()
  readonly #listeners = new Set<StateListener>()

  constructor(initial: StoreState) {
    this.#state = initial
  }

  current(): StoreState {
    return this.#state
  }

  lastError(): LastError | null {
    return this.#error
  }

  /** Records (or, with null, clears) the error shown by GET /status. */
  setError(err: Error | null): void {
    if (err === null) {
      this.#error = null
      return
    }
    const be = err instanceof BalancerError ? err : null
    this.#error = {
      code: be?.code ?? ErrorCode.Internal,
      message: err.message,
      problems: be?.problems ?? [],
      at: new Date().toISOString(),
    }
  }

  /**
   * Makes state current. Subscribers are called, in subscription order, only
   * when the revision differs from the current one; returns whether it did.
   * A subscriber that throws does not stop the others; its error becomes
   * lastError() (the subscriber is the one that applies the config).
   */
  replace(state: StoreState): boolean {
    if (state.revision === this.#state.revision) return false
    this.#state = state
    const work: Array<Promise<unknown>> = []
    for (const fn of [...this.#listeners]) {
      try {
        const r = fn(state)
        if (r instanceof Promise) work.push(r)
      } catch (err) {
        this.setError(err instanceof Error ? err : new Error(String(err)))
      }
    }
    if (work.length > 0) {
      const prev = this.#settled
      this.#settled = Promise.allSettled([prev, ...work]).then(() => undefined)
    }
    return true
  }

  /**
   * Resolves when every subscriber's work for the states replaced so far has
   * finished (the API answers a write only once its change is applied, so a
   * client can use a new listener right after the 201).
   */
  settled(): Promise<void> {
    return this.#settled
  }

  /** Returns the unsubscribe function. */
  subscribe(fn: StateListener): () => void {
    // Wrapped so subscribing the same function twice yields two independent subscriptions.
    const entry: StateListener = (s) => fn(s)
    this.#listeners.add(entry)
    return () => {
      this.#listeners.delete(entry)
    }
  }
}
