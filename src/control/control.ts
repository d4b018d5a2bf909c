// The owner of desired state: the configuration the store holds, what each
// discovery source publishes, their merge (what is served), the coalescing
// reloader that applies it, and the last refusal. Nothing else writes any
// of it:
//
//   API ------- write(edit) ------> store.update (parser: parseEdit) --+
//   store watch -- follow() --------------------------------------------+--> stored
//   sources ---- discovered(origin, servers) --> fragments -------------+
//                                                                       v
//                      merge(stored, fragments) = served --> Reloader --> engine / workers
//                                                                       |
//                      subscribe(): applied / refused events <----------+
//
// Every change, whichever side it comes from, is one submit to the reloader,
// which coalesces bursts and applies states in order. docs/control-plane.md
// has the picture and the rules.

import { createHash } from 'node:crypto'
import type { Problem } from '../model/errors.ts'
import type { DiscoveredMeta, Refused } from '../model/admission.ts'
import { mergeDiscovered, parseDiscovered } from './merge.ts'
import type { ParsedDiscovered } from './merge.ts'
import type { Provenance } from './merge.ts'
import { parseEdit, validByConstruction } from '../model/parse.ts'
import type { Config, Server, ValidConfig } from '../model/types.ts'
import { isServiceRef } from '../model/types.ts'
import type { ServiceInstance } from '../model/services.ts'
import type { ConfigStore, StoreState } from '../store/store.ts'
import { lastErrorOf } from './events.ts'
import type { ControlEvent, ControlListener, LastError } from './events.ts'
import { assertDiscoveredUnchanged } from './provenance.ts'
import { Reloader } from './reloader.ts'
import { RetryTimer } from './retry.ts'
import { ErrorCode } from '../model/errors.ts'
import type { ApplyTarget, Cause, ReloadOutcome } from './reloader.ts'

export type { Provenance }

/** What is served: the store's configuration with every discovered server merged in. */
export interface Served {
  config: ValidConfig
  /** The store's revision, plus a hash of the discovered content when anything is discovered. */
  revision: string
  /**
   * Every discovered part of `config` by originKey() (control/merge.ts):
   * servers and routes discovery created, upstreams and fallbacks it added.
   * Anything not in here is the store's.
   */
  origins: ReadonlyMap<string, Provenance>
  /** Discovered servers (or parts) left out, each naming its container or service; service references that resolved with a problem. */
  problems: readonly Problem[]
  /** Discovered members the merge refused (a stored discovery rule, another owner's claim), with why. */
  refused: readonly Refused[]
  /** The services the configuration refers to (`{"Service": ...}` members), by registry name ('' = any). */
  services: ReadonlyMap<string, ReadonlySet<string>>
}

/**
 * An API change: the next stored configuration from the current one (a pure
 * function; it may throw a BalancerError, and then nothing changes). `served`
 * is what is served now, for checks against discovered objects.
 */
export type Edit = (stored: ValidConfig, served: Served) => Config

export interface Candidate {
  /** The stored configuration the write would leave, checked. */
  stored: ValidConfig
  /** What would be served with it (merged on demand). */
  served(): Served
}

export interface WriteOptions {
  /**
   * Runs on the checked candidate inside the store's write lock, before
   * anything is written; throwing (a BalancerError) refuses the write.
   */
  check?: (candidate: Candidate) => void
  /** Checks the write (and runs `check`), then writes nothing. */
  dryRun?: boolean
}

export interface WriteResult {
  /** The stored configuration the edit ran on (what it changed, with `stored`). */
  previous: ValidConfig
  /** The stored state after the write (with dryRun: the current one). */
  state: StoreState
  /** The configuration the write stores, or would store with dryRun. */
  stored: ValidConfig
  /** False when the edit changed nothing, and with dryRun. */
  changed: boolean
  /** How applying it went; null when nothing was applied (no change, dryRun). */
  outcome: ReloadOutcome | null
}

export interface ControlOptions {
  store: ConfigStore
  /** The store's state at start (store.load()). */
  initial: StoreState
  /** The engine (engineTarget) or the worker group; null runs the control plane alone (applies nothing). */
  target: ApplyTarget | null
  /** A subscriber threw; default: rethrown on the next tick (a bug in the subscriber). */
  onListenerError?: (err: unknown) => void
  /** The configured service registries' names (--registry): service references resolve against their instances. */
  registries?: readonly string[]
  /** Told, whenever it changes, which services each registry must follow (those the served configuration refers to). */
  onFollow?: (followed: ReadonlyMap<string, ReadonlySet<string>>) => void
}

interface Fragment {
  /** The set as published, each server parsed once (every merge uses it as is). */
  parsed: ParsedDiscovered
  /** Service registries only: each followed service's current instances. */
  services: Record<string, ServiceInstance[]> | null
  /** Hash of the published content: an identical publish changes nothing. */
  hash: string
}

const NO_ORIGINS: ReadonlyMap<string, Provenance> = new Map()
const NO_SERVICES: ReadonlyMap<string, ReadonlySet<string>> = new Map()

export class Control {
  readonly #store: ConfigStore
  readonly #reloader: Reloader
  readonly #listeners = new Set<ControlListener>()
  readonly #onListenerError: (err: unknown) => void
  #stored: StoreState
  readonly #found = new Map<string, Fragment>()
  #served: Served
  #sources: readonly string[] = []
  readonly #registries: readonly string[]
  readonly #onFollow: (followed: ReadonlyMap<string, ReadonlySet<string>>) => void
  #followed: ReadonlyMap<string, ReadonlySet<string>> = new Map()
  #followKey = ''
  /** The last refusal and whether it came from the store's content (cleared by the next good read or write). */
  #error: { error: LastError; fromStore: boolean } | null = null
  readonly #retry = new RetryTimer()

  constructor(o: ControlOptions) {
    this.#store = o.store
    this.#registries = o.registries ?? []
    this.#onFollow = o.onFollow ?? (() => {})
    this.#stored = o.initial
    this.#served = this.#merge(o.initial.config, o.initial.revision)
    this.#reloader = new Reloader(o.target, (out) => this.#outcome(out))
    this.#onListenerError =
      o.onListenerError ??
      ((err) =>
        process.nextTick(() => {
          throw err
        }))
  }

  /** Which store holds the configuration, and its connection (networked stores). */
  storeInfo(): { kind: string; location: string; health: ReturnType<NonNullable<ConfigStore['health']>> | null } {
    return { kind: this.#store.kind, location: this.#store.location, health: this.#store.health?.() ?? null }
  }

  /** The stored configuration and its revision, as last read or written. */
  stored(): StoreState {
    return this.#stored
  }

  /** What is served (or being applied): stored plus discovered. */
  served(): Served {
    return this.#served
  }

  lastError(): LastError | null {
    return this.#error?.error ?? null
  }

  /** The snapshot version serving, and the revision it was made from. */
  applied(): { version: number; revision: string | null } {
    return { version: this.#reloader.version, revision: this.#reloader.appliedRevision }
  }

  /** The discovery sources feeding this control, and the problems of what they publish. */
  discovery(): { origins: readonly string[]; problems: readonly Problem[] } {
    return { origins: this.#sources, problems: this.#served.problems }
  }

  /** Names the discovery sources started (shown by discovery()). */
  setSources(origins: readonly string[]): void {
    this.#sources = [...origins]
  }

  /** Every applied or refused change, in order, from now on. Returns the unsubscribe function. */
  subscribe(fn: ControlListener): () => void {
    const entry: ControlListener = (e) => fn(e)
    this.#listeners.add(entry)
    return () => {
      this.#listeners.delete(entry)
    }
  }

  /** Applies the initial state; resolves with the outcome (an error: nothing serves). */
  start(): Promise<ReloadOutcome> {
    return this.#submit('start')
  }

  /**
   * The one write entry point (the API). The edit runs on the store's current
   * configuration under its write lock; its result goes through the parser
   * (parseEdit: the changed servers and the whole-config checks, once), must
   * leave every discovered part as it is served (E_READ_ONLY), is written
   * durably, then applied. Resolves once it is served (or refused:
   * `outcome.error`, also in lastError() and a `refused` event). Rejects
   * with the edit's, the parser's or the store's error, and then nothing changed.
   */
  async write(edit: Edit, opts: WriteOptions = {}): Promise<WriteResult> {
    let candidate: ValidConfig | null = null
    let previous: ValidConfig | null = null
    const next = await this.#store.update((current) => {
      previous = current
      const served = current === this.#stored.config ? this.#served : this.#merge(current, 'current')
      const checked = parseEdit(current, edit(current, served))
      let merged: Served | null = null
      const after = (): Served => (merged ??= this.#merge(checked, 'candidate'))
      // What discovery publishes is read-only: the edit may change only what the store holds.
      if (checked !== current && served.origins.size > 0) assertDiscoveredUnchanged(served, after())
      opts.check?.({ stored: checked, served: after })
      candidate = checked
      return opts.dryRun === true ? current : checked
    })
    const stored: ValidConfig = candidate ?? next.config
    const before: ValidConfig = previous ?? next.config
    if (opts.dryRun === true || next.revision === this.#stored.revision) {
      await this.#reloader.settled()
      return { previous: before, state: next, stored, changed: false, outcome: null }
    }
    // The write read and checked the store: an error its earlier content caused is stale.
    if (this.#error?.fromStore === true) this.#error = null
    this.#stored = next
    const outcome = await this.#submit('api')
    return { previous: before, state: next, stored, changed: true, outcome }
  }

  /** Follows the store until the signal aborts: every valid change is applied, every invalid one refused. */
  follow(signal: AbortSignal): void {
    this.#store.watch(signal, {
      onChange: (state) => void this.storeChanged(state),
      onError: (err) => this.storeFailed(err),
    })
  }

  /** A valid state read from the store (a hand edit, another instance, our own write seen again). */
  storeChanged(state: StoreState): Promise<ReloadOutcome> | undefined {
    if (this.#error?.fromStore === true) this.#error = null
    if (state.revision === this.#stored.revision) return undefined
    this.#stored = state
    return this.#submit('store')
  }

  /** The store's content is invalid or unreadable: refused, the last good configuration keeps serving. */
  storeFailed(err: Error): void {
    const error = lastErrorOf(err, new Date())
    this.#error = { error, fromStore: true }
    this.#emit({ type: 'refused', at: error.at, revision: null, version: this.#reloader.version, causes: ['store'], error })
  }

  /**
   * A discovery source's whole current set (names[i]: the container or service
   * servers[i] comes from; meta[i]: its owner and what constraints see of it;
   * services: a registry's instances of every service it follows). An
   * identical set changes nothing.
   */
  discovered(origin: string, servers: Server[], names: readonly string[] = [], meta: readonly DiscoveredMeta[] = [], services?: Record<string, ServiceInstance[]>): Promise<ReloadOutcome> | undefined {
    const hash = createHash('sha256')
      .update(JSON.stringify([servers, names, meta, services ?? null]))
      .digest('base64url')
      .slice(0, 16)
    if (this.#found.get(origin)?.hash === hash) return undefined
    this.#found.set(origin, { parsed: parseDiscovered({ origin, servers, names: [...names], meta: [...meta] }), services: services ?? null, hash })
    return this.#submit('discovery')
  }

  /** Which services each registry follows now (from the served configuration's references). */
  followed(): ReadonlyMap<string, ReadonlySet<string>> {
    return this.#followed
  }

  /** Resolves when every change submitted so far has been applied or refused. */
  settled(): Promise<void> {
    return this.#reloader.settled()
  }

  /** True while what the store and discovery ask for is refused and an older configuration serves (GET /status lastError says why). */
  behind(): boolean {
    return this.#error !== null
  }

  /** Stops retrying a refused state (shutdown). */
  stop(): void {
    this.#retry.stop()
  }

  #submit(cause: Cause): Promise<ReloadOutcome> {
    this.#served = this.#merge(this.#stored.config, this.#stored.revision)
    this.#follow(this.#served.services)
    return this.#reloader.submit(this.#served.config, this.#served.revision, cause)
  }

  /** stored merged with every fragment; revision names stored (a candidate's is not known before it is written). */
  #merge(stored: ValidConfig, revision: string): Served {
    if (this.#found.size === 0 && this.#registries.length === 0 && !hasServiceRefs(stored)) return { config: stored, revision, origins: NO_ORIGINS, problems: [], refused: [], services: NO_SERVICES }
    const fragments = [...this.#found].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    // Service references resolve against the registries' instances, inside the one merge.
    const view = new Map(this.#registries.map((r) => [r, this.#found.get(r)?.services ?? {}]))
    const m = mergeDiscovered(
      stored,
      fragments.map(([, f]) => f.parsed),
      view,
    )
    const found = createHash('sha256')
      .update(fragments.map(([o, f]) => `${o}:${f.hash}`).join(','))
      .digest('base64url')
      .slice(0, 12)
    // The merge's rules keep a ValidConfig valid (control/merge.ts); resolved instances are checked by their sources.
    return { config: validByConstruction(m.config), revision: `${revision}+${found}`, origins: m.origins, problems: m.problems, refused: m.refused, services: m.services }
  }

  /** Each registry follows its own references and those naming no registry; told only on a change. */
  #follow(services: ReadonlyMap<string, ReadonlySet<string>>): void {
    const byRegistry = new Map(this.#registries.map((r) => [r, new Set<string>()]))
    for (const [registry, names] of services) {
      for (const r of registry === '' ? this.#registries : [registry]) for (const n of names) byRegistry.get(r)?.add(n)
    }
    const key = JSON.stringify([...byRegistry].map(([r, s]) => [r, [...s].sort()]))
    if (key === this.#followKey) return
    this.#followKey = key
    this.#followed = byRegistry
    this.#onFollow(byRegistry)
  }

  #outcome(out: ReloadOutcome): void {
    if (!out.changed) return
    const at = new Date()
    if (out.error === null) {
      this.#retry.clear()
      this.#error = null
      this.#emit({ type: 'applied', at: at.toISOString(), revision: out.revision, version: out.version, causes: out.causes })
      return
    }
    const error = lastErrorOf(out.error, at)
    // The engine could not listen (a port in use, descriptors short): that
    // may clear without any change (the other process exits), so the same
    // state is tried again, backing off, until it or a newer one applies.
    if (error.code === ErrorCode.Listen) this.#retry.schedule(() => void this.#submit('retry'))
    else this.#retry.clear()
    this.#error = { error, fromStore: false }
    this.#emit({ type: 'refused', at: error.at, revision: out.revision, version: out.version, causes: out.causes, error })
  }

  #emit(e: ControlEvent): void {
    for (const fn of [...this.#listeners]) {
      try {
        fn(e)
      } catch (err) {
        this.#onListenerError(err)
      }
    }
  }
}

function hasServiceRefs(cfg: Config): boolean {
  return cfg.servers.some(serverHasServiceRefs)
}

/** Remembered by object: a ValidConfig's servers are never mutated, and a write keeps the ones it does not change. */
const serviceRefsOf = new WeakMap<Server, boolean>()

function serverHasServiceRefs(s: Server): boolean {
  let has = serviceRefsOf.get(s)
  if (has === undefined) {
    has = [s, ...s.routes].some((r) => r.upstreams.some(isServiceRef) || r.fallbacks.some(isServiceRef))
    serviceRefsOf.set(s, has)
  }
  return has
}
