// The key layout shared by the etcd, Consul and ZooKeeper stores (docs/stores.md):
//
//   <prefix>/servers/<encodeURIComponent(address)>  ->  the server as JSON
//
// One key per server, so writers that change different servers touch
// different keys and do not conflict. Values are written in the canonical form
// (fields in the model's order, 2-space indent) and read loosely (comments,
// the seed's forms, `address` may be left out: the key names it). The config
// is the servers in key order, so every instance reads the same bytes.
//
// A bad key (unparsable, invalid, or naming another address than its key)
// refuses the whole read: the problems of every bad key are listed at once,
// each under its key name, and the caller keeps its last good configuration.
// Serving the good keys without the bad one would silently drop a server.
//
// Each key's value is parsed once: the layout remembers what every key last
// held and the server it read from it, so a re-read after a write (or after
// another instance changed one key) parses only the keys whose value changed.

import { canonicalServer } from '../../model/canonical.ts'
import type { Problem } from '../../model/errors.ts'
import { BalancerError, validationError } from '../../model/errors.ts'
import { normalizeServer, parseJsonLoose, validByConstruction } from '../../model/parse.ts'
import type { Server, ValidConfig } from '../../model/types.ts'
import { filterProblems, found, listenProblems, throwProblems } from '../../model/validate.ts'

/** One key under `<prefix>/servers/` as the backend read it. */
export interface KvEntry {
  key: string
  value: string
  /** The backend's check-and-set token for this key: etcd mod_revision, Consul ModifyIndex, ZooKeeper data version. */
  version: string
}

/** A whole read of the servers directory. */
export interface KvRead {
  entries: KvEntry[]
  /** The store's own position of the read: etcd revision, Consul index, ZooKeeper zxid (decimal). */
  revision: string
  /** The directory marker's CAS token when the backend uses one for structural changes (Consul); null otherwise. */
  dirVersion: string | null
}

/** A write the store must apply atomically, each op checked against the version read. */
export type KvOp = { op: 'create'; key: string; value: string } | { op: 'update'; key: string; value: string; version: string } | { op: 'delete'; key: string; version: string }

export class KvLayout {
  /** `<prefix>/servers/`, with the trailing slash. */
  readonly dir: string
  /** What each key last held (read or written) and the valid server it holds. */
  readonly #known = new Map<string, { value: string; server: Server }>()

  /** prefix: normalised by store-url.ts (no trailing slash). */
  constructor(prefix: string) {
    this.dir = `${prefix}/servers/`
  }

  keyOf(address: string): string {
    return this.dir + encodeURIComponent(address)
  }

  /** The key's address, or null when the key is not directly under dir (a nested key, the dir marker). */
  addressOf(key: string): string | null {
    if (!key.startsWith(this.dir)) return null
    const name = key.slice(this.dir.length)
    if (name === '') return null
    try {
      return decodeURIComponent(name)
    } catch {
      return name
    }
  }

  /**
   * Entries -> a valid Config, servers in key order. Throws E_VALIDATION (or
   * E_BAD_JSON/E_CONFLICT from the model) listing every bad key by name.
   */
  decode(read: KvRead): ValidConfig {
    const entries = read.entries.filter((e) => e.key !== this.dir).sort((a, b) => compareKeys(a.key, b.key))
    const problems: Problem[] = []
    const filters: Problem[] = []
    const servers: Server[] = []
    const keys: string[] = []
    const fresh: Array<{ key: string; value: string; server: Server }> = []
    for (const e of entries) {
      const known = this.#known.get(e.key)
      let server: Server | null
      if (known !== undefined && known.value === e.value) server = known.server
      else {
        server = this.#decodeEntry(e, problems)
        if (server !== null) {
          filters.push(...filterProblems(server, e.key))
          fresh.push({ key: e.key, value: e.value, server })
        }
      }
      if (server !== null) {
        servers.push(server)
        keys.push(e.key)
      }
    }
    if (problems.length > 0) throw validationError(problems)
    // Clashes name servers[i]; the key says where to fix them.
    const conflicts = listenProblems(servers).map((p) => ({
      ...p,
      path: p.path.replace(/^servers\[(\d+)\]/, (m, i: string) => keys[Number(i)] ?? m),
    }))
    throwProblems(found([], conflicts, filters))
    const present = new Set(keys)
    for (const key of this.#known.keys()) if (!present.has(key)) this.#known.delete(key)
    for (const f of fresh) this.#known.set(f.key, { value: f.value, server: f.server })
    return validByConstruction({ servers })
  }

  /** Records that key now holds value, read as server (after a write that put it there). */
  remember(key: string, value: string, server: Server): void {
    this.#known.set(key, { value, server })
  }

  /** The servers of cfg in the order decode() returns them (the same servers: still valid). */
  sorted(cfg: ValidConfig): ValidConfig {
    const keyed = cfg.servers.map((s) => ({ key: this.keyOf(s.address), s }))
    keyed.sort((a, b) => compareKeys(a.key, b.key))
    return validByConstruction({ servers: keyed.map((k) => k.s) })
  }

  /**
   * The writes that turn what was read into next: only changed servers, each
   * checked against its version. A server object of next that is current's
   * (an edit keeps what it does not change) is unchanged without serialising it.
   */
  plan(read: KvRead, current: ValidConfig, next: ValidConfig): KvOp[] {
    const versions = new Map(read.entries.map((e) => [e.key, e.version]))
    const before = new Map(current.servers.map((s) => [this.keyOf(s.address), s]))
    const ops: KvOp[] = []
    const kept = new Set<string>()
    for (const s of next.servers) {
      const key = this.keyOf(s.address)
      kept.add(key)
      const old = before.get(key)
      if (old === s) continue
      const value = serverValue(s)
      if (old !== undefined && serverValue(old) === value) continue
      const version = versions.get(key)
      ops.push(version === undefined ? { op: 'create', key, value } : { op: 'update', key, value, version })
    }
    for (const key of before.keys()) {
      const version = versions.get(key)
      if (!kept.has(key) && version !== undefined) ops.push({ op: 'delete', key, version })
    }
    return ops
  }

  #decodeEntry(e: KvEntry, problems: Problem[]): Server | null {
    const address = this.addressOf(e.key)
    if (address === null || e.key.slice(this.dir.length).includes('/')) {
      problems.push({ path: e.key, message: `not a server key: keys under ${this.dir} are ${this.dir}<encodeURIComponent(address)>` })
      return null
    }
    let raw: unknown
    try {
      raw = parseJsonLoose(e.value)
    } catch (err) {
      problems.push({ path: e.key, message: err instanceof Error ? err.message : String(err) })
      return null
    }
    if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
      const obj = raw as Record<string, unknown>
      const field = Object.keys(obj).find((k) => k.toLowerCase() === 'address')
      if (field === undefined) obj.address = address
      else if (obj[field] !== address) {
        problems.push({
          path: `${e.key}.address`,
          message: `the key names ${JSON.stringify(address)} but the value says ${JSON.stringify(obj[field])}; rename the key or fix the value`,
        })
        return null
      }
    }
    try {
      return normalizeServer(raw, e.key)
    } catch (err) {
      if (err instanceof BalancerError) problems.push(...err.problems)
      else problems.push({ path: e.key, message: String(err) })
      return null
    }
  }
}

/** The canonical JSON of one server, as stored in its key. */
export function serverValue(s: Server): string {
  return `${JSON.stringify(canonicalServer(s), null, 2)}\n`
}

/** Byte order of the keys (what etcd and Consul list by), independent of locale. */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
