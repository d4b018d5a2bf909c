// Swarm discovery: services labelled balancer.enable=true (deploy.labels) and
// their running tasks -> servers.
//
// What the daemon sends (Engine 20.10, API 1.41, seen in test/sources): it
// emits `service` create/update/remove and `node` events, and no `task`
// events. So task changes are followed like this:
//  - a `service` event lists that service's tasks at once and then follows
//    it (a listing every followMs) until its tasks have settled, bounded by
//    followLimitMs: a scale or rolling update is tracked as it happens;
//  - the `container` events of tasks on this node (kill/stop/die/start/
//    health_status, labelled com.docker.swarm.*) act at once: a task whose
//    container is told to stop leaves the set before its process exits, and
//    a task starting here triggers a listing of its service;
//  - a `node` event lists every service's tasks once;
//  - a full listing every resyncMs is only the backstop.
// Tasks not `running`, or whose desired state is not `running` (an update
// or scale-down is retiring them), are out.

import type { DockerClient, Filters } from '../../docker-api/client.ts'
import { DockerApiError } from '../../docker-api/client.ts'
import type { SelfProbe } from '../../docker-api/self.ts'
import { procProbe, selfHint } from '../../docker-api/self.ts'
import type { DockerEvent, SwarmService, SwarmTask } from '../../docker-api/types.ts'
import type { Server } from '../../model/types.ts'
import type { DiscoverySource, PublishDetail } from '../source.ts'
import type { PublishedSet } from '../loop.ts'
import { Backoff, sleep } from '../../kv/backoff.ts'
import { Publisher } from '../loop.ts'
import { inBackground, runEventSessions } from '../event-sessions.ts'
import type { ServiceTranslated, SwarmSelf } from './translate.ts'
import { serviceSubject, translateService } from './translate.ts'
import type { Constraint } from '../../model/constraint.ts'
import { ownerOf } from '../../model/admission.ts'

export interface SwarmSourceOptions {
  client: DockerClient
  /** Backstop full listing period. Default 30 s. */
  resyncMs?: number
  coalesceMs?: number
  /** Listing period while a service changes. Default 250 ms. */
  followMs?: number
  /** A followed service that never settles is left to the backstop after this. Default 120 s. */
  followLimitMs?: number
  minBackoffMs?: number
  maxBackoffMs?: number
  probe?: SelfProbe
  /** --swarm-constraint: labelled services that do not match get no traffic and are listed as refused. */
  constraint?: Constraint | null
}

const EVENT_FILTERS: Filters = {
  type: ['service', 'node', 'container'],
  event: ['create', 'update', 'remove', 'start', 'kill', 'stop', 'die', 'health_status'],
}
const SERVICE_FILTERS: Filters = { label: ['balancer.enable'] }
const TRANSITIONAL = new Set(['new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting'])

export class SwarmSource implements DiscoverySource {
  readonly name = 'swarm'
  readonly #client: DockerClient
  readonly #o: Required<Omit<SwarmSourceOptions, 'client' | 'probe' | 'constraint'>>
  readonly #constraint: Constraint | null
  readonly #probe: SelfProbe
  readonly #backoff: Backoff
  readonly #services = new Map<string, SwarmService>()
  readonly #tasks = new Map<string, SwarmTask[]>()
  /** Tasks whose container was told to stop on this node: out from that moment. */
  readonly #gone = new Set<string>()
  /** Services being followed, with the time the follow gives up. */
  readonly #following = new Map<string, number>()
  #self: SwarmSelf | null = null
  #pub: Publisher | null = null
  #report: (err: Error | null) => void = () => {}

  constructor(opts: SwarmSourceOptions) {
    this.#client = opts.client
    this.#probe = opts.probe ?? procProbe
    this.#o = {
      resyncMs: opts.resyncMs ?? 30_000,
      coalesceMs: opts.coalesceMs ?? 50,
      followMs: opts.followMs ?? 250,
      followLimitMs: opts.followLimitMs ?? 120_000,
      minBackoffMs: opts.minBackoffMs ?? 250,
      maxBackoffMs: opts.maxBackoffMs ?? 10_000,
    }
    this.#backoff = new Backoff(this.#o.minBackoffMs, this.#o.maxBackoffMs)
    this.#constraint = opts.constraint ?? null
  }

  async run(signal: AbortSignal, publish: (servers: Server[], detail: PublishDetail) => void, report: (err: Error | null) => void): Promise<void> {
    const pub = new Publisher(this.#o.coalesceMs, () => this.current(), publish)
    this.#pub = pub
    this.#report = report
    try {
      await runEventSessions(
        {
          client: this.#client,
          filters: EVENT_FILTERS,
          resyncMs: this.#o.resyncMs,
          backoff: this.#backoff,
          pub,
          report,
          list: (s) => this.once(s),
          resync: (s) => this.once(s),
          onEvent: (e, s) => this.#onEvent(e, s),
          ended: () => this.#following.clear(),
        },
        signal,
      )
    } finally {
      pub.close()
      this.#pub = null
    }
  }

  /** The step: self detection and one full listing; returns every labelled service's translation. */
  async once(signal: AbortSignal): Promise<ServiceTranslated[]> {
    await this.#detectSelf(signal)
    const services = await this.#manager((c) => c.listServices(SERVICE_FILTERS, signal))
    const tasks = await this.#manager((c) => c.listTasks({ 'desired-state': ['running'] }, signal))
    this.#services.clear()
    this.#tasks.clear()
    for (const s of services) {
      this.#services.set(s.ID, s)
      this.#tasks.set(s.ID, [])
    }
    for (const t of tasks) this.#tasks.get(t.ServiceID ?? '')?.push(t)
    this.#pruneGone()
    return this.#translated()
  }

  current(): PublishedSet {
    const all = this.#translated()
    const refused = new Map<string, string>()
    if (this.#constraint !== null) {
      for (const t of all) {
        const svc = this.#services.get(t.id)
        if (svc !== undefined && !this.#constraint.test(serviceSubject(svc, this.#tasks.get(t.id) ?? []))) {
          refused.set(t.id, `does not match --swarm-constraint ${JSON.stringify(this.#constraint.text)}`)
        }
      }
    }
    const live = all.filter((t): t is ServiceTranslated & { server: Server } => t.server !== null && !refused.has(t.id))
    return {
      servers: live.map((t) => t.server),
      names: live.map((t) => t.name),
      meta: live.map((t) => {
        const svc = this.#services.get(t.id)
        const subject = svc === undefined ? { name: t.name, labels: {}, networks: [] } : serviceSubject(svc, this.#tasks.get(t.id) ?? [])
        return { subject, owner: ownerOf('swarm', t.name, subject.labels), created: svc?.CreatedAt ?? '' }
      }),
      problems: all.flatMap((t) => [...t.problems, ...t.notes].map((p) => ({ path: `swarm:${t.name}`, message: `${p.path}: ${p.message}` }))),
      refused: all.flatMap((t) => {
        const reason = refused.get(t.id)
        return reason === undefined ? [] : [{ name: t.name, reason }]
      }),
    }
  }

  #translated(): ServiceTranslated[] {
    const out: ServiceTranslated[] = []
    for (const [id, svc] of this.#services) {
      const t = translateService(svc, this.#tasks.get(id) ?? [], this.#self, this.#gone)
      if (t !== null) out.push(t)
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1))
  }

  #onEvent(e: DockerEvent, signal: AbortSignal): void {
    const action = e.Action ?? ''
    const id = e.Actor?.ID ?? ''
    const attrs = e.Actor?.Attributes ?? {}
    if (e.Type === 'service') {
      if (action === 'remove') {
        this.#services.delete(id)
        this.#tasks.delete(id)
        this.#following.delete(id)
        this.#pub?.changed(true)
      } else this.#follow(id, signal)
      return
    }
    if (e.Type === 'node') {
      for (const sid of this.#services.keys()) this.#follow(sid, signal)
      return
    }
    if (e.Type !== 'container') return
    const task = attrs['com.docker.swarm.task.id']
    const service = attrs['com.docker.swarm.service.id']
    if (task === undefined || service === undefined) return
    const healthy = action.startsWith('health_status') && action.endsWith(' healthy')
    if (action === 'kill' || action === 'stop' || action === 'die' || (action.startsWith('health_status') && !healthy)) {
      if (!this.#gone.has(task)) {
        this.#gone.add(task)
        this.#pub?.changed(true)
      }
    }
    // A replacement is coming (or a task just started here): follow the service.
    if (this.#services.has(service) || action === 'start') this.#follow(service, signal)
  }

  /** Lists the service now, and again every followMs until its tasks settle (or followLimitMs passes). */
  #follow(serviceId: string, signal: AbortSignal): void {
    const until = Date.now() + this.#o.followLimitMs
    const running = this.#following.has(serviceId)
    this.#following.set(serviceId, until)
    if (running) return
    const loop = async (): Promise<void> => {
      try {
        for (;;) {
          const settled = await this.#listService(serviceId, signal)
          this.#pub?.changed(false)
          const deadline = this.#following.get(serviceId) ?? 0
          if (signal.aborted || settled || Date.now() > deadline) return
          await sleep(this.#o.followMs, signal)
        }
      } finally {
        this.#following.delete(serviceId)
      }
    }
    this.#background(loop(), signal)
  }

  /** Refreshes one service and its tasks; true when nothing about it is still changing. */
  async #listService(serviceId: string, signal: AbortSignal): Promise<boolean> {
    const svc = await this.#manager((c) => c.inspectService(serviceId, signal))
    if (svc === null || svc.Spec?.Labels?.['balancer.enable'] === undefined) {
      const had = this.#services.delete(serviceId)
      this.#tasks.delete(serviceId)
      if (had) this.#pub?.changed(true)
      return true
    }
    const tasks = await this.#manager((c) => c.listTasks({ service: [serviceId], 'desired-state': ['running'] }, signal))
    this.#services.set(serviceId, svc)
    this.#tasks.set(
      serviceId,
      tasks.filter((t) => t.ServiceID === serviceId),
    )
    this.#pruneGone()
    const updating = svc.UpdateStatus?.State === 'updating' || svc.UpdateStatus?.State === 'rollback_started'
    const want = svc.Spec?.Mode?.Replicated?.Replicas
    const runningCount = tasks.filter((t) => t.Status?.State === 'running').length
    const transitional = tasks.some((t) => TRANSITIONAL.has(t.Status?.State ?? ''))
    return !updating && !transitional && (want === undefined || runningCount === want)
  }

  /** A gone task that is no longer listed as meant to run can be forgotten. */
  #pruneGone(): void {
    const listed = new Set<string>()
    for (const ts of this.#tasks.values()) for (const t of ts) listed.add(t.ID)
    for (const id of this.#gone) if (!listed.has(id)) this.#gone.delete(id)
  }

  #background(p: Promise<unknown>, signal: AbortSignal): void {
    inBackground(p, signal, this.#report)
  }

  /** A call only a Swarm manager answers: a 503 says this node is not one. */
  async #manager<T>(call: (c: DockerClient) => Promise<T>): Promise<T> {
    try {
      return await call(this.#client)
    } catch (err) {
      if (err instanceof DockerApiError && err.status === 503) {
        throw new Error(`swarm discovery needs a Swarm manager node: ${err.message}`, { cause: err })
      }
      throw err
    }
  }

  async #detectSelf(signal: AbortSignal): Promise<void> {
    const hint = selfHint(this.#probe)
    if (hint === null) {
      this.#self = null
      return
    }
    const c = await this.#client.inspectContainer(hint, signal)
    this.#self = c === null ? null : { id: c.Id, networkIds: new Set(Object.values(c.NetworkSettings?.Networks ?? {}).map((n) => n.NetworkID ?? '')) }
  }
}
