// A discovery source (Docker, Swarm) turns external state into config
// fragments: the complete set of servers it currently contributes. Sources
// never write to the store; their servers are merged on top of the store's
// (control/merge.ts) and are read-only in the API.

import type { Problem } from '../model/errors.ts'
import type { Server } from '../model/types.ts'
import type { Instance } from './registry.ts'
import type { DiscoveredMeta } from '../model/admission.ts'

/** What comes with a published set. */
export interface PublishDetail {
  /** names[i]: the container or service servers[i] comes from (mergeDiscovered's `names`). */
  names: string[]
  /** Labelled containers/services left out because of their labels (bad value, ambiguous port, ...), with the name in the path. */
  problems: Problem[]
  /** Service registries only: every followed service's current instances (what service references resolve to). */
  services?: Record<string, Instance[]>
  /** Labelled containers/services kept out by the operator's constraint (--docker-constraint, --swarm-constraint), with why; Docker and Swarm only. */
  refused?: Refusal[]
  /** meta[i]: owner, creation time and constraint subject of servers[i] (mergeDiscovered's `meta`); Docker and Swarm only. */
  meta?: DiscoveredMeta[]
}

/** A discovered container or service the balancer refused to route to. */
export interface Refusal {
  /** Container or service name. */
  name: string
  reason: string
}

export interface DiscoverySource {
  /** `docker`, `swarm`: also the origin shown in the API. */
  readonly name: string
  /**
   * Runs until the signal aborts. Calls publish with the whole current set
   * after every change (a burst of events is one publish). Transient errors
   * (daemon gone, stream cut) are retried inside with backoff and reported
   * through report(); report(null) says the source is in sync again. run()
   * rejects only on a fatal misconfiguration.
   */
  run(signal: AbortSignal, publish: (servers: Server[], detail: PublishDetail) => void, report: (err: Error | null) => void): Promise<void>
}
