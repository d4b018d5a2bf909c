// Whether this balancer serves what its configuration says, for GET /ready
// (and so for a container HEALTHCHECK, which Swarm's `order: start-first`
// and orchestrators wait for before stopping the old instance):
//
//   starting  until the store's configuration is applied, every discovery
//             source's first complete set is applied (a node's listeners
//             often come from labels), and no upstream still waits for its
//             first active check result (it would get no traffic yet); a
//             result that says down counts: a down app must not keep the
//             balancer from starting or being upgraded;
//   ready     from then on, whatever later changes do (a refused change
//             leaves the last good configuration serving);
//   draining  from SIGTERM/SIGINT on: stop sending new clients here.

export type ReadyState = 'starting' | 'ready' | 'draining'

export class Readiness {
  #applied = false
  #origins: readonly string[] = []
  readonly #synced = new Set<string>()
  #draining = false
  #ready = false

  /** The store's configuration is applied (listeners bound, in every worker). */
  configApplied(): void {
    this.#applied = true
  }

  /** The discovery sources whose first set must be applied before ready. */
  expect(origins: readonly string[]): void {
    this.#origins = origins
  }

  /** A set published by `origin` has been applied (not refused). */
  sourceApplied(origin: string): void {
    this.#synced.add(origin)
  }

  draining(): void {
    this.#draining = true
  }

  /** `upstreamsPending` says whether any upstream still waits for its first active check result. */
  state(upstreamsPending: () => boolean): ReadyState {
    if (this.#draining) return 'draining'
    if (this.#ready) return 'ready'
    if (!this.#applied || !this.#origins.every((o) => this.#synced.has(o)) || upstreamsPending()) return 'starting'
    this.#ready = true
    return 'ready'
  }
}
