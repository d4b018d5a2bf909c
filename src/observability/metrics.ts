// Prometheus metrics (text exposition format, prom-client). Nothing here
// runs per request: the data plane counts in plain arrays (engine/meter.ts)
// and a scrape takes one fresh PlaneSample (every worker asked at that
// moment, so counts are exact) and renders it. The balancer_* families are
// prom-client metric objects whose get() reads that sample: prom-client's own
// Counter and Histogram keep their values in the process that observes, and
// cannot take counts and histogram buckets summed over other processes.
// Process metrics (process_*, nodejs_*) come from prom-client's defaults for
// the main process, and balancer_worker_* for each worker.
//
// Label cardinality is bounded by the configuration: server, route, upstream
// (`host:port`), code class, state, listener, source. No path, no client
// address, no status code. Series of an upstream or route that the applied
// configuration no longer holds are gone from the next scrape.

import { Registry, collectDefaultMetrics } from 'prom-client'
import type { Metric } from 'prom-client'
import { CODE_CLASSES, DURATION_BUCKETS } from '../engine/meter.ts'
import type { UpstreamState } from '../engine/types.ts'
import type { PlaneSample, Sampler } from './sample.ts'

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE

const STATES: readonly UpstreamState[] = ['healthy', 'pending', 'unhealthy', 'ejected', 'draining']

/** What the main process knows beside the data plane. */
export interface ControlFacts {
  configVersion(): number
  reloads(): { applied: number; refused: number }
  /** True while the configuration asked for is refused and an older one serves (a port in use: retried). */
  refused?(): boolean
  /** The store's kind and whether it is reachable (the file store always is). */
  store(): { kind: string; up: boolean }
  /** Each discovery source and whether it is in sync. */
  discovery(): ReadonlyArray<{ source: string; up: boolean }>
}

interface Value {
  labels: Record<string, string | number>
  value: number
  metricName?: string
}

type Family = 'counter' | 'gauge' | 'histogram'

export class Metrics {
  readonly #registry = new Registry()
  readonly #sampler: Sampler
  readonly #facts: ControlFacts
  #sample: PlaneSample | null = null
  /** A scrape in progress: concurrent scrapes share its sample and text. */
  #running: Promise<string> | null = null

  constructor(sampler: Sampler, facts: ControlFacts) {
    this.#sampler = sampler
    this.#facts = facts
    collectDefaultMetrics({ register: this.#registry })
    this.#define()
  }

  /** The exposition text, from a fresh sample. */
  render(): Promise<string> {
    this.#running ??= this.#render().finally(() => (this.#running = null))
    return this.#running
  }

  async #render(): Promise<string> {
    this.#sample = await this.#sampler()
    try {
      return await this.#registry.metrics()
    } finally {
      this.#sample = null
    }
  }

  #family(name: string, help: string, type: Family, values: (s: PlaneSample) => Value[]): void {
    const metric = {
      name,
      help,
      type,
      aggregator: 'sum',
      get: () => {
        const s = this.#sample
        return Promise.resolve({ name, help, type, aggregator: 'sum', values: s === null ? [] : values(s) })
      },
      reset: () => undefined,
    }
    this.#registry.registerMetric(metric as unknown as Metric)
  }

  #define(): void {
    const facts = this.#facts
    this.#family('balancer_requests_total', 'Requests answered, by server, route, upstream (empty: none reached) and status class (none: no response was sent).', 'counter', (s) => {
      const out: Value[] = []
      for (const r of s.traffic.routes) {
        for (const u of r.upstreams) {
          // Every class of a configured upstream is shown from the start (a rate needs its zero); the rest once non-zero.
          CODE_CLASSES.forEach((cls, i) => {
            const v = u.codes[i] ?? 0
            if (v !== 0 || u.key !== '') out.push({ labels: { server: r.server, route: r.route, upstream: u.key, code_class: cls }, value: v })
          })
        }
      }
      for (const l of s.traffic.listeners) {
        CODE_CLASSES.forEach((cls, i) => {
          const v = l.codes[i] ?? 0
          if (v !== 0) out.push({ labels: { server: l.server, route: '', upstream: '', code_class: cls }, value: v })
        })
      }
      return out
    })
    this.#family('balancer_request_duration_seconds', 'Time from a request head parsed to its response sent, per route.', 'histogram', (s) => {
      const out: Value[] = []
      for (const r of s.traffic.routes) {
        const labels = { server: r.server, route: r.route }
        // Kept per upstream in the engine; the histogram is per route.
        const buckets = new Array<number>(DURATION_BUCKETS.length + 1).fill(0)
        let sum = 0
        for (const u of r.upstreams) {
          u.buckets.forEach((n, i) => (buckets[i] = (buckets[i] ?? 0) + n))
          sum += u.sum
        }
        let cum = 0
        DURATION_BUCKETS.forEach((le, i) => {
          cum += buckets[i] ?? 0
          out.push({ metricName: 'balancer_request_duration_seconds_bucket', labels: { ...labels, le }, value: cum })
        })
        cum += buckets[DURATION_BUCKETS.length] ?? 0
        out.push({ metricName: 'balancer_request_duration_seconds_bucket', labels: { ...labels, le: '+Inf' }, value: cum })
        out.push({ metricName: 'balancer_request_duration_seconds_sum', labels, value: sum })
        out.push({ metricName: 'balancer_request_duration_seconds_count', labels, value: cum })
      }
      return out
    })
    this.#family('balancer_upstream_state', 'Each upstream of each route: 1 for its current state, 0 for the others.', 'gauge', (s) => {
      const state = new Map(s.stats.upstreams.map((u) => [u.key, u.state]))
      const out: Value[] = []
      for (const r of s.traffic.routes) {
        for (const u of r.upstreams) {
          if (u.key === '') continue
          const cur = state.get(u.key)
          for (const st of STATES) out.push({ labels: { server: r.server, route: r.route, upstream: u.key, state: st }, value: cur === st ? 1 : 0 })
        }
      }
      return out
    })
    const perUpstream = (name: string, help: string, type: Family, pick: (u: PlaneSample['stats']['upstreams'][number]) => number): void =>
      this.#family(name, help, type, (s) => s.stats.upstreams.map((u) => ({ labels: { upstream: u.key }, value: pick(u) })))
    perUpstream('balancer_upstream_active_connections', 'Upstream connections carrying a request (connecting included).', 'gauge', (u) => u.active)
    perUpstream('balancer_upstream_idle_connections', 'Pooled idle keep-alive connections to the upstream.', 'gauge', (u) => u.idle)
    perUpstream('balancer_upstream_pending_requests', 'Requests waiting for a connection to the upstream (MaxConnections reached).', 'gauge', (u) => u.pending)
    perUpstream('balancer_upstream_failures_total', 'Failed attempts on the upstream (connect failures, resets, timeouts, bad responses).', 'counter', (u) => u.failures)
    perUpstream('balancer_retries_total', 'Requests sent to the upstream after failing on another one.', 'counter', (u) => u.retries)
    perUpstream('balancer_ejections_total', 'Passive ejections of the upstream.', 'counter', (u) => u.ejections)
    this.#family('balancer_client_connections', 'Open client connections, per listening address.', 'gauge', (s) =>
      s.stats.listeners.map((l) => ({ labels: { listener: l.key }, value: l.connections })),
    )
    this.#family('balancer_protocol_connections', 'Open client connections, per protocol (http1: HTTP/1.x, h2: HTTP/2).', 'gauge', (s) => {
      const n = { http1: 0, h2: 0 }
      for (const l of s.stats.listeners) {
        n.http1 += l.protocols?.http1 ?? 0
        n.h2 += l.protocols?.h2 ?? 0
      }
      return [
        { labels: { protocol: 'http1' }, value: n.http1 },
        { labels: { protocol: 'h2' }, value: n.h2 },
      ]
    })
    this.#family('balancer_protocol_requests_total', 'Requests routed, per client protocol (h2: HTTP/2 streams).', 'counter', (s) => [
      { labels: { protocol: 'http1' }, value: s.stats.requests?.http1 ?? 0 },
      { labels: { protocol: 'h2' }, value: s.stats.requests?.h2 ?? 0 },
    ])
    this.#family('balancer_in_flight_requests', 'Requests between their head and the end of their response.', 'gauge', (s) => [{ labels: {}, value: s.stats.inFlight }])
    this.#family('balancer_config_reloads_total', 'Configuration changes applied or refused (the last good one kept serving).', 'counter', () => {
      const r = facts.reloads()
      return [
        { labels: { result: 'applied' }, value: r.applied },
        { labels: { result: 'refused' }, value: r.refused },
      ]
    })
    this.#family(
      'balancer_config_refused',
      'Whether the configuration asked for (by the store, the API with ?force=true, discovery) is refused and an older one serves (1), e.g. a port in use, retried until it can be bound; GET /status lastError says why.',
      'gauge',
      () => [{ labels: {}, value: facts.refused?.() === true ? 1 : 0 }],
    )
    this.#family(
      'balancer_descriptors',
      'File descriptors of the engine process (with workers, the one with the fewest free): the limit, open now, and the reserve kept for client and upstream connections.',
      'gauge',
      (s) => {
        const d = s.stats.descriptors
        if (d === undefined || d.limit === null || d.open === null) return []
        return [
          { labels: { kind: 'limit' }, value: d.limit },
          { labels: { kind: 'open' }, value: d.open },
          { labels: { kind: 'reserve' }, value: d.reserve },
        ]
      },
    )
    this.#family('balancer_config_version', 'Version of the routing snapshot applied; increases with every applied change.', 'gauge', () => [{ labels: {}, value: facts.configVersion() }])
    this.#family('balancer_store_up', 'Whether the configuration store is reachable (1) or not (0).', 'gauge', () => {
      const st = facts.store()
      return [{ labels: { store: st.kind }, value: st.up ? 1 : 0 }]
    })
    this.#family('balancer_discovery_up', 'Whether each discovery source is in sync (1) or failing (0).', 'gauge', () =>
      facts.discovery().map((d) => ({ labels: { source: d.source }, value: d.up ? 1 : 0 })),
    )
    this.#family('balancer_access_log_lines_total', 'Access log lines written.', 'counter', (s) => (s.accessLog === null ? [] : [{ labels: {}, value: s.accessLog.lines }]))
    this.#family('balancer_access_log_dropped_lines_total', 'Access log lines dropped: the disk was too slow or failing.', 'counter', (s) =>
      s.accessLog === null ? [] : [{ labels: {}, value: s.accessLog.dropped }],
    )
    this.#family('balancer_workers', 'Engine worker processes running.', 'gauge', (s) => (s.workers.length === 0 ? [] : [{ labels: {}, value: s.workers.length }]))
    this.#family('balancer_worker_resident_memory_bytes', 'Resident memory of each engine worker process.', 'gauge', (s) => s.workers.map((w) => ({ labels: { worker: w.id }, value: w.rssBytes })))
    this.#family('balancer_worker_cpu_seconds_total', 'CPU time (user and system) of each engine worker process.', 'counter', (s) =>
      s.workers.map((w) => ({ labels: { worker: w.id }, value: w.cpuSeconds })),
    )
  }
}
