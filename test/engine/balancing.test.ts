// Load balancing as the product brief defines it: the lowest Priority with an
// available member takes all traffic, shared by Weight with smooth weighted
// round robin (no bursts), per request even on one keep-alive connection;
// the next tier takes over only when the whole tier above is unavailable.

import { afterEach, describe, expect, it } from 'vitest'
import { httpGet, watchedAgent } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { snapshotFor } from '../support/snapshot.ts'
import type { TargetSpec } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

async function ups(...names: string[]): Promise<HttpUpstream[]> {
  const list = await Promise.all(names.map((name) => httpUpstream(undefined, { name })))
  for (const u of list) cleanup.push(() => u.close())
  return list
}

async function engine(upstreams: TargetSpec[], fallbacks: TargetSpec[] = []): Promise<StartedEngine> {
  const e = await startEngine(snapshotFor({ routes: [{ upstreams, fallbacks }] }, 1))
  cleanup.push(() => e.stop())
  return e
}

const at = (u: HttpUpstream, weight = 1, priority = 1): TargetSpec => ({ host: '127.0.0.1', port: u.port, weight, priority })

/** Sends n sequential requests over one keep-alive connection; returns who answered each. */
async function sequence(port: number, n: number): Promise<string[]> {
  const w = watchedAgent()
  try {
    const out: string[] = []
    for (let i = 0; i < n; i++) out.push((await httpGet(port, `/${i}`, {}, { agent: w.agent })).text)
    expect(w.sockets()).toBe(1)
    return out
  } finally {
    w.destroy()
  }
}

const count = (xs: string[], x: string): number => xs.filter((y) => y === x).length
const longestRun = (xs: string[], x: string): number => {
  let best = 0
  let run = 0
  for (const y of xs) {
    run = y === x ? run + 1 : 0
    best = Math.max(best, run)
  }
  return best
}

describe('weights', () => {
  it('equal weights alternate request by request on a single keep-alive connection', async () => {
    const [a, b] = await ups('a', 'b')
    if (a === undefined || b === undefined) throw new Error('setup')
    const seq = await sequence((await engine([at(a), at(b)])).port, 20)
    expect(count(seq, 'a')).toBe(10)
    expect(longestRun(seq, 'a')).toBe(1)
    expect(longestRun(seq, 'b')).toBe(1)
  })

  it('weights 1:3 give exactly 1:3 over whole cycles, without bursts', async () => {
    const [a, b] = await ups('a', 'b')
    if (a === undefined || b === undefined) throw new Error('setup')
    const seq = await sequence((await engine([at(a, 1), at(b, 3)])).port, 40)
    expect([count(seq, 'a'), count(seq, 'b')]).toEqual([10, 30])
    expect(longestRun(seq, 'a')).toBe(1)
    expect(longestRun(seq, 'b')).toBeLessThanOrEqual(3)
  })

  it('weights 5:1:1 are spread, not sent in a block of five (smooth WRR)', async () => {
    const [a, b, c] = await ups('a', 'b', 'c')
    if (a === undefined || b === undefined || c === undefined) throw new Error('setup')
    const seq = await sequence((await engine([at(a, 5), at(b, 1), at(c, 1)])).port, 70)
    expect([count(seq, 'a'), count(seq, 'b'), count(seq, 'c')]).toEqual([50, 10, 10])
    // Smooth WRR for 5:1:1 is a a b a c a a: never more than four a's in a row across cycles.
    expect(longestRun(seq, 'a')).toBeLessThanOrEqual(4)
  })
})

describe('priorities and fallbacks', () => {
  it('only the lowest priority serves while it is up; the next tier takes over when it is all down; fallbacks stay unused', async () => {
    const [p1a, p1b, p2, fb] = await ups('p1a', 'p1b', 'p2', 'fb')
    if (p1a === undefined || p1b === undefined || p2 === undefined || fb === undefined) throw new Error('setup')
    const e = await engine([at(p2, 1, 2), at(p1a, 1, 1), at(p1b, 1, 1)], [at(fb)])
    const first = await sequence(e.port, 20)
    expect(new Set(first)).toEqual(new Set(['p1a', 'p1b']))

    await p1a.close()
    const half = await sequence(e.port, 10)
    expect(half).toEqual(Array(10).fill('p1b'))

    await p1b.close()
    const second = await sequence(e.port, 10)
    expect(second).toEqual(Array(10).fill('p2'))
    expect(fb.requests).toEqual([])
  })

  it('priority 0 is preferred over priority 1', async () => {
    const [zero, one] = await ups('zero', 'one')
    if (zero === undefined || one === undefined) throw new Error('setup')
    const seq = await sequence((await engine([at(one, 1, 1), at(zero, 1, 0)])).port, 6)
    expect(seq).toEqual(Array(6).fill('zero'))
  })
})
