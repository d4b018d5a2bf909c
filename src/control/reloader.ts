// Turns desired states into applied snapshots. A burst of changes coalesces
// into one recompile: while an apply runs, only the newest pending state is
// kept, and every caller waiting on a state older than it is released when the
// newer one has been applied (it contains their change). States are applied
// in the order they were submitted; a state is never applied after a newer one.

import { compile as compileSnapshot } from '../compiler/compile.ts'
import type { RoutingSnapshot } from '../compiler/snapshot.ts'
import type { ValidConfig } from '../model/types.ts'

/**
 * Where desired states go: the in-process Engine (engineTarget: compiled
 * here, then swapped in), or the worker group (the config goes to every
 * worker, which compiles it: compile() is pure, so each builds the same
 * snapshot, and the main process compiles nothing). Rejects when the state
 * cannot be served (E_LISTEN: a port in use), and then nothing changed.
 */
export interface ApplyTarget {
  apply(config: ValidConfig, version: number): Promise<void>
}

/** `base`: the snapshot compiled before (compile() works by difference from it). */
export type Compile = (cfg: ValidConfig, version: number, base?: RoutingSnapshot) => RoutingSnapshot

/**
 * An engine in this process as an apply target: each state is compiled once,
 * from the state compiled before (so a write compiles, and the engine
 * applies, the servers it changed), then applied.
 */
export function engineTarget(engine: { apply(snap: RoutingSnapshot): Promise<void> }, compile: Compile = compileSnapshot): ApplyTarget {
  let last: RoutingSnapshot | undefined
  return {
    apply: (config, version) => {
      last = compile(config, version, last)
      return engine.apply(last)
    },
  }
}

/** What asked for a state: the first apply, an API write, the store (watch), a discovery source, a retry of a refused one (control.ts). */
export type Cause = 'start' | 'api' | 'store' | 'discovery' | 'retry'

export interface ReloadOutcome {
  /** The snapshot version serving after this outcome (unchanged when refused). */
  version: number
  revision: string
  error: Error | null
  /** Every cause folded into this apply, in the order first submitted. */
  causes: readonly Cause[]
  /** False when the revision was already serving: nothing was compiled or applied. */
  changed: boolean
}

interface Pending {
  config: ValidConfig
  revision: string
  causes: Cause[]
  waiters: Array<(o: ReloadOutcome) => void>
}

export class Reloader {
  readonly #target: ApplyTarget | null
  readonly #onOutcome: (o: ReloadOutcome) => void
  #version = 0
  #appliedRevision: string | null = null
  #pending: Pending | null = null
  #running: Promise<void> | null = null

  /**
   * target null: a control plane without a data plane (the API on its own);
   * every state counts as applied. onOutcome runs before the waiters of that
   * outcome resume, and must not throw.
   */
  constructor(target: ApplyTarget | null, onOutcome: (o: ReloadOutcome) => void) {
    this.#target = target
    this.#onOutcome = onOutcome
  }

  get version(): number {
    return this.#version
  }

  get appliedRevision(): string | null {
    return this.#appliedRevision
  }

  /** Resolves once this state, or a newer one, has been applied or refused. */
  submit(config: ValidConfig, revision: string, cause: Cause): Promise<ReloadOutcome> {
    const p = this.#pending ?? { config, revision, causes: [], waiters: [] }
    p.config = config
    p.revision = revision
    if (!p.causes.includes(cause)) p.causes.push(cause)
    this.#pending = p
    const done = new Promise<ReloadOutcome>((resolve) => p.waiters.push(resolve))
    this.#running ??= this.#drain()
    return done
  }

  /** Resolves when every state submitted so far has been applied or refused. */
  async settled(): Promise<void> {
    while (this.#running !== null) await this.#running
  }

  async #drain(): Promise<void> {
    try {
      for (let next = this.#pending; next !== null; next = this.#pending) {
        this.#pending = null
        const outcome = await this.#apply(next)
        try {
          this.#onOutcome(outcome)
        } finally {
          for (const resolve of next.waiters) resolve(outcome)
        }
      }
    } finally {
      this.#running = null
    }
  }

  async #apply(next: Pending): Promise<ReloadOutcome> {
    const base = { revision: next.revision, causes: next.causes }
    if (next.revision === this.#appliedRevision) return { ...base, version: this.#version, error: null, changed: false }
    const version = this.#version + 1
    try {
      await this.#target?.apply(next.config, version)
      this.#version = version
      this.#appliedRevision = next.revision
      return { ...base, version, error: null, changed: true }
    } catch (err) {
      return { ...base, version: this.#version, error: err instanceof Error ? err : new Error(String(err)), changed: true }
    }
  }
}
