// A worker's figures by difference: through a JSON round trip each step (as
// the IPC channel carries them), the primary's copy is the worker's latest
// figures, and a step that changes one upstream of many carries that one.

import { describe, expect, it } from 'vitest'
import type { CheckStats, EngineStats, UpstreamStats } from '../../src/engine/types.ts'
import { StatsReceiver, StatsSender } from '../../src/workers/stats-delta.ts'
import type { StatsDelta } from '../../src/workers/stats-delta.ts'
import { upstreamStats } from './fixtures.ts'

const up = upstreamStats

const check = (over: Partial<CheckStats> = {}): CheckStats => ({ probe: 'tcp', state: 'healthy', lastResult: 'ok', lastAt: 1, streak: 1, ...over })

function engine(upstreams: UpstreamStats[], version = 1): EngineStats {
  return { snapshotVersion: version, listeners: [{ key: '*:80', port: 80, tls: false, connections: 2, draining: false }], upstreams, inFlight: 1 }
}

const wire = (d: StatsDelta): StatsDelta => JSON.parse(JSON.stringify(d)) as StatsDelta
const byKey = (s: EngineStats | null) => (s === null ? null : { ...s, upstreams: [...s.upstreams].sort((a, b) => (a.key < b.key ? -1 : 1)) })

describe('stats by difference', () => {
  it('the primary holds the worker latest figures after each delta, a sample resets both ends', () => {
    const sender = new StatsSender()
    const receiver = new StatsReceiver()
    expect(receiver.stats()).toBeNull()
    const many = Array.from({ length: 1000 }, (_, i) => up(`10.0.${i >> 8}.${i & 255}:80`))
    const steps: EngineStats[] = [
      engine(many),
      engine(
        many.map((u, i) => (i === 7 ? up(u.key, { requests: 1, active: 1 }) : u)),
        2,
      ),
      engine([...many.slice(1), up('new:80', { checks: [check()] })], 3),
      engine([...many.slice(1), up('new:80', { checks: [check({ state: 'unhealthy', streak: 2 })] })], 3),
    ]
    const sizes: number[] = []
    for (const s of steps) {
      const d = wire(sender.delta(s))
      sizes.push(d.upstreams.length + d.gone.length)
      receiver.apply(d)
      expect(byKey(receiver.stats())).toEqual(byKey(s))
    }
    // The first step is whole; then the upstream that changed; one gone, one added and the changed one back; one check changed.
    expect(sizes).toEqual([1000, 1, 3, 1])
    const sample = engine([up('only:80', { requests: 9 })], 4)
    sender.reset(sample)
    receiver.set(wire(sample as unknown as StatsDelta) as unknown as EngineStats)
    const after = engine([up('only:80', { requests: 10 })], 4)
    receiver.apply(wire(sender.delta(after)))
    expect(byKey(receiver.stats())).toEqual(byKey(after))
  })

  it('a change of any one field of an upstream or of its check is sent', () => {
    const base = up('a:80', { checks: [check()] })
    const other: Record<string, unknown> = {
      host: '10.0.0.2',
      port: 81,
      state: 'ejected',
      ejectedUntil: 5,
      active: 1,
      idle: 1,
      pending: 1,
      requests: 1,
      failures: 1,
      consecutiveFailures: 1,
      retries: 1,
      ejections: 1,
    }
    const fields = Object.keys(base).filter((k) => k !== 'key' && k !== 'checks')
    expect(fields.sort()).toEqual(Object.keys(other).sort())
    const checkOther: Record<string, unknown> = { probe: 'http GET  / 200', state: 'unhealthy', lastResult: '503', lastAt: 2, streak: 3 }
    expect(Object.keys(check()).sort()).toEqual(Object.keys(checkOther).sort())
    const changes: UpstreamStats[] = [
      ...fields.map((k) => ({ ...base, [k]: other[k] }) as UpstreamStats),
      ...Object.keys(checkOther).map((k) => ({ ...base, checks: [{ ...check(), [k]: checkOther[k] }] }) as UpstreamStats),
      { ...base, checks: [] },
    ]
    for (const changed of changes) {
      const sender = new StatsSender()
      sender.delta(engine([base]))
      expect(sender.delta(engine([changed])).upstreams).toEqual([changed])
    }
  })

  it('an apply answer carries the upstreams the apply added and removed, the next whole delta the rest', () => {
    const sender = new StatsSender()
    const receiver = new StatsReceiver()
    const many = Array.from({ length: 100 }, (_, i) => up(`10.0.0.${i}:80`))
    receiver.apply(wire(sender.delta(engine(many))))
    // The apply adds new:80 and removes 10.0.0.0:80; 10.0.0.5:80 served a request meanwhile.
    const now = engine([...many.slice(1).map((u, i) => (i === 4 ? up(u.key, { requests: 1 }) : u)), up('new:80')], 2)
    const seen: string[] = []
    const only = now.upstreams.filter((u) => u.key === 'new:80')
    const d = wire(
      sender.applied(
        {
          stats: (keys) => {
            seen.push(...(keys ?? ['(every upstream)']))
            return { ...now, upstreams: only }
          },
        },
        {
          version: 2,
          listeners: new Map(),
          targets: new Map(),
          diff: {
            base: { version: 1, listeners: new Map(), targets: new Map() },
            listeners: new Set(),
            addedTargets: new Map([['new:80', { host: 'new', port: 80 }]]),
            removedTargets: ['10.0.0.0:80'],
          },
        },
      ),
    )
    expect(seen).toEqual(['new:80', '10.0.0.0:80'])
    expect(d.upstreams.map((u) => u.key)).toEqual(['new:80'])
    expect(d.gone).toEqual(['10.0.0.0:80'])
    receiver.apply(d)
    const held = receiver.stats()
    expect(held?.snapshotVersion).toBe(2)
    expect(held?.upstreams.find((u) => u.key === '10.0.0.5:80')?.requests).toBe(0)
    // The next periodic delta brings the counter that changed, and only that.
    const next = wire(sender.delta(now))
    expect(next.upstreams.map((u) => u.key)).toEqual(['10.0.0.5:80'])
    expect(next.gone).toEqual([])
    receiver.apply(next)
    expect(byKey(receiver.stats())).toEqual(byKey(now))
    // A snapshot compiled whole gets a whole delta.
    seen.length = 0
    sender.applied(
      {
        stats: (keys) => {
          seen.push(...(keys ?? ['(every upstream)']))
          return now
        },
      },
      { version: 3, listeners: new Map(), targets: new Map() },
    )
    expect(seen).toEqual(['(every upstream)'])
  })

  it('an unchanged step carries no upstream', () => {
    const sender = new StatsSender()
    const s = engine([up('a:80'), up('b:80')])
    sender.delta(s)
    const d = sender.delta(JSON.parse(JSON.stringify(s)) as EngineStats)
    expect(d.upstreams).toEqual([])
    expect(d.gone).toEqual([])
  })
})
