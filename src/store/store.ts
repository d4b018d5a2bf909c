// The store: the one source of truth for the desired configuration. The file
// store is the embedded default; etcd, Consul and ZooKeeper implement the same
// interface. The store holds and returns only ValidConfigs: what it reads goes
// through the parser, what it writes comes from the caller's mutation, which
// returns a ValidConfig (src/control runs the parser there); it checks nothing
// again.

import type { ValidConfig } from '../model/types.ts'
import type { SharedSpace } from './shared.ts'

export interface StoreState {
  config: ValidConfig
  /** Opaque, changes with every successful write; equal revisions mean equal configs. */
  revision: string
}

/**
 * A pure function from the current config to the next. It may throw a
 * BalancerError (validation, not found, precondition failed); then nothing is
 * written. It runs under the store's write lock, so a precondition checked
 * inside it (If-Match) is atomic with the write. Returning `current` itself
 * writes nothing.
 */
export type Mutation = (current: ValidConfig) => ValidConfig

export interface WatchHandlers {
  /** A new valid config arrived from outside (a hand edit, another instance). */
  onChange(state: StoreState): void
  /** The store's content is invalid or unreadable; the caller keeps the last good config. */
  onError(err: Error): void
}

export interface ConfigStore {
  /** `file`, `etcd`, `consul`, `zookeeper`. */
  readonly kind: string
  /** Human-readable location (path or URL without credentials). */
  readonly location: string
  /** Reads and validates the whole configuration. A missing file is an empty config. */
  load(): Promise<StoreState>
  /** Atomic read-modify-write; durable before it resolves. */
  update(mutate: Mutation): Promise<StoreState>
  /** Watches until the signal aborts. Own writes may or may not be reported; callers compare revisions. */
  watch(signal: AbortSignal, handlers: WatchHandlers): void
  close(): Promise<void>
  /**
   * The store's space for what instances share beside the configuration
   * (certificates, ACME state, leases): store/shared.ts. Made once, on first use.
   */
  shared?(): SharedSpace
  /** Connection to a networked store (etcd, Consul, ZooKeeper): `connected`, `connecting` or `unreachable`, since when (epoch ms), and why. */
  health?(): { state: string; since: number; detail: string | null }
}
