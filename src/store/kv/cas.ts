// load() and update() for the KV stores: one read of the servers directory
// turned into a StoreState, and the optimistic read-mutate-write cycle.
//
// update(): read every key with its version, run the mutation (which checks
// If-Match itself and returns a ValidConfig), write only the keys that changed in one atomic
// check-and-set, and on a conflict (another writer touched one of those keys
// since the read) start over from a fresh read. Two writers through two
// instances never overwrite each other: the loser's mutation runs again on the
// winner's config, where its If-Match fails (412) or its change is re-applied.

import { validConfigHash } from '../../model/canonical.ts'
import { BalancerError, ErrorCode } from '../../model/errors.ts'
import type { ValidConfig } from '../../model/types.ts'
import type { KvLayout, KvOp, KvRead } from './layout.ts'
import type { Mutation, StoreState } from '../store.ts'

/** What a backend gives the shared read/write logic. */
export interface KvBackend {
  readonly kind: string
  readonly layout: KvLayout
  /** Every key under layout.dir with its version. */
  read(): Promise<KvRead>
  /**
   * Applies ops atomically, each checked against the version it carries
   * (create: the key must not exist). Resolves with the store's revision
   * after the write, or null when a check failed and nothing was written.
   */
  commit(ops: KvOp[], read: KvRead): Promise<string | null>
  /** Most ops one commit may carry (the store's transaction limit). */
  readonly maxOps: number
}

/**
 * The revision names the store's position and the content: `<position>-<hash>`.
 * Equal revisions therefore always mean equal configs, even when a write's
 * result and a later read share a store position but not every key.
 */
export function revisionOf(position: string, config: ValidConfig): string {
  return `${position}-${validConfigHash(config)}`
}

export function stateOf(backend: KvBackend, read: KvRead): StoreState {
  const config = backend.layout.decode(read)
  return { config, revision: revisionOf(read.revision, config) }
}

export interface CasOptions {
  /** Conflicting writes retried before giving up with E_STORE_UNAVAILABLE. */
  maxAttempts: number
}

/** Resolves with the new state and the store position it was written at (the read's when nothing changed). */
export async function casUpdate(backend: KvBackend, mutate: Mutation, o: CasOptions): Promise<{ state: StoreState; position: string }> {
  for (let attempt = 1; ; attempt++) {
    const read = await backend.read()
    const current = stateOf(backend, read)
    const next = mutate(current.config)
    const unchanged = { state: current, position: read.revision }
    if (next === current.config) return unchanged
    const ops = backend.layout.plan(read, current.config, next)
    if (ops.length === 0) return unchanged
    if (ops.length > backend.maxOps) {
      throw new BalancerError(ErrorCode.Validation, `one write may change at most ${backend.maxOps} servers in ${backend.kind} (its transaction limit); this one changes ${ops.length}: split it`, [
        { path: 'servers', message: `${ops.length} servers changed, at most ${backend.maxOps} per write` },
      ])
    }
    const position = await backend.commit(ops, read)
    if (position !== null) {
      const config: ValidConfig = backend.layout.sorted(next)
      // The next read finds these values and parses none of them again.
      const written = new Map(ops.flatMap((op) => (op.op === 'delete' ? [] : [[op.key, op.value] as const])))
      for (const s of config.servers) {
        const key = backend.layout.keyOf(s.address)
        const value = written.get(key)
        if (value !== undefined) backend.layout.remember(key, value, s)
      }
      return { state: { config, revision: revisionOf(position, config) }, position }
    }
    if (attempt >= o.maxAttempts) {
      throw new BalancerError(ErrorCode.StoreUnavailable, `${backend.kind}: gave up after ${attempt} conflicting concurrent writes; retry`)
    }
    // Jitter, so two writers that keep colliding fall out of step.
    await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt))
  }
}
