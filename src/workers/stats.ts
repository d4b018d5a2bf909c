// Merging the engine stats of several workers into one EngineStats, the shape
// GET /status shows for a single engine: counters are summed, a listener or
// an upstream appears once, and an upstream's state is the worst any worker
// reports (each worker judges its upstreams from its own traffic). Traffic
// counters are summed the same way (mergeTraffic).

import type { DescriptorBudget } from '../engine/fd-budget.ts'
import type { CheckStats, EngineStats, ListenerStats, UpstreamState, UpstreamStats } from '../engine/types.ts'
import type { ListenerTraffic, RouteTraffic, Traffic, UpstreamTraffic } from '../engine/meter.ts'

const STATE_RANK: Record<UpstreamState, number> = { healthy: 0, pending: 1, draining: 2, ejected: 3, unhealthy: 4 }

export const EMPTY_STATS: EngineStats = Object.freeze({ snapshotVersion: 0, listeners: [], upstreams: [], inFlight: 0 })

export function mergeStats(all: readonly EngineStats[]): EngineStats {
  if (all.length === 1) return all[0] as EngineStats
  const listeners = new Map<string, ListenerStats>()
  const upstreams = new Map<string, UpstreamStats>()
  let inFlight = 0
  const requests = { http1: 0, h2: 0 }
  // The oldest version any worker serves: the group has applied no more than that.
  let version = all.length === 0 ? 0 : Number.MAX_SAFE_INTEGER
  for (const s of all) {
    inFlight += s.inFlight
    requests.http1 += s.requests?.http1 ?? 0
    requests.h2 += s.requests?.h2 ?? 0
    version = Math.min(version, s.snapshotVersion)
    for (const l of s.listeners) {
      const m = listeners.get(l.key)
      if (m === undefined) listeners.set(l.key, { ...l, ...(l.protocols === undefined ? {} : { protocols: { ...l.protocols } }) })
      else {
        m.connections += l.connections
        if (l.protocols !== undefined) m.protocols = { http1: (m.protocols?.http1 ?? 0) + l.protocols.http1, h2: (m.protocols?.h2 ?? 0) + l.protocols.h2 }
        m.draining = m.draining || l.draining
      }
    }
    for (const u of s.upstreams) {
      const m = upstreams.get(u.key)
      if (m === undefined) upstreams.set(u.key, { ...u, checks: u.checks.map((c) => ({ ...c })) })
      else mergeUpstream(m, u)
    }
  }
  const out: EngineStats = { snapshotVersion: version, listeners: [...listeners.values()], upstreams: [...upstreams.values()], inFlight, requests }
  // Each worker has its own descriptor table: the one with the fewest free is the one that refuses first.
  let fewest: DescriptorBudget | undefined
  const free = (d: DescriptorBudget): number => (d.limit === null || d.open === null ? Infinity : d.limit - d.open)
  for (const s of all) if (s.descriptors !== undefined && (fewest === undefined || free(s.descriptors) < free(fewest))) fewest = s.descriptors
  if (fewest !== undefined) out.descriptors = fewest
  if (all.some((s) => s.accepts !== undefined)) {
    out.accepts = { extra: 0, exhausted: 0 }
    for (const s of all) {
      out.accepts.extra += s.accepts?.extra ?? 0
      out.accepts.exhausted += s.accepts?.exhausted ?? 0
    }
  }
  return out
}

function mergeUpstream(m: UpstreamStats, u: UpstreamStats): void {
  if (STATE_RANK[u.state] > STATE_RANK[m.state]) m.state = u.state
  if (u.ejectedUntil !== null && (m.ejectedUntil === null || u.ejectedUntil > m.ejectedUntil)) m.ejectedUntil = u.ejectedUntil
  m.active += u.active
  m.idle += u.idle
  m.pending += u.pending
  m.requests += u.requests
  m.failures += u.failures
  m.consecutiveFailures = Math.max(m.consecutiveFailures, u.consecutiveFailures)
  m.retries += u.retries
  m.ejections += u.ejections
  for (const c of u.checks) {
    const i = m.checks.findIndex((x) => x.probe === c.probe)
    if (i < 0) m.checks.push({ ...c })
    else if (newer(c, m.checks[i] as CheckStats)) m.checks[i] = { ...c }
  }
}

/** The most recent check result wins. */
function newer(a: CheckStats, b: CheckStats): boolean {
  return (a.lastAt ?? 0) > (b.lastAt ?? 0)
}

/** Sums the traffic counters of several workers: by route id and upstream key, by listener key. */
export function mergeTraffic(all: readonly Traffic[]): Traffic {
  if (all.length === 1) return all[0] as Traffic
  const routes = new Map<string, RouteTraffic>()
  const listeners = new Map<string, ListenerTraffic>()
  for (const t of all) {
    for (const r of t.routes) {
      const m = routes.get(r.id)
      if (m === undefined) {
        routes.set(r.id, { ...r, upstreams: r.upstreams.map(copyUpstream) })
        continue
      }
      for (const u of r.upstreams) {
        const mu = m.upstreams.find((x) => x.key === u.key)
        if (mu === undefined) m.upstreams.push(copyUpstream(u))
        else {
          addInto(mu.codes, u.codes)
          addInto(mu.buckets, u.buckets)
          mu.sum += u.sum
        }
      }
    }
    for (const l of t.listeners) {
      const m = listeners.get(l.key)
      if (m === undefined) listeners.set(l.key, { ...l, codes: [...l.codes] })
      else addInto(m.codes, l.codes)
    }
  }
  return { routes: [...routes.values()], listeners: [...listeners.values()] }
}

function copyUpstream(u: UpstreamTraffic): UpstreamTraffic {
  return { key: u.key, codes: [...u.codes], buckets: [...u.buckets], sum: u.sum }
}

function addInto(into: number[], from: readonly number[]): void {
  for (let i = 0; i < from.length; i++) into[i] = (into[i] ?? 0) + (from[i] as number)
}
