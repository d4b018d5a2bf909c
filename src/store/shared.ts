// The store's second space, beside the configuration: what every balancer
// instance sharing the store must see alike but that is not configuration.
// Certificates uploaded or ordered (`certs/<name>`), the ACME account,
// pending challenges and order state (`acme/...`), and leases, so that one
// instance at a time does a given piece of work (ordering a certificate).
//
//   etcd       <prefix>/<key>                    leases: an etcd lease on <prefix>/leases/<name>
//   Consul     <prefix>/<key> (no leading /)     leases: a Consul session acquiring <prefix>/leases/<name>
//   ZooKeeper  znode <path>/<key>                leases: an ephemeral znode <path>/leases/<name>
//   file       <config>.d/<key> (0600 files)     leases: a lock file <config>.d/leases/<name>, renewed by its mtime
//
// Keys are `dir/name` with `name` URL-encoded by the caller: one level, no
// slashes inside a name. Values are text (JSON). Writes check the version
// read, as the configuration's writes do, so two instances never overwrite
// each other silently.

export interface SharedItem {
  /** Relative to the space: `certs/www.example.com`. */
  key: string
  value: string
  /** The backend's check-and-set token (etcd mod_revision, Consul ModifyIndex, ZooKeeper data version, file mtime+size). */
  version: string
}

/** An exclusive lease. `lost` aborts when it can no longer be trusted (expired, session gone); release() gives it up. */
export interface Lease {
  readonly lost: AbortSignal
  release(): Promise<void>
}

export interface SharedSpace {
  /** `file`, `etcd`, `consul`, `zookeeper`. */
  readonly kind: string
  /** Every item directly under `dir` (`certs/`), in key order. */
  list(dir: string): Promise<SharedItem[]>
  get(key: string): Promise<SharedItem | null>
  /**
   * Writes `key` if its version is still `expect` (null: it must not exist;
   * '*': whatever it holds). Resolves with the new version, or null when
   * another writer changed it first (nothing written).
   */
  put(key: string, value: string, expect: string | null): Promise<string | null>
  /** Removes `key` (if its version is still `expect`, when given); false when it was not there or changed. */
  delete(key: string, expect?: string): Promise<boolean>
  /**
   * Calls onChange whenever something under `dir` may have changed (a burst
   * is one call), until signal aborts; the caller lists again. Resolves once
   * every change from then on is heard (list after that, not before). onError
   * hears of an outage once; the watch reconnects by itself, and calls
   * onChange when it is back (what changed meanwhile was not heard).
   */
  watch(dir: string, signal: AbortSignal, onChange: () => void, onError: (err: Error) => void): Promise<void>
  /**
   * Takes the lease `name` if nobody holds it, kept alive while this process
   * runs (renewed before ttlMs passes). null when another holder has it. A
   * holder that dies loses it within ttlMs (etcd, Consul, file) or its
   * session timeout (ZooKeeper), and another instance can take it.
   */
  lease(name: string, ttlMs: number): Promise<Lease | null>
  close(): Promise<void>
}

/** Any version: put() overwrites whatever is there. */
export const ANY_VERSION = '*'

/** `certs` + `www.example.com` -> `certs/www.example.com` (the name encoded). */
export function sharedKey(dir: string, name: string): string {
  return `${dir}/${encodeURIComponent(name)}`
}

/** The name of a key made by sharedKey. */
export function sharedName(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1)
  try {
    return decodeURIComponent(name)
  } catch {
    return name
  }
}
