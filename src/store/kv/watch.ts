// The pieces every KV watcher shares: a bell its change notifications ring
// (coalesced into one re-read per burst), a reporter that turns reads and
// failures into the owner's onChange/onError exactly as often as they should;
// the backoff between reconnection attempts comes from kv/backoff.ts.

import { validConfigHash } from '../../model/canonical.ts'
import { BalancerError, ErrorCode } from '../../model/errors.ts'
import type { StoreState, WatchHandlers } from '../store.ts'
import type { CallContext } from './call.ts'
import { unavailable } from './call.ts'

import { sleep } from '../../kv/backoff.ts'

export { Backoff, sleep } from '../../kv/backoff.ts'

export interface WatchTiming {
  /** A burst of changes closer together than this is one re-read. */
  debounceMs: number
  /** ...but a change stream that never pauses is re-read at least this often. */
  maxDebounceMs: number
  /** How often a quiet watch checks that the store still answers. */
  probeMs: number
  backoffMinMs: number
  /** Reconnection attempts are at most this far apart. */
  backoffMaxMs: number
}

export const DEFAULT_TIMING: WatchTiming = { debounceMs: 50, maxDebounceMs: 1000, probeMs: 5000, backoffMinMs: 100, backoffMaxMs: 5000 }

export type BellResult = 'change' | 'resync' | 'aborted'

/**
 * Change notifications in, one "re-read now" out per burst. ring() may be
 * passed to a client library as a callback (it is bound). fail() and resync()
 * end the wait: the watch connection is gone, or must be rebuilt from a full read.
 */
export class ChangeBell {
  #rings = 0
  #end: { resync: true } | { error: Error } | null = null
  #wake: (() => void) | null = null

  readonly ring = (): void => {
    this.#rings++
    this.#wake?.()
  }

  fail(err: Error): void {
    this.#end ??= { error: err }
    this.#wake?.()
  }

  resync(): void {
    this.#end ??= { resync: true }
    this.#wake?.()
  }

  /** Waits for a ring, then until no ring came for quietMs (or maxMs passed). Throws what fail() was given. */
  async next(signal: AbortSignal, quietMs: number, maxMs: number): Promise<BellResult> {
    while (this.#rings === 0) {
      const ended = this.#ended(signal)
      if (ended !== null) return ended
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.#wake = null
          signal.removeEventListener('abort', done)
          resolve()
        }
        this.#wake = done
        signal.addEventListener('abort', done, { once: true })
      })
    }
    const first = Date.now()
    for (;;) {
      const seen = this.#rings
      await sleep(quietMs, signal)
      const ended = this.#ended(signal)
      if (ended !== null) return ended
      if (this.#rings === seen || Date.now() - first >= maxMs) break
    }
    this.#rings = 0
    return 'change'
  }

  #ended(signal: AbortSignal): BellResult | null {
    if (signal.aborted) return 'aborted'
    const end = this.#end
    if (end === null) return null
    if ('error' in end) throw end.error
    return 'resync'
  }
}

/**
 * Decides what the owner hears. A valid read is reported when its content
 * differs from the last one reported (or the owner was last told of a
 * problem, so it can clear it); an invalid read once per distinct problem;
 * the store unreachable once per outage. Never an empty config for a failed
 * read: failures only ever reach onError.
 */
export class WatchReporter {
  readonly #handlers: WatchHandlers
  readonly #ctx: CallContext
  #lastHash: string | null
  #lastProblem: string | null = null
  #outage = false

  /** seed: the state the owner already has (from load/update), not reported again. */
  constructor(ctx: CallContext, handlers: WatchHandlers, seed: StoreState | null) {
    this.#ctx = ctx
    this.#handlers = handlers
    this.#lastHash = seed === null ? null : validConfigHash(seed.config)
  }

  read(state: StoreState): void {
    const hash = validConfigHash(state.config)
    const troubled = this.#outage || this.#lastProblem !== null
    this.#outage = false
    this.#lastProblem = null
    if (hash === this.#lastHash && !troubled) return
    this.#lastHash = hash
    try {
      this.#handlers.onChange(state)
    } catch (err) {
      this.#error(err)
    }
  }

  /** The store answered, but its content is invalid. */
  invalid(err: unknown): void {
    this.#outage = false
    const message = err instanceof Error ? err.message : String(err)
    if (this.#lastProblem === message) return
    this.#lastProblem = message
    this.#error(err)
  }

  unreachable(err: unknown): void {
    const e = unavailable(this.#ctx, 'watch', err)
    this.#ctx.health.down(e.message)
    if (this.#outage) return
    this.#outage = true
    this.#error(new BalancerError(ErrorCode.StoreUnavailable, `${e.message}; the last good configuration stays in use, reconnecting`))
  }

  #error(err: unknown): void {
    try {
      this.#handlers.onError(err instanceof Error ? err : new Error(String(err)))
    } catch {
      // The owner's error handler itself failed; nothing is left to tell.
    }
  }
}

/** Runs probe every ms until stopped; the first failure goes to onFail and ends it. */
export function startProbe(ms: number, probe: () => Promise<unknown>, onFail: (err: Error) => void): () => void {
  let stopped = false
  let timer: NodeJS.Timeout | null = null
  const tick = (): void => {
    timer = null
    probe().then(
      () => {
        if (!stopped) timer = setTimeout(tick, ms)
      },
      (err: unknown) => {
        if (!stopped) onFail(err instanceof Error ? err : new Error(String(err)))
      },
    )
  }
  timer = setTimeout(tick, ms)
  return () => {
    stopped = true
    if (timer !== null) clearTimeout(timer)
  }
}
