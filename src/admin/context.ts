// What every admin route needs, and the one way the API writes.

import type { Config } from '../model/types.ts'
import type { ConfigState } from '../store/state.ts'
import type { ConfigStore, Mutation, StoreState } from '../store/store.ts'
import type { LiveUpstreams } from './live.ts'
import { recordWrite } from './write-log.ts'

export interface AdminContext {
  store: ConfigStore
  state: ConfigState
  /** The engine's upstream state; returns null when the API runs without an engine. */
  live: LiveUpstreams
}

/**
 * Every API write: one atomic, durable store update, then the served state
 * learns the result (the store's watcher may report it again; ConfigState
 * ignores an unchanged revision). The mutation is pure and may throw a
 * BalancerError; then nothing is written and nothing changes.
 */
export async function commit(ctx: AdminContext, mutate: Mutation): Promise<StoreState> {
  let before: Config | null = null
  let after: Config | null = null
  const next = await ctx.store.update((cfg) => {
    before = cfg
    after = mutate(cfg)
    return after
  })
  if (before !== null && after !== null) recordWrite(before, after, next.revision)
  if (next.revision !== ctx.state.current().revision) {
    // The write re-read and validated the whole store, so an earlier watch
    // error is stale; cleared before replace() so an apply error raised by a
    // subscriber for this revision stays visible.
    ctx.state.setError(null)
    ctx.state.replace(next)
  }
  await ctx.state.settled()
  return next
}

export function ifMatchHeader(headers: Record<string, string | string[] | undefined>): string | undefined {
  const v = headers['if-match']
  return Array.isArray(v) ? v.join(',') : v
}
