// Settings every KV store takes, with their defaults. open.ts fills them from
// the URL and the environment; tests pass small timings.

import type { HostPort } from '../../kv/endpoint.ts'
import type { WatchTiming } from './watch.ts'
import { DEFAULT_TIMING } from './watch.ts'

export interface KvStoreOptions {
  hosts: HostPort[]
  /** Normalised by store-url.ts: `/balancer`. */
  prefix: string
  /** Shown in logs, errors and /status; never carries credentials. */
  location: string
  /** Bound on every single store call (read, write, probe). Default 5000 ms. */
  timeoutMs?: number
  /** Conflicting concurrent writes retried by update() before it gives up. Default 20. */
  maxAttempts?: number
  timing?: Partial<WatchTiming>
}

export interface ResolvedKvOptions {
  hosts: HostPort[]
  prefix: string
  location: string
  timeoutMs: number
  maxAttempts: number
  timing: WatchTiming
}

export function resolveKvOptions(o: KvStoreOptions): ResolvedKvOptions {
  return {
    hosts: o.hosts,
    prefix: o.prefix,
    location: o.location,
    timeoutMs: o.timeoutMs ?? 5000,
    maxAttempts: o.maxAttempts ?? 20,
    timing: { ...DEFAULT_TIMING, ...o.timing },
  }
}

export { hostPortText } from '../../kv/endpoint.ts'
export type { TlsFiles } from '../../kv/endpoint.ts'
