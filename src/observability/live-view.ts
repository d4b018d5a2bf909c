// What the dashboard shows, computed in the main process from one
// PlaneSample a second: every server, route and upstream as the engine
// serves them now (so what appears is what is applied), with state, origin,
// requests per second, error rate and p99 over the last minute; per server,
// request and error rates over the last 15 minutes; and a timeline of recent
// changes. GET /events streams it (admin/routes/events.ts).
//
// The loop is split from its step: run(signal) ticks once a second (less
// often when a reading is slow: run()) and calls once(); tests and the API (after a change was applied) call once() to get
// a fresh view without waiting for the clock. Counters that went down (a
// worker restarted) count as zero for that step.

import { CODE_CLASSES, CODE_NONE, DURATION_BUCKETS } from '../engine/meter.ts'
import type { RouteTraffic, Traffic, UpstreamTraffic } from '../engine/meter.ts'
import type { UpstreamState } from '../engine/types.ts'
import type { PlaneSample, Sampler } from './sample.ts'

const TICK_MS = 1000
/** A reading taking d ms is followed by at least BUDGET * d ms without one. */
const BUDGET = 20
/** Rates, error rate and p99 are over this window. */
const WINDOW_MS = 60_000
/** Per-server plot length. */
const HISTORY_MS = 15 * 60_000
const TIMELINE_MAX = 200
const ERROR_CLASSES = [CODE_CLASSES.indexOf('5xx'), CODE_NONE]

export interface Figures {
  /** Requests per second over the window. */
  rps: number
  /** Share of requests answered 5xx or not at all, 0-1; null without requests. */
  errorRate: number | null
  /** 99th percentile duration in ms (bucket-interpolated); null without requests. */
  p99Ms: number | null
}

export interface UpstreamView extends Figures {
  key: string
  /** Where it comes from: `file`, `api`, a store, `docker: <container>`, `swarm: <service>`. */
  origin: string
  state: UpstreamState | 'unknown'
  active: number
  requests: number
}

export interface RouteView extends Figures {
  id: string
  name: string
  upstreams: UpstreamView[]
}

export interface ServerView extends Figures {
  server: string
  routes: RouteView[]
}

export interface HealthView {
  name: string
  up: boolean
  /** Epoch ms of the last change; null when unknown. */
  since: number | null
  lastError: string | null
}

export interface LiveState {
  at: number
  configVersion: number
  servers: ServerView[]
  store: HealthView
  discovery: HealthView[]
}

export interface Point {
  t: number
  rps: number
  errorRate: number
}

export interface TimelineEntry {
  at: number
  /** `config`, `upstream`, `discovery`, `store`, `drain`. */
  kind: string
  level: 'info' | 'warn' | 'error'
  text: string
}

export interface LiveInputs {
  sampler: Sampler
  configVersion(): number
  /** Where each upstream comes from, keyed `server upstreamKey`; an upstream not in it has `fallbackOrigin`. */
  origins(): { byKey: ReadonlyMap<string, string>; fallback: string }
  store(): HealthView
  discovery(): HealthView[]
}

export type LiveEvent = { type: 'state'; state: LiveState; points: Record<string, Point> } | { type: 'timeline'; entry: TimelineEntry }

export class LiveView {
  readonly #in: LiveInputs
  /** Samples of the last WINDOW_MS (and one before), oldest first. */
  #window: PlaneSample[] = []
  readonly #history = new Map<string, Point[]>()
  readonly #timeline: TimelineEntry[] = []
  readonly #subscribers = new Set<(e: LiveEvent) => void>()
  #state: LiveState | null = null
  #states = new Map<string, string>()
  #running: Promise<LiveState> | null = null
  #next: Promise<LiveState> | null = null

  constructor(inputs: LiveInputs) {
    this.#in = inputs
  }

  /**
   * Ticks until the signal aborts: every TICK_MS, or, when a reading takes
   * long (tens of thousands of upstreams), BUDGET times as long as the last
   * one took, so the view never takes more than 1/BUDGET of the main
   * process's time from the API and the store.
   */
  run(signal: AbortSignal): void {
    let timer: NodeJS.Timeout | null = null
    const tick = (): void => {
      const t0 = performance.now()
      void this.once()
        .catch(() => undefined)
        .then(() => {
          if (signal.aborted) return
          timer = setTimeout(tick, Math.max(TICK_MS, (performance.now() - t0) * BUDGET))
          timer.unref()
        })
    }
    timer = setTimeout(tick, TICK_MS)
    timer.unref()
    signal.addEventListener('abort', () => void (timer !== null && clearTimeout(timer)), { once: true })
  }

  subscribe(fn: (e: LiveEvent) => void): () => void {
    this.#subscribers.add(fn)
    return () => this.#subscribers.delete(fn)
  }

  /** What a new subscriber starts from. */
  snapshot(): { state: LiveState | null; history: Record<string, Point[]>; timeline: TimelineEntry[] } {
    return { state: this.#state, history: Object.fromEntries(this.#history), timeline: [...this.#timeline] }
  }

  record(kind: string, level: TimelineEntry['level'], text: string): void {
    const entry = { at: Date.now(), kind, level, text }
    this.#timeline.push(entry)
    if (this.#timeline.length > TIMELINE_MAX) this.#timeline.splice(0, this.#timeline.length - TIMELINE_MAX)
    this.#emit({ type: 'timeline', entry })
  }

  /**
   * The served configuration changed: a dashboard watching gets a reading
   * now; without one, the next tick shows it (a reading walks every
   * upstream, too much to repeat after each of many writes).
   */
  changed(): void {
    if (this.#subscribers.size > 0) void this.once().catch(() => undefined)
  }

  /**
   * Takes a sample, updates the view and tells subscribers. A call while a
   * sample is being taken gets the next one (taken right after), so a change
   * applied just before the call is in what it resolves with.
   */
  once(): Promise<LiveState> {
    if (this.#running === null) {
      this.#running = this.#once().finally(() => (this.#running = null))
      return this.#running
    }
    this.#next ??= this.#running
      .catch(() => undefined)
      .then(() => {
        this.#next = null
        return this.once()
      })
    return this.#next
  }

  async #once(): Promise<LiveState> {
    const s = await this.#in.sampler()
    const prev = this.#window[this.#window.length - 1]
    this.#window.push(s)
    while (this.#window.length > 2 && (this.#window[1] as PlaneSample).at <= s.at - WINDOW_MS) this.#window.shift()
    const first = this.#window[0] as PlaneSample
    const state = this.#view(first, s)
    this.#noteStateChanges(state)
    const points: Record<string, Point> = {}
    if (prev !== undefined) {
      // One index of the previous sample and one pass over the routes for every server (not one per server: 1,000 servers).
      const before = index(prev.traffic)
      const routes = byServer(s.traffic)
      for (const sv of state.servers) {
        const p = point(routes.get(sv.server) ?? [], before, prev, s)
        points[sv.server] = p
        let h = this.#history.get(sv.server)
        if (h === undefined) this.#history.set(sv.server, (h = []))
        h.push(p)
        while (h.length > 0 && (h[0] as Point).t < s.at - HISTORY_MS) h.shift()
      }
    }
    const shown = new Set(state.servers.map((x) => x.server))
    for (const server of this.#history.keys()) if (!shown.has(server)) this.#history.delete(server)
    this.#state = state
    this.#emit({ type: 'state', state, points })
    return state
  }

  #emit(e: LiveEvent): void {
    for (const fn of this.#subscribers) fn(e)
  }

  #view(from: PlaneSample, to: PlaneSample): LiveState {
    const seconds = Math.max(1, (to.at - from.at) / 1000)
    const states = new Map(to.stats.upstreams.map((u) => [u.key, u]))
    const servers = new Map<string, { view: ServerView; all: UpstreamTraffic[] }>()
    const before = index(from.traffic)
    const origins = this.#in.origins()
    for (const r of to.traffic.routes) {
      let sv = servers.get(r.server)
      if (sv === undefined) servers.set(r.server, (sv = { view: { server: r.server, routes: [], rps: 0, errorRate: null, p99Ms: null }, all: [] }))
      const upstreams: UpstreamView[] = []
      const routeDelta: UpstreamTraffic[] = []
      for (const u of r.upstreams) {
        const d = delta(before.get(`${r.id} ${u.key}`), u)
        routeDelta.push(d)
        sv.all.push(d)
        if (u.key === '') continue
        const live = states.get(u.key)
        upstreams.push({
          key: u.key,
          origin: origins.byKey.get(`${r.server} ${u.key}`) ?? origins.fallback,
          state: live?.state ?? 'unknown',
          active: live?.active ?? 0,
          requests: sum(u.codes),
          ...figures([d], seconds),
        })
      }
      sv.view.routes.push({ id: r.id, name: r.route, upstreams, ...figures(routeDelta, seconds) })
    }
    for (const { view, all } of servers.values()) {
      Object.assign(view, figures(all, seconds))
      view.routes.sort((a, b) => (a.name === 'default' ? -1 : b.name === 'default' ? 1 : a.name.localeCompare(b.name)))
    }
    const list = [...servers.values()].map((x) => x.view).sort((a, b) => a.server.localeCompare(b.server))
    return { at: to.at, configVersion: this.#in.configVersion(), servers: list, store: this.#in.store(), discovery: this.#in.discovery() }
  }

  /** Upstream state changes go to the timeline. */
  #noteStateChanges(state: LiveState): void {
    const next = new Map<string, string>()
    for (const sv of state.servers) for (const r of sv.routes) for (const u of r.upstreams) next.set(u.key, u.state)
    if (this.#state !== null) {
      for (const [key, st] of next) {
        const was = this.#states.get(key)
        if (was !== undefined && was !== st) this.record('upstream', st === 'healthy' ? 'info' : st === 'draining' || st === 'pending' ? 'warn' : 'error', `${key}: ${was} → ${st}`)
      }
    }
    this.#states = next
  }
}

function index(t: Traffic): Map<string, UpstreamTraffic> {
  const m = new Map<string, UpstreamTraffic>()
  for (const r of t.routes) for (const u of r.upstreams) m.set(`${r.id} ${u.key}`, u)
  return m
}

function sum(a: readonly number[]): number {
  let n = 0
  for (const x of a) n += x
  return n
}

/** to - from, element by element, never below zero (a restarted worker's counters start again). */
function delta(from: UpstreamTraffic | undefined, to: UpstreamTraffic): UpstreamTraffic {
  // The engine shares one set of zero arrays among idle upstreams: nothing to subtract.
  if (from === undefined || from.codes === to.codes) return to
  const sub = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => Math.max(0, x - (b[i] ?? 0)))
  return { key: to.key, codes: sub(to.codes, from.codes), buckets: sub(to.buckets, from.buckets), sum: Math.max(0, to.sum - from.sum) }
}

const NO_TRAFFIC: Figures = Object.freeze({ rps: 0, errorRate: null, p99Ms: null })

function figures(ds: readonly UpstreamTraffic[], seconds: number): Figures {
  let total = 0
  for (const d of ds) total += sum(d.codes)
  if (total === 0) return NO_TRAFFIC
  let errors = 0
  const buckets = new Array<number>(DURATION_BUCKETS.length + 1).fill(0)
  for (const d of ds) {
    for (const c of ERROR_CLASSES) errors += d.codes[c] ?? 0
    d.buckets.forEach((n, i) => (buckets[i] = (buckets[i] ?? 0) + n))
  }
  return { rps: total / seconds, errorRate: total === 0 ? null : errors / total, p99Ms: quantileMs(buckets, 0.99) }
}

/** The q-quantile of a non-cumulative histogram, interpolated inside its bucket (as Prometheus' histogram_quantile). */
export function quantileMs(buckets: readonly number[], q: number): number | null {
  const total = sum(buckets)
  if (total === 0) return null
  const rank = q * total
  let cum = 0
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i] ?? 0
    if (cum + n >= rank && n > 0) {
      if (i >= DURATION_BUCKETS.length) return (DURATION_BUCKETS[DURATION_BUCKETS.length - 1] as number) * 1000
      const lo = i === 0 ? 0 : (DURATION_BUCKETS[i - 1] as number)
      const hi = DURATION_BUCKETS[i] as number
      return (lo + ((hi - lo) * (rank - cum)) / n) * 1000
    }
    cum += n
  }
  return null
}

function byServer(t: Traffic): Map<string, RouteTraffic[]> {
  const m = new Map<string, RouteTraffic[]>()
  for (const r of t.routes) {
    const list = m.get(r.server)
    if (list === undefined) m.set(r.server, [r])
    else list.push(r)
  }
  return m
}

/** A server's request and error rates between two samples: `routes` are its routes in b, `before` indexes a. */
function point(routes: readonly RouteTraffic[], before: Map<string, UpstreamTraffic>, a: PlaneSample, b: PlaneSample): Point {
  const seconds = Math.max(0.001, (b.at - a.at) / 1000)
  let total = 0
  let errors = 0
  for (const r of routes) {
    for (const u of r.upstreams) {
      const d = delta(before.get(`${r.id} ${u.key}`), u)
      total += sum(d.codes)
      for (const c of ERROR_CLASSES) errors += d.codes[c] ?? 0
    }
  }
  return { t: b.at, rps: total / seconds, errorRate: total === 0 ? 0 : errors / total }
}
