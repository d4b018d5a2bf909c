// The desired routing input: the store's configuration plus what each
// discovery source currently publishes, merged by model/merge.ts (the one
// merge). Every change, whichever side it comes from, is one submit to the
// reloader; the reloader coalesces bursts.

import { createHash } from 'node:crypto'
import type { Config, Server } from '../model/types.ts'
import type { Problem } from '../model/errors.ts'
import { mergeDiscovered } from '../model/merge.ts'
import type { DiscoveredMeta, Refused } from '../model/admission.ts'
import type { StoreState } from '../store/store.ts'
import type { ReloadOutcome, Reloader } from './reloader.ts'

export class Desired {
  readonly #reloader: Reloader
  #store: StoreState
  readonly #found = new Map<string, { servers: Server[]; names: string[]; meta: DiscoveredMeta[] }>()
  #problems: Problem[] = []
  #refused: Refused[] = []

  constructor(reloader: Reloader, store: StoreState) {
    this.#reloader = reloader
    this.#store = store
  }

  /** Problems with discovered servers that were left out of the merge. */
  get problems(): readonly Problem[] {
    return this.#problems
  }

  /** Discovered members the merge refused (store discovery rules, another owner's claim), with why. */
  get refused(): readonly Refused[] {
    return this.#refused
  }

  get discovered(): ReadonlyArray<{ origin: string; servers: Server[]; names: string[]; meta: DiscoveredMeta[] }> {
    return [...this.#found].map(([origin, f]) => ({ origin, servers: f.servers, names: f.names, meta: f.meta }))
  }

  setStore(state: StoreState): Promise<ReloadOutcome> {
    this.#store = state
    return this.#submit()
  }

  /** names[i] is the container or service servers[i] comes from (for messages and the API). */
  setDiscovered(origin: string, servers: Server[], names: string[] = [], meta: DiscoveredMeta[] = []): Promise<ReloadOutcome> {
    this.#found.set(origin, { servers, names, meta })
    return this.#submit()
  }

  /** The merged config and a revision naming both the store revision and the discovered content. */
  merged(): { config: Config; revision: string } {
    if (this.#found.size === 0) return { config: this.#store.config, revision: this.#store.revision }
    const { config, problems, refused } = mergeDiscovered(this.#store.config, this.discovered)
    this.#problems = problems
    this.#refused = refused
    const h = createHash('sha256').update(JSON.stringify(this.discovered)).digest('base64url').slice(0, 12)
    return { config, revision: `${this.#store.revision}+${h}` }
  }

  #submit(): Promise<ReloadOutcome> {
    const { config, revision } = this.merged()
    return this.#reloader.submit(config, revision)
  }
}
