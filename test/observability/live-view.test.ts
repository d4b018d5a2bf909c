// The dashboard's figures from successive readings of the data plane:
// rates and error rate over the last minute, p99 from the duration buckets,
// per-server plot points, a counter reset counted as zero, and upstream
// state changes on the timeline.
import { describe, expect, it } from 'vitest'
import { DURATION_BUCKETS } from '../../src/engine/meter.ts'
import type { UpstreamState } from '../../src/engine/types.ts'
import { LiveView, quantileMs } from '../../src/observability/live-view.ts'
import type { LiveEvent } from '../../src/observability/live-view.ts'
import type { PlaneSample } from '../../src/observability/sample.ts'

const N = DURATION_BUCKETS.length + 1

/** A reading at `at` ms: one route on :80 with upstream a (ok 2xx, bad 5xx, all in the 5-10 ms bucket) in `state`. */
function reading(at: number, ok: number, bad: number, state: UpstreamState): PlaneSample {
  const buckets = new Array<number>(N).fill(0)
  buckets[DURATION_BUCKETS.indexOf(0.01)] = ok + bad
  return {
    at,
    stats: {
      snapshotVersion: 1,
      listeners: [],
      inFlight: 0,
      upstreams: [
        { key: 'a:1', host: 'a', port: 1, state, ejectedUntil: null, checks: [], active: 0, idle: 0, pending: 0, requests: ok + bad, failures: 0, consecutiveFailures: 0, retries: 0, ejections: 0 },
      ],
    },
    traffic: {
      routes: [
        {
          id: ':80#default',
          server: ':80',
          route: 'default',
          upstreams: [
            { key: 'a:1', codes: [0, ok, 0, 0, bad, 0], buckets, sum: 0 },
            { key: '', codes: [0, 0, 0, 0, 0, 0], buckets: new Array<number>(N).fill(0), sum: 0 },
          ],
        },
      ],
      listeners: [],
    },
    workers: [],
    accessLog: null,
  }
}

function view(samples: PlaneSample[]): { live: LiveView; events: LiveEvent[] } {
  let i = 0
  const live = new LiveView({
    sampler: () => Promise.resolve(samples[Math.min(i++, samples.length - 1)] as PlaneSample),
    configVersion: () => 1,
    origins: () => ({ byKey: new Map([[':80 a:1', 'docker: web-1']]), fallback: 'file' }),
    store: () => ({ name: 'file', up: true, since: null, lastError: null }),
    discovery: () => [],
  })
  const events: LiveEvent[] = []
  live.subscribe((e) => events.push(e))
  return { live, events }
}

describe('LiveView', () => {
  it('gives req/s, error rate and p99 over the window, per upstream, route and server, with the origin', async () => {
    const t = 1_000_000
    const { live } = view([reading(t, 0, 0, 'healthy'), reading(t + 10_000, 90, 10, 'healthy')])
    await live.once()
    const s = await live.once()
    const sv = s.servers[0]
    expect(sv?.server).toBe(':80')
    expect(sv?.rps).toBeCloseTo(10)
    expect(sv?.errorRate).toBeCloseTo(0.1)
    const u = sv?.routes[0]?.upstreams[0]
    expect(u).toMatchObject({ key: 'a:1', origin: 'docker: web-1', state: 'healthy', requests: 100 })
    expect(u?.p99Ms).toBeGreaterThan(5)
    expect(u?.p99Ms).toBeLessThanOrEqual(10)
    expect(live.snapshot().history[':80']).toEqual([{ t: t + 10_000, rps: 10, errorRate: 0.1 }])
  })

  it('counts a counter that went down (a restarted worker) as zero, and puts state changes on the timeline', async () => {
    const t = 2_000_000
    const { live, events } = view([reading(t, 50, 0, 'healthy'), reading(t + 1000, 10, 0, 'unhealthy')])
    await live.once()
    const s = await live.once()
    expect(s.servers[0]?.rps).toBe(0)
    const entries = events.flatMap((e) => (e.type === 'timeline' ? [e.entry] : []))
    expect(entries).toEqual([expect.objectContaining({ kind: 'upstream', level: 'error', text: 'a:1: healthy → unhealthy' })])
  })

  it('interpolates the quantile inside its bucket, as histogram_quantile does', () => {
    const b = new Array<number>(N).fill(0)
    b[0] = 100 // (0, 1 ms]
    expect(quantileMs(b, 0.99)).toBeCloseTo(0.99)
    b[N - 1] = 1000 // beyond the last bound
    expect(quantileMs(b, 0.99)).toBe(10_000)
    expect(quantileMs(new Array<number>(N).fill(0), 0.99)).toBeNull()
  })
})
