// Failover under steady keep-alive load with upstreams in their own
// processes: killed (SIGKILL), frozen (SIGSTOP: connections are accepted,
// nothing answers), answering slowly, restarted. Counts the requests that
// failed around each event and the time to eject and to readmit; prints them
// as `[measure]` lines. Assertions are on behaviour; times are only printed.

import { afterEach, describe, expect, it } from 'vitest'
import type { CheckPlan } from '../../src/compiler/snapshot.ts'
import type { UpstreamStats } from '../../src/engine/types.ts'
import { ChildUpstream } from '../support/child-upstream.ts'
import { startEngine } from '../support/engine.ts'
import type { EngineTestOptions, StartedEngine } from '../support/engine.ts'
import { Load } from '../support/load.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import type { RouteSpec, TargetSpec } from '../support/snapshot.ts'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const CHECK: Partial<CheckPlan> = { type: 'http', path: '/healthz', intervalMs: 100, timeoutMs: 300, rise: 2, fall: 2, probe: 'http GET  /healthz 200-399' }

async function child(name: string): Promise<ChildUpstream> {
  const c = await ChildUpstream.start(name)
  cleanup.push(() => c.close())
  return c
}

async function engine(route: RouteSpec, opts: EngineTestOptions = {}): Promise<StartedEngine> {
  const e = await startEngine(snapshotFor({ routes: [route] }, 1), { responseTimeoutMs: 1000, ...opts })
  cleanup.push(() => e.stop())
  return e
}

function load(e: StartedEngine): Load {
  const l = new Load(e.port, { concurrency: 4, gapMs: 5, max: 6000 })
  cleanup.push(async () => void (await l.stop()))
  return l
}

const at = (c: ChildUpstream, extra: Partial<TargetSpec> = {}): TargetSpec => ({ host: '127.0.0.1', port: c.port, ...extra })

function stat(e: StartedEngine, key: string): UpstreamStats {
  const s = e.engine.stats().upstreams.find((u) => u.key === key)
  if (s === undefined) throw new Error(`no stats for ${key}`)
  return s
}

const healthy =
  (e: StartedEngine, ...cs: ChildUpstream[]) =>
  () =>
    cs.every((c) => stat(e, c.key).state === 'healthy')
const ms = (t0: number) => Math.round(performance.now() - t0)

function measure(what: string, figures: Record<string, unknown>): void {
  console.log(
    `[measure] ${what}: ${Object.entries(figures)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(' ')}`,
  )
}

describe('failover under keep-alive load', () => {
  it('SIGKILL: no GET fails, the upstream is taken out and comes back after a restart', async () => {
    const [a, b, c] = [await child('a'), await child('b'), await child('c')]
    const lines: string[] = []
    const rec = (level: string) => (obj: object, msg: string) => {
      if ((obj as { upstream?: string }).upstream === a.key) lines.push(`${level} ${msg}`)
    }
    const e = await engine({ upstreams: [at(a), at(b), at(c)], check: CHECK }, { log: { info: rec('info'), warn: rec('warn'), error: rec('error') } })
    await until(healthy(e, a, b, c), 10_000, 'all healthy')
    const l = load(e)
    await l.more(300)
    expect(l.servedBy('a')).toBeGreaterThan(0)
    const t0 = performance.now()
    await a.kill()
    await until(() => stat(e, a.key).state !== 'healthy', 10_000, 'a taken out')
    const tOut = ms(t0)
    const n0 = l.outcomes.length
    await l.more(300)
    const tRestart = performance.now()
    await a.restart()
    await until(() => l.servedBy('a', tRestart) > 0, 15_000, 'a to serve again')
    const tBack = ms(tRestart)
    await l.more(200)
    const failed = l.failures(t0)
    measure('SIGKILL', { requests: l.outcomes.length, failedAfterKill: failed.length, toTakeOut_ms: tOut, toReadmit_ms: tBack, state: stat(e, a.key).state })
    expect(failed).toEqual([])
    expect(l.outcomes.length).toBeGreaterThan(n0)
    expect(stat(e, a.key).state).toBe('healthy')
    // A line per change of state, not per check or per failed request.
    console.log(`[measure] SIGKILL log lines for the killed upstream: ${JSON.stringify(lines)}`)
    expect(lines[0]).toBe('info upstream healthy: first active check passed')
    expect(lines).toContain('warn upstream ejected')
    expect(lines.some((l) => l.startsWith('info upstream readmitted'))).toBe(true)
    expect(lines.length).toBeLessThanOrEqual(6)
  })

  it('SIGSTOP: the frozen upstream fails its check by timeout, no GET fails, it returns after SIGCONT', async () => {
    const [a, b] = [await child('a'), await child('b')]
    const e = await engine({ upstreams: [at(a), at(b)], check: CHECK })
    await until(healthy(e, a, b), 10_000, 'all healthy')
    const l = load(e)
    await l.more(300)
    const t0 = performance.now()
    await a.freeze()
    await until(() => stat(e, a.key).state !== 'healthy', 10_000, 'a taken out')
    const tOut = ms(t0)
    const reason = stat(e, a.key).checks[0]?.lastResult
    const s = stat(e, a.key)
    await l.more(300)
    const tThaw = performance.now()
    await a.thaw()
    await until(() => stat(e, a.key).state === 'healthy' && l.servedBy('a', tThaw) > 0, 15_000, 'a to serve again')
    const tBack = ms(tThaw)
    await l.more(200)
    const failed = l.failures(t0)
    measure('SIGSTOP', { requests: l.outcomes.length, failedAfterFreeze: failed.length, toTakeOut_ms: tOut, takenOutAs: s.state, checkResult: reason, toReadmit_ms: tBack })
    expect(failed).toEqual([])
    expect(s.state === 'unhealthy' || s.state === 'ejected').toBe(true)
  })

  it('slow answers: the check times out, traffic moves to the fast upstream, none fails', async () => {
    const [a, b] = [await child('a'), await child('b')]
    const e = await engine({ upstreams: [at(a), at(b)], check: CHECK }, { responseTimeoutMs: 5000 })
    await until(healthy(e, a, b), 10_000, 'all healthy')
    const l = load(e)
    await l.more(200)
    const t0 = performance.now()
    await a.set({ delay: 600 })
    await until(() => stat(e, a.key).state === 'unhealthy', 10_000, 'a unhealthy')
    const tOut = ms(t0)
    const tAfter = performance.now() + 700 // requests already sent to a finish within the delay
    await l.more(300)
    measure('slow', { failed: l.failures(t0).length, toTakeOut_ms: tOut, checkResult: stat(e, a.key).checks[0]?.lastResult, servedByAAfter: l.servedBy('a', tAfter) })
    expect(l.failures(t0)).toEqual([])
    expect(stat(e, a.key).checks[0]?.lastResult).toBe('timeout')
    expect(l.servedBy('a', tAfter)).toBe(0)
  })

  it('priority: the backup tier takes over when the primary dies and gives back when it returns', async () => {
    const [p, s] = [await child('primary'), await child('backup')]
    const e = await engine({ upstreams: [at(p, { priority: 1 }), at(s, { priority: 2 })], check: CHECK })
    await until(healthy(e, p, s), 10_000, 'all healthy')
    const l = load(e)
    await l.more(200)
    expect(l.servedBy('backup')).toBe(0)
    const t0 = performance.now()
    await p.kill()
    await until(() => l.servedBy('backup', t0) > 50, 10_000, 'the backup to take over')
    const tOver = ms(t0)
    const tRestart = performance.now()
    await p.restart()
    await until(() => stat(e, p.key).state === 'healthy', 10_000, 'the primary healthy again')
    const tBack = ms(tRestart)
    const tGive = performance.now() + 50
    await l.more(300)
    measure('priority', { failed: l.failures(t0).length, takeOver_ms: tOver, giveBack_ms: tBack, backupAfterGiveBack: l.servedBy('backup', tGive) })
    expect(l.failures(t0)).toEqual([])
    expect(l.servedBy('backup', tGive)).toBe(0)
    expect(l.servedBy('primary', tGive)).toBeGreaterThan(0)
  })

  it('the fallback serves while every upstream is down, with no failed GET', async () => {
    const [a, b, fb] = [await child('a'), await child('b'), await child('fallback')]
    const e = await engine({ upstreams: [at(a), at(b)], fallbacks: [at(fb)], check: CHECK })
    await until(healthy(e, a, b, fb), 10_000, 'all healthy')
    const l = load(e)
    await l.more(200)
    expect(l.servedBy('fallback')).toBe(0)
    const t0 = performance.now()
    await Promise.all([a.kill(), b.kill()])
    await until(() => l.servedBy('fallback', t0) > 100, 10_000, 'the fallback to serve')
    measure('fallback', { failed: l.failures(t0).length, fallbackServed: l.servedBy('fallback', t0), toFallback_ms: ms(t0) })
    expect(l.failures(t0)).toEqual([])
  })

  it('503 from one upstream: retried on the others, no request fails, passive on5xx ejects it', async () => {
    const [a, b] = [await child('a'), await child('b')]
    const e = await engine({ upstreams: [at(a), at(b)], passive: { failures: 3, on5xx: true } })
    const l = load(e)
    await l.more(200)
    const t0 = performance.now()
    await a.set({ status: 503 })
    await until(() => stat(e, a.key).state === 'ejected', 10_000, 'a ejected')
    const tOut = ms(t0)
    await l.more(300)
    const st = stat(e, a.key)
    measure('503', { failed: l.failures(t0).length, toEject_ms: tOut, ejections: st.ejections, retriesToB: stat(e, b.key).retries })
    expect(l.failures(t0)).toEqual([])
    expect(stat(e, b.key).retries).toBeGreaterThan(0)
  })
})
