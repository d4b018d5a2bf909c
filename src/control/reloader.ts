// Turns store states into applied snapshots. A burst of changes coalesces
// into one recompile: while an apply runs, only the newest pending state is
// kept, and every caller waiting on a state older than it is released when the
// newer one has been applied (it contains their change).

import type { Config } from '../model/types.ts'
import type { RoutingSnapshot } from '../compiler/snapshot.ts'

/**
 * Where snapshots go: the in-process Engine, or the worker group. `config` is
 * the input `snap` was compiled from; the worker group sends it (not the
 * snapshot) to its workers, which compile it again: compile() is pure, so they
 * build the very same snapshot.
 */
export interface ApplyTarget {
  apply(snap: RoutingSnapshot, config: Config): Promise<void>
}

export interface ReloadOutcome {
  version: number
  revision: string
  error: Error | null
}

interface Waiter {
  resolve(o: ReloadOutcome): void
}

export class Reloader {
  readonly #target: ApplyTarget
  readonly #compile: (cfg: Config, version: number) => RoutingSnapshot
  readonly #onOutcome: (o: ReloadOutcome) => void
  #version = 0
  #appliedRevision: string | null = null
  #running = false
  #pending: { config: Config; revision: string } | null = null
  #waiters: Waiter[] = []

  constructor(
    target: ApplyTarget,
    compile: (cfg: Config, version: number) => RoutingSnapshot,
    onOutcome: (o: ReloadOutcome) => void,
  ) {
    this.#target = target
    this.#compile = compile
    this.#onOutcome = onOutcome
  }

  get version(): number {
    return this.#version
  }

  get appliedRevision(): string | null {
    return this.#appliedRevision
  }

  /** Resolves once this state, or a newer one, has been applied or refused. */
  submit(config: Config, revision: string): Promise<ReloadOutcome> {
    this.#pending = { config, revision }
    const p = new Promise<ReloadOutcome>((resolve) => this.#waiters.push({ resolve }))
    if (!this.#running) void this.#drain()
    return p
  }

  async #drain(): Promise<void> {
    this.#running = true
    while (this.#pending !== null) {
      const next = this.#pending
      const waiters = this.#waiters
      this.#pending = null
      this.#waiters = []
      let outcome: ReloadOutcome
      if (next.revision === this.#appliedRevision) {
        outcome = { version: this.#version, revision: next.revision, error: null }
      } else {
        try {
          const snap = this.#compile(next.config, this.#version + 1)
          await this.#target.apply(snap, next.config)
          this.#version = snap.version
          this.#appliedRevision = next.revision
          outcome = { version: snap.version, revision: next.revision, error: null }
        } catch (err) {
          outcome = { version: this.#version, revision: next.revision, error: err instanceof Error ? err : new Error(String(err)) }
        }
      }
      this.#onOutcome(outcome)
      for (const w of waiters) w.resolve(outcome)
    }
    this.#running = false
  }
}
