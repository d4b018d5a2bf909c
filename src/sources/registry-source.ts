// The runner every service registry shares: which services are followed (the
// ones configuration refers to, plus those the registry itself asks to be
// published), one follow loop per service, flap damping, coalesced
// publishing and the registry's health. The driver (consul/, etcd/,
// zookeeper/) only reads the registry.
//
// Safety: a driver reports trouble through error(), never through an empty
// set, so an outage keeps the last known instances. A removal is published at
// once (traffic leaves a removed instance within the publish, not after a
// coalescing window); arrivals within coalesceMs are one publish.
//
// The first publish is the registry's first complete set (what readiness
// waits for, main.ts): once the configuration said what to follow, the
// registry's own listing (Consul's tag-driven services) answered, and every
// followed service was read once. With nothing to follow, that is an empty
// set at once. A registry unreachable at start holds it back, as Docker
// unreachable does: what it would serve is unknown.

import type { Problem } from '../model/errors.ts'
import type { DiscoveredMeta } from '../model/admission.ts'
import type { Server } from '../model/types.ts'
import type { DiscoverySource, PublishDetail } from './source.ts'
import { Publisher } from './loop.ts'
import type { PublishedSet } from './loop.ts'
import type { DampingOptions } from './damping.ts'
import { Damper, DEFAULT_DAMPING } from './damping.ts'
import type { Instance, RegistryDriver, RegistryHealth } from './registry.ts'
import type { RegistryUrl } from '../kv/registry-url.ts'

export interface RegistrySourceOptions {
  /** Arrivals within this window are one publish. Default 20 ms. */
  coalesceMs?: number
  damping?: DampingOptions
}

interface Followed {
  ctl: AbortController
  /** null until the first read. */
  instances: Instance[] | null
  problems: Problem[]
  /** The last read failed (the instances are the last known). */
  failing: string | null
  /** The follow loop; settles after ctl aborts. */
  done: Promise<void>
}

export class RegistrySource implements DiscoverySource {
  readonly name: string
  readonly kind: string
  readonly location: string
  readonly #driver: RegistryDriver
  readonly #coalesceMs: number
  readonly #damper: Damper
  readonly #followed = new Map<string, Followed>()
  /** Services the configuration refers to. */
  #wanted = new Set<string>()
  /** Services the registry asks to publish (Consul tags). */
  #tagged = new Set<string>()
  #signal: AbortSignal | null = null
  #pub: Publisher | null = null
  #report: (err: Error | null) => void = () => {}
  #state: { state: RegistryHealth['state']; since: number; detail: string | null } = { state: 'connecting', since: Date.now(), detail: null }
  #releaseTimer: NodeJS.Timeout | null = null
  #discoverError: string | null = null
  /** follow() was called: the configuration's references are known. */
  #told = false
  /** The registry's own listing answered once (true without one). */
  #listed: boolean
  /** The first complete set went out; publishing is gated until then. */
  #complete = false

  constructor(url: Pick<RegistryUrl, 'name' | 'kind' | 'location'>, driver: RegistryDriver, opts: RegistrySourceOptions = {}) {
    this.name = url.name
    this.kind = url.kind
    this.location = url.location
    this.#driver = driver
    this.#coalesceMs = opts.coalesceMs ?? 20
    this.#damper = new Damper(opts.damping ?? DEFAULT_DAMPING)
    this.#listed = driver.discover === undefined
  }

  /** The services the configuration refers to in this registry; the runner follows exactly these (plus tagged ones). */
  follow(services: Iterable<string>): void {
    this.#wanted = new Set(services)
    this.#told = true
    this.#sync()
  }

  async run(signal: AbortSignal, publish: (servers: Server[], detail: PublishDetail) => void, report: (err: Error | null) => void): Promise<void> {
    const pub = new Publisher(this.#coalesceMs, () => this.current(), publish)
    this.#pub = pub
    this.#report = report
    this.#signal = signal
    const loops: Array<Promise<void>> = []
    if (this.#driver.discover !== undefined) {
      loops.push(
        this.#driver.discover(signal, {
          set: (services) => {
            this.#discoverError = null
            this.#tagged = new Set(services)
            this.#listed = true
            this.#sync()
            this.#settle()
            this.#changed(false)
          },
          error: (err) => {
            this.#discoverError = err.message
            this.#settle()
          },
        }),
      )
    }
    this.#sync()
    try {
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve()
        else signal.addEventListener('abort', () => resolve(), { once: true })
      })
      await Promise.allSettled([...loops, ...[...this.#followed.values()].map((f) => f.done)])
    } finally {
      if (this.#releaseTimer !== null) clearTimeout(this.#releaseTimer)
      pub.close()
      this.#pub = null
      this.#signal = null
      this.#driver.close()
    }
  }

  /** What is published: the tag-driven servers, and the instances of every followed service, damped ones held out. */
  current(): PublishedSet & { services: Record<string, Instance[]> } {
    const now = Date.now()
    const services: Record<string, Instance[]> = {}
    const problems: Problem[] = []
    let release: number | null = null
    for (const name of [...this.#followed.keys()].sort()) {
      const f = this.#followed.get(name) as Followed
      problems.push(...f.problems)
      if (f.instances === null) continue
      services[name] = f.instances.filter((i) => {
        const key = dampKey(name, i)
        if (!this.#damper.held(key, now)) return true
        const at = this.#damper.releaseAt(key, now)
        if (at !== null && (release === null || at < release)) release = at
        return false
      })
    }
    this.#scheduleRelease(release, now)
    let servers: Server[] = []
    let names: string[] = []
    let meta: DiscoveredMeta[] | undefined
    if (this.#driver.servers !== undefined) {
      const tagged = new Map<string, Instance[]>()
      for (const s of [...this.#tagged].sort()) {
        const list = services[s]
        if (list !== undefined) tagged.set(s, list)
      }
      const out = this.#driver.servers(tagged)
      servers = out.servers
      names = out.names
      meta = out.meta
      problems.push(...out.problems)
    }
    return { servers, names, problems, services, ...(meta === undefined ? {} : { meta }) }
  }

  health(): RegistryHealth {
    const services: Record<string, number> = {}
    const damped: string[] = []
    const now = Date.now()
    for (const [name, f] of [...this.#followed].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      services[name] = f.instances?.length ?? 0
      for (const i of f.instances ?? []) if (this.#damper.held(dampKey(name, i), now)) damped.push(`${name}/${i.Target}:${i.Port}`)
    }
    const s = this.#state
    return { name: this.name, kind: this.kind, location: this.location, state: s.state, since: new Date(s.since).toISOString(), detail: s.detail, services, damped }
  }

  /** Starts a follow loop for every service now wanted or tagged, stops the others. */
  #sync(): void {
    const signal = this.#signal
    if (signal === null) return
    const want = new Set([...this.#wanted, ...this.#tagged])
    for (const [name, f] of this.#followed) {
      if (want.has(name)) continue
      f.ctl.abort()
      this.#followed.delete(name)
      this.#changed(true)
    }
    for (const name of want) {
      if (this.#followed.has(name)) continue
      const ctl = new AbortController()
      const f: Followed = { ctl, instances: null, problems: [], failing: null, done: Promise.resolve() }
      this.#followed.set(name, f)
      const s = AbortSignal.any([signal, ctl.signal])
      f.done = this.#driver
        .follow(name, s, {
          set: (instances, problems) => {
            if (s.aborted) return
            this.#apply(name, f, instances, problems)
          },
          error: (err) => {
            if (s.aborted) return
            f.failing = err.message
            this.#settle()
          },
        })
        .catch((err: unknown) => {
          f.failing = err instanceof Error ? err.message : String(err)
          this.#settle()
        })
    }
    this.#settle()
    this.#changed(false)
  }

  #apply(name: string, f: Followed, instances: Instance[], problems: Problem[]): void {
    const now = Date.now()
    const before = f.instances ?? []
    const kept = new Set(instances.map((i) => dampKey(name, i)))
    let removed = false
    for (const i of before) {
      const key = dampKey(name, i)
      if (kept.has(key)) continue
      this.#damper.flap(key, now)
      removed = true
    }
    const first = f.instances === null
    f.instances = [...instances].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    f.problems = problems
    f.failing = null
    this.#settle()
    // The first read of a service and every removal go out at once.
    this.#changed(removed || first)
  }

  /** Publishes (urgent: at once), from the first complete set on; the first complete set goes out at once. */
  #changed(urgent: boolean): void {
    const pub = this.#pub
    if (pub === null) return
    if (!this.#complete) {
      if (!this.#told || !this.#listed || [...this.#followed.values()].some((f) => f.instances === null)) return
      this.#complete = true
      urgent = true
    }
    pub.changed(urgent)
  }

  /** Connected when every followed service (and the tag listing) was last read fine; reports each change of state once. */
  #settle(): void {
    const failing = [...this.#followed.entries()].filter(([, f]) => f.failing !== null)
    const detail = this.#discoverError ?? failing.map(([n, f]) => `${n}: ${f.failing}`)[0] ?? null
    const pending = [...this.#followed.values()].some((f) => f.instances === null && f.failing === null)
    const next: RegistryHealth['state'] = detail !== null ? 'unreachable' : pending ? this.#state.state : 'connected'
    if (next === this.#state.state && next !== 'unreachable') return
    if (next === 'unreachable' && this.#state.state === 'unreachable') {
      this.#state.detail = detail
      return
    }
    this.#state = { state: next, since: Date.now(), detail }
    if (next === 'unreachable') this.#report(new Error(`${this.kind} registry ${this.location}: ${detail ?? 'unreachable'}; the last known instances stay in use, retrying`))
    else if (next === 'connected') this.#report(null)
  }

  #scheduleRelease(at: number | null, now: number): void {
    if (this.#releaseTimer !== null) clearTimeout(this.#releaseTimer)
    this.#releaseTimer = null
    if (at === null) return
    this.#releaseTimer = setTimeout(
      () => {
        this.#releaseTimer = null
        this.#changed(false)
      },
      Math.max(10, at - now),
    )
  }
}

function dampKey(service: string, i: Instance): string {
  return `${service}\n${i.Target.toLowerCase()}:${i.Port}`
}
