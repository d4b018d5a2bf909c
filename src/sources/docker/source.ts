// Docker discovery: labelled containers -> servers, driven by /events.
//
// Sessions (sources/event-sessions.ts, shared with Swarm) subscribe to
// /events, then list every labelled container; a broken stream reconnects
// with backoff and lists again; a full listing every resyncMs is the backstop.
//
// A container leaves the published set at once (no coalescing) on `kill`
// (with a terminating signal), `stop`, `die`, `pause`, `destroy` and a health
// status other than healthy, so traffic drains off it while its process is
// still shutting down. Arrivals are coalesced (coalesceMs).

import type { DockerClient, Filters } from '../../docker-api/client.ts'
import type { SelfProbe } from '../../docker-api/self.ts'
import { procProbe, selfHint } from '../../docker-api/self.ts'
import type { ContainerInspect, DockerEvent } from '../../docker-api/types.ts'
import type { Server } from '../../model/types.ts'
import type { DiscoverySource, PublishDetail } from '../source.ts'
import type { PublishedSet } from '../loop.ts'
import { Backoff } from '../../kv/backoff.ts'
import { Publisher, mapLimit } from '../loop.ts'
import { inBackground, runEventSessions } from '../event-sessions.ts'
import type { SelfInfo } from './address.ts'
import type { Constraint } from '../../model/constraint.ts'
import type { DiscoveredMeta } from '../../model/admission.ts'
import { ownerOf } from '../../model/admission.ts'
import type { Translated } from './translate.ts'
import { containerSubject, translateContainer } from './translate.ts'

export interface DockerSourceOptions {
  client: DockerClient
  /** Full resync period (safety net). Default 30 s. */
  resyncMs?: number
  /** Arrivals within this window are one publish. Default 50 ms. */
  coalesceMs?: number
  minBackoffMs?: number
  maxBackoffMs?: number
  /** Where to look for our own container id; default /proc and the environment. */
  probe?: SelfProbe
  /** --docker-constraint: labelled containers that do not match get no traffic and are listed as refused. */
  constraint?: Constraint | null
}

const EVENT_FILTERS: Filters = {
  type: ['container', 'network'],
  event: ['start', 'restart', 'unpause', 'update', 'rename', 'kill', 'stop', 'die', 'pause', 'destroy', 'oom', 'health_status', 'connect', 'disconnect'],
}
const LIST_FILTERS: Filters = { label: ['balancer.enable'] }

/** Signals that do not end a process by default: `docker kill -s HUP` reloads, it does not stop. */
const HARMLESS_SIGNALS = new Set(['0', '1', '10', '12', '17', '18', '23', '28'])
const HARMLESS_NAMES = /^(SIG)?(HUP|USR1|USR2|CHLD|CONT|URG|WINCH)$/i

export class DockerSource implements DiscoverySource {
  readonly name = 'docker'
  readonly #client: DockerClient
  readonly #resyncMs: number
  readonly #coalesceMs: number
  readonly #backoff: Backoff
  readonly #probe: SelfProbe
  readonly #constraint: Constraint | null
  /** Labelled containers the constraint refuses, by id: why. */
  readonly #refused = new Map<string, string>()
  /** Owner, creation time and constraint subject of every entry, by id. */
  readonly #meta = new Map<string, DiscoveredMeta>()
  /** Every labelled container seen running, including those without traffic now (unhealthy, bad labels). */
  readonly #entries = new Map<string, Translated>()
  /** Bumped by every event for a container: an inspect started before it is stale. */
  readonly #gen = new Map<string, number>()
  /** Containers told to stop, by the daemon's event time (ms): out until they start again. */
  readonly #dying = new Map<string, number>()
  #self: SelfInfo | null = null
  #pub: Publisher | null = null
  #report: (err: Error | null) => void = () => {}

  constructor(opts: DockerSourceOptions) {
    this.#client = opts.client
    this.#resyncMs = opts.resyncMs ?? 30_000
    this.#coalesceMs = opts.coalesceMs ?? 50
    this.#backoff = new Backoff(opts.minBackoffMs ?? 250, opts.maxBackoffMs ?? 10_000)
    this.#probe = opts.probe ?? procProbe
    this.#constraint = opts.constraint ?? null
  }

  async run(signal: AbortSignal, publish: (servers: Server[], detail: PublishDetail) => void, report: (err: Error | null) => void): Promise<void> {
    const pub = new Publisher(this.#coalesceMs, () => this.current(), publish)
    this.#pub = pub
    this.#report = report
    try {
      await runEventSessions(
        {
          client: this.#client,
          filters: EVENT_FILTERS,
          resyncMs: this.#resyncMs,
          backoff: this.#backoff,
          pub,
          report,
          list: (s) => this.once(s),
          resync: (s) => this.#resync(s),
          onEvent: (e, s) => this.#onEvent(e, s),
        },
        signal,
      )
    } finally {
      pub.close()
      this.#pub = null
    }
  }

  /** The step: one full listing (self detection included); returns every labelled container's translation. */
  async once(signal: AbortSignal): Promise<Translated[]> {
    await this.#detectSelf(signal)
    await this.#resync(signal)
    return [...this.#entries.values()].sort(byName)
  }

  /** What run() publishes: containers with traffic, sorted by name. */
  current(): PublishedSet {
    const all = [...this.#entries.values()].sort(byName)
    const live = all.filter((t): t is Translated & { server: Server } => t.server !== null && !this.#refused.has(t.id))
    return {
      servers: live.map((t) => t.server),
      names: live.map((t) => t.name),
      meta: live.map((t) => this.#meta.get(t.id) ?? { subject: { name: t.name, labels: {}, networks: [] }, owner: 'docker', created: '' }),
      problems: all.flatMap((t) => [...t.problems, ...t.notes].map((p) => ({ path: `docker:${t.name}`, message: `${p.path}: ${p.message}` }))),
      refused: all.flatMap((t) => {
        const reason = this.#refused.get(t.id)
        return reason === undefined ? [] : [{ name: t.name, reason }]
      }),
    }
  }

  #onEvent(e: DockerEvent, signal: AbortSignal): void {
    const action = e.Action ?? ''
    const attrs = e.Actor?.Attributes ?? {}
    if (e.Type === 'network') {
      const cid = attrs.container ?? ''
      if (cid === '') return
      // Our own networks changed: which network is shared changes for everyone.
      if (this.#self !== null && cid === this.#self.id)
        this.#background(
          this.once(signal).then(() => this.#pub?.changed(false)),
          signal,
        )
      else this.#background(this.#refresh(cid, signal), signal)
      return
    }
    const id = e.Actor?.ID ?? ''
    if (e.Type !== 'container' || id === '') return
    const labelled = attrs['balancer.enable'] !== undefined
    const at = e.timeNano !== undefined ? Math.floor(e.timeNano / 1e6) : (e.time ?? 0) * 1000
    if (action === 'kill') {
      const sig = attrs.signal ?? ''
      if (HARMLESS_SIGNALS.has(sig) || HARMLESS_NAMES.test(sig)) return
      if (labelled) this.#dying.set(id, at)
      return this.#remove(id)
    }
    if (action === 'stop' || action === 'die' || action === 'oom') {
      if (labelled && !this.#dying.has(id)) this.#dying.set(id, at)
      return this.#remove(id)
    }
    if (action === 'destroy') {
      this.#dying.delete(id)
      this.#remove(id)
      this.#gen.delete(id)
      return
    }
    if (action === 'pause') return this.#remove(id)
    if (action.startsWith('health_status')) {
      if (action.endsWith('healthy') && !action.endsWith('unhealthy')) return this.#background(this.#refresh(id, signal), signal)
      return this.#remove(id)
    }
    // start, restart, unpause, update, rename
    this.#background(this.#refresh(id, signal), signal)
  }

  #background(p: Promise<unknown>, signal: AbortSignal): void {
    inBackground(p, signal, this.#report)
  }

  #bump(id: string): number {
    const g = (this.#gen.get(id) ?? 0) + 1
    this.#gen.set(id, g)
    return g
  }

  #remove(id: string): void {
    this.#bump(id)
    this.#refused.delete(id)
    if (this.#entries.delete(id)) this.#pub?.changed(true)
  }

  async #refresh(id: string, signal: AbortSignal): Promise<void> {
    const gen = this.#bump(id)
    const c = await this.#inspect(id, signal)
    if (this.#gen.get(id) !== gen) return
    this.#apply(id, c)
    this.#pub?.changed(false)
  }

  #inspect(id: string, signal: AbortSignal): Promise<ContainerInspect | null> {
    return this.#client.inspectContainer(id, signal)
  }

  #apply(id: string, c: ContainerInspect | null): void {
    const killedAt = this.#dying.get(id)
    if (killedAt !== undefined && c !== null) {
      const started = Date.parse(c.State?.StartedAt ?? '')
      // Started again after it was told to stop: it is back.
      if (Number.isFinite(started) && started > killedAt) this.#dying.delete(id)
    }
    const t = c === null ? null : translateContainer(c, this.#self)
    if (t === null || c === null) {
      this.#entries.delete(id)
      this.#refused.delete(id)
      this.#meta.delete(id)
      return
    }
    const subject = containerSubject(c)
    this.#meta.set(id, { subject, owner: ownerOf('docker', subject.name, subject.labels), created: c.Created ?? '' })
    if (this.#constraint !== null && !this.#constraint.test(subject)) this.#refused.set(id, `does not match --docker-constraint ${JSON.stringify(this.#constraint.text)}`)
    else this.#refused.delete(id)
    if (this.#dying.has(id)) t.server = null
    this.#entries.set(id, t)
  }

  async #resync(signal: AbortSignal): Promise<void> {
    const before = new Map(this.#gen)
    const list = await this.#client.listContainers(LIST_FILTERS, signal)
    const seen = new Set(list.map((c) => c.Id))
    const inspected = await mapLimit(list, 8, async (c) => ({ id: c.Id, c: await this.#inspect(c.Id, signal) }))
    const unchanged = (id: string): boolean => this.#gen.get(id) === before.get(id)
    for (const { id, c } of inspected) if (unchanged(id)) this.#apply(id, c)
    for (const id of [...this.#entries.keys()]) {
      if (!seen.has(id) && unchanged(id)) {
        this.#entries.delete(id)
        this.#refused.delete(id)
        this.#meta.delete(id)
      }
    }
    for (const id of [...this.#dying.keys()]) if (!seen.has(id) && unchanged(id)) this.#dying.delete(id)
  }

  async #detectSelf(signal: AbortSignal): Promise<void> {
    const hint = selfHint(this.#probe)
    if (hint === null) {
      this.#self = null
      return
    }
    const c = await this.#inspect(hint, signal)
    this.#self = c === null ? null : { id: c.Id, networkIds: new Set(Object.values(c.NetworkSettings?.Networks ?? {}).map((n) => n.NetworkID ?? '')) }
  }
}

function byName(a: Translated, b: Translated): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
