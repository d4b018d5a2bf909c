import { describe, expect, it } from 'vitest'
import type { EngineStats, UpstreamStats } from '../../src/engine/types.ts'
import { mergeStats } from '../../src/workers/stats.ts'
import { upstreamStats } from './fixtures.ts'

const up = upstreamStats

function engine(over: Partial<EngineStats>): EngineStats {
  return { snapshotVersion: 3, listeners: [], upstreams: [], inFlight: 0, ...over }
}

describe('mergeStats', () => {
  it('sums counters, lists each listener and upstream once, keeps the worst state and the oldest version', () => {
    const a = engine({
      snapshotVersion: 4,
      inFlight: 2,
      requests: { http1: 10, h2: 4 },
      listeners: [{ key: '*:80', port: 80, connections: 5, protocols: { http1: 4, h2: 1 }, draining: false }],
      upstreams: [up('a:1', { requests: 10, failures: 1, active: 1, idle: 3, consecutiveFailures: 1 }), up('b:1', { requests: 1 })],
    })
    const b = engine({
      snapshotVersion: 3,
      inFlight: 1,
      requests: { http1: 5, h2: 1 },
      listeners: [{ key: '*:80', port: 80, connections: 7, protocols: { http1: 5, h2: 2 }, draining: false }],
      upstreams: [up('a:1', { requests: 5, state: 'ejected', ejectedUntil: 1000, consecutiveFailures: 4, ejections: 1 })],
    })
    expect(mergeStats([a, b])).toEqual({
      snapshotVersion: 3,
      inFlight: 3,
      requests: { http1: 15, h2: 5 },
      listeners: [{ key: '*:80', port: 80, connections: 12, protocols: { http1: 9, h2: 3 }, draining: false }],
      upstreams: [up('a:1', { requests: 15, failures: 1, active: 1, idle: 3, consecutiveFailures: 4, state: 'ejected', ejectedUntil: 1000, ejections: 1 }), up('b:1', { requests: 1 })],
    })
  })

  it('keeps the most recent result of each active check', () => {
    const check = (lastAt: number, lastResult: string): UpstreamStats['checks'][number] => ({ probe: 'http GET /healthz', state: 'healthy', lastResult, lastAt, streak: 1 })
    const m = mergeStats([engine({ upstreams: [up('a:1', { checks: [check(10, '200')] })] }), engine({ upstreams: [up('a:1', { checks: [check(20, '503')] })] })])
    expect(m.upstreams[0]?.checks).toEqual([check(20, '503')])
  })

  it('does not change its inputs', () => {
    const a = engine({ listeners: [{ key: 'k', port: 1, connections: 1, draining: false }], upstreams: [up('a:1', { requests: 1 })] })
    const copy = structuredClone(a)
    mergeStats([a, engine({ listeners: [{ key: 'k', port: 1, connections: 2, draining: true }], upstreams: [up('a:1', { requests: 2 })] })])
    expect(a).toEqual(copy)
  })
})
