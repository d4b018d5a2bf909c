// Active health checks against real upstream servers: the pending -> healthy
// -> unhealthy -> healthy state machine, what pick() does with each state,
// state kept across snapshots, stats, log lines and shutdown.

import { spawn } from 'node:child_process'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import type { CheckPlan } from '../../src/compiler/snapshot.ts'
import type { EngineLog, UpstreamStats } from '../../src/engine/types.ts'
import { httpGet } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until, within } from '../support/poll.ts'
import { snapshotFor, snapshotWith } from '../support/snapshot.ts'
import type { RouteSpec, TargetSpec } from '../support/snapshot.ts'
import { httpUpstream, rawUpstream, refusedPort } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const CHECK: Partial<CheckPlan> = { type: 'http', path: '/healthz', intervalMs: 50, timeoutMs: 300, rise: 2, fall: 2, probe: 'http GET  /healthz 200-399' }

interface Checked extends HttpUpstream {
  health: number
  /** Requests other than health checks. */
  traffic(): number
  checks(): number
}

/** An upstream whose /healthz answers `health`; everything else 200 with its name. */
async function checked(name: string, health = 200): Promise<Checked> {
  const state = { health }
  const up = (await httpUpstream(
    (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/healthz') {
        res.statusCode = state.health
        res.end('health')
      } else res.end(name)
    },
    { name },
  )) as Checked
  Object.defineProperty(up, 'health', { get: () => state.health, set: (v: number) => (state.health = v) })
  up.traffic = () => up.requests.filter((r) => r.url !== '/healthz').length
  up.checks = () => up.requests.filter((r) => r.url === '/healthz').length
  cleanup.push(() => up.close())
  return up
}

const at = (port: number, extra: Partial<TargetSpec> = {}): TargetSpec => ({ host: '127.0.0.1', port, ...extra })

interface Line {
  level: string
  msg: string
  obj: Record<string, unknown>
}

function capture(): { log: EngineLog; lines: Line[]; about(key: string): string[] } {
  const lines: Line[] = []
  const rec = (level: string) => (obj: object, msg: string) => lines.push({ level, msg, obj: obj as Record<string, unknown> })
  return {
    log: { info: rec('info'), warn: rec('warn'), error: rec('error') },
    lines,
    about: (key) => lines.filter((l) => l.obj.upstream === key).map((l) => `${l.level} ${l.msg}`),
  }
}

async function engine(route: RouteSpec, log?: EngineLog): Promise<StartedEngine> {
  const e = await startEngine(snapshotFor({ routes: [route] }, 1), log === undefined ? {} : { log })
  cleanup.push(() => e.stop())
  return e
}

function stat(e: StartedEngine, key: string): UpstreamStats {
  const s = e.engine.stats().upstreams.find((u) => u.key === key)
  if (s === undefined) throw new Error(`no stats for ${key}`)
  return s
}

async function bodies(e: StartedEngine, n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    const r = await httpGet(e.port, `/r${i}`)
    out.push(`${r.status} ${r.text}`)
  }
  return out
}

describe('active checks', () => {
  it('a new upstream is pending and gets no traffic until its first check passes, then healthy at once', async () => {
    const a = await checked('a')
    const b = await checked('b', 503)
    const cap = capture()
    const e = await engine({ upstreams: [at(a.port), at(b.port)], check: CHECK }, cap.log)
    await until(() => stat(e, a.key).state === 'healthy', 5000, 'a to pass its first check')
    await until(() => b.checks() >= 3, 5000, 'b to be checked a few times')
    expect(new Set(await bodies(e, 20))).toEqual(new Set(['200 a']))
    expect(b.traffic()).toBe(0)
    expect(stat(e, b.key)).toMatchObject({ state: 'pending', checks: [{ probe: CHECK.probe, state: 'pending', lastResult: '503' }] })
    expect(stat(e, b.key).checks[0]?.streak).toBeGreaterThanOrEqual(3)

    b.health = 200
    await until(() => stat(e, b.key).state === 'healthy', 5000, 'b to become healthy')
    expect(new Set(await bodies(e, 20))).toEqual(new Set(['200 a', '200 b']))
    // One line per change, never one per check.
    expect(cap.about(b.key)).toEqual(['info upstream healthy: first active check passed'])
    expect(cap.about(a.key)).toEqual(['info upstream healthy: first active check passed'])
  })

  it('a new listener is bound only once its upstreams have their first check result: its first client is served, not refused with 503', async () => {
    const a = await checked('a')
    const e = await engine({ upstreams: [at(a.port)], check: CHECK })
    // The listener accepts as soon as apply() has resolved; by then the first check has passed.
    expect(stat(e, a.key).state).toBe('healthy')
    expect(await bodies(e, 1)).toEqual(['200 a'])
    // A silent upstream delays the bind by at most one check timeout (here 300 ms), and stays pending.
    const silent = await rawUpstream()
    cleanup.push(() => silent.close())
    const t0 = performance.now()
    const s = await engine({ upstreams: [at(silent.port)], check: CHECK })
    expect(performance.now() - t0).toBeLessThan(CHECK.timeoutMs! + 2000)
    expect(stat(s, `127.0.0.1:${silent.port}`).state).toBe('pending')
  })

  it('a reload that adds a listener waits at most 1 s for a silent upstream, whatever its check timeout; the listeners it keeps serve meanwhile', async () => {
    const a = await checked('a')
    const b = await checked('b')
    const silent = await rawUpstream()
    cleanup.push(() => silent.close())
    const e = await engine({ upstreams: [at(a.port)] })
    // The new listener's upstream never answers; its check would wait 8 s for it.
    const slow: Partial<CheckPlan> = { ...CHECK, intervalMs: 10_000, timeoutMs: 8000 }
    const next = snapshotWith([{ routes: [{ upstreams: [at(b.port)] }] }, { host: '127.0.0.2', routes: [{ upstreams: [at(silent.port)], check: slow }] }], 2)
    const t0 = performance.now()
    let applied = 0
    const apply = e.engine.apply(next).then(() => (applied = performance.now() - t0))
    // While the new listener waits, the kept one still answers, on the snapshot it had.
    const during = await bodies(e, 1)
    expect(applied, 'the apply was still waiting for the first check').toBe(0)
    expect(during).toEqual(['200 a'])
    await apply
    // Bounded by the 1 s cap, far below the check's 8 s timeout (the margin is for a busy machine).
    expect(applied).toBeLessThan(5000)
    expect(await bodies(e, 1)).toEqual(['200 b'])
    expect(stat(e, `127.0.0.1:${silent.port}`).state).toBe('pending')
    expect((await httpGet(e.portOf('127.0.0.2:0'), '/', {}, { host: '127.0.0.2' })).status).toBe(503)
  })

  it('healthy -> unhealthy after Fall failures, back after Rise passes; one log line per change', async () => {
    const a = await checked('a')
    const b = await checked('b')
    const cap = capture()
    const e = await engine({ upstreams: [at(a.port), at(b.port)], check: CHECK }, cap.log)
    await until(() => stat(e, a.key).state === 'healthy' && stat(e, b.key).state === 'healthy', 5000, 'both healthy')
    a.health = 500
    await until(() => stat(e, a.key).state === 'unhealthy', 5000, 'a to turn unhealthy')
    expect(stat(e, a.key).checks[0]).toMatchObject({ state: 'unhealthy', lastResult: '500' })
    const before = a.traffic()
    expect(new Set(await bodies(e, 20))).toEqual(new Set(['200 b']))
    expect(a.traffic()).toBe(before)
    a.health = 200
    await until(() => stat(e, a.key).state === 'healthy', 5000, 'a to be healthy again')
    expect(stat(e, a.key).checks[0]?.streak).toBeGreaterThanOrEqual(2)
    expect(new Set(await bodies(e, 20))).toEqual(new Set(['200 a', '200 b']))
    await until(() => a.checks() > 15, 5000, 'more checks to run')
    expect(cap.about(a.key)).toEqual(['info upstream healthy: first active check passed', 'warn upstream unhealthy: active check failing', 'info upstream healthy again: active check passing'])
  })

  it('check state survives a new snapshot with the same probe (interval changed) and restarts pending for a changed probe', async () => {
    const a = await checked('a')
    const e = await engine({ upstreams: [at(a.port)], check: CHECK })
    await until(() => stat(e, a.key).state === 'healthy', 5000, 'a healthy')
    await e.engine.apply(snapshotFor({ routes: [{ upstreams: [at(a.port, { weight: 3 })], check: { ...CHECK, intervalMs: 80, timeoutMs: 400 } }] }, 2))
    expect(stat(e, a.key)).toMatchObject({ state: 'healthy', checks: [{ state: 'healthy' }] })
    expect((await httpGet(e.port, '/')).text).toBe('a')

    const probe = 'http GET  /healthz?v=2 200-399'
    await e.engine.apply(snapshotFor({ routes: [{ upstreams: [at(a.port)], check: { ...CHECK, path: '/healthz?v=2', probe } }] }, 3))
    // The old pair is stopped, the new one has not passed yet: no traffic.
    expect(stat(e, a.key)).toMatchObject({ state: 'pending', checks: [{ probe, state: 'pending' }] })
    const r = await httpGet(e.port, '/')
    expect(r.status).toBe(503)
    expect(r.headers['retry-after']).toMatch(/^\d+$/)
    await until(() => stat(e, a.key).state === 'healthy', 5000, 'the new probe to pass')
    expect((await httpGet(e.port, '/')).text).toBe('a')

    // No check any more: the pair is stopped, the upstream serves on passive health alone.
    await e.engine.apply(snapshotFor({ routes: [{ upstreams: [at(a.port)] }] }, 4))
    expect(stat(e, a.key)).toMatchObject({ state: 'healthy', checks: [] })
    const n = a.checks()
    a.health = 500
    expect(new Set(await bodies(e, 5))).toEqual(new Set(['200 a']))
    // Asserts that no probe runs any more: only a stretch of time (several check intervals) can show it.
    await new Promise((r) => setTimeout(r, 150))
    expect(a.checks()).toBeLessThanOrEqual(n + 1) // at most the one that was in flight
  })

  it('a route without a check keeps sending to an upstream another route holds unhealthy', async () => {
    const a = await checked('a', 500)
    const e = await startEngine(snapshotFor({ routes: [{ hosts: ['checked.test'], upstreams: [at(a.port)], check: CHECK }, { upstreams: [at(a.port)] }] }, 1))
    cleanup.push(() => e.stop())
    await until(() => a.checks() >= 2, 5000, 'checks to run')
    expect((await httpGet(e.port, '/', { host: 'checked.test' })).status).toBe(503)
    expect((await httpGet(e.port, '/', { host: 'other.test' })).text).toBe('a')
    expect(stat(e, a.key).state).toBe('pending')
  })

  it('upstreams and then fallbacks failing their checks: the fallback serves, then 503 with Retry-After, quickly', async () => {
    const a = await checked('a', 500)
    const fb = await checked('fb')
    const e = await engine({ upstreams: [at(a.port)], fallbacks: [at(fb.port)], check: CHECK })
    await until(() => stat(e, fb.key).state === 'healthy', 5000, 'the fallback healthy')
    expect(new Set(await bodies(e, 10))).toEqual(new Set(['200 fb']))
    fb.health = 500
    await until(() => stat(e, fb.key).state === 'unhealthy', 5000, 'the fallback unhealthy')
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now()
      const r = await httpGet(e.port, '/')
      expect(performance.now() - t0).toBeLessThan(2000)
      expect(r.status).toBe(503)
      expect(r.headers['retry-after']).toMatch(/^\d+$/)
    }
    // Never a last resort for a check that says no.
    expect(a.traffic()).toBe(0)
  })
})

describe('check types and failures', () => {
  it('tcp: a listening port is healthy, a refused one stays pending', async () => {
    const a = await checked('a')
    const dead = await refusedPort()
    const e = await engine({ upstreams: [at(a.port), at(dead)], check: { ...CHECK, type: 'tcp', probe: 'tcp' } })
    await until(() => stat(e, a.key).state === 'healthy', 5000, 'a healthy by tcp')
    await until(() => stat(e, `127.0.0.1:${dead}`).checks[0]?.lastResult === 'ECONNREFUSED', 5000, 'the refused port checked')
    expect(stat(e, `127.0.0.1:${dead}`).state).toBe('pending')
    expect(a.checks()).toBe(0) // tcp sends nothing
    expect(new Set(await bodies(e, 10))).toEqual(new Set(['200 a']))
  })

  it('http: an upstream that accepts and never answers fails by timeout', async () => {
    const silent = await rawUpstream()
    cleanup.push(() => silent.close())
    const e = await engine({ upstreams: [at(silent.port)], check: { ...CHECK, timeoutMs: 150 } })
    await until(() => stat(e, silent.key).checks[0]?.lastResult === 'timeout', 5000, 'a check timeout')
    expect(stat(e, silent.key).state).toBe('pending')
    // A stalled event loop runs the probe's timer before the upstream's read: wait for the bytes.
    await until(() => silent.text().endsWith('\r\n\r\n'), 5000, 'the check request at the upstream')
    expect(silent.text()).toMatch(/^GET \/healthz HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\nuser-agent: balancer-health\r\n.*connection: close\r\n\r\n/s)
    expect((await httpGet(e.port, '/')).status).toBe(503)
  })

  it('http: the Host header, method and statuses come from the plan', async () => {
    const a = await checked('a', 204)
    const e = await engine({ upstreams: [at(a.port)], check: { ...CHECK, method: 'HEAD', host: 'app.internal', statuses: [[204, 204]] } })
    await until(() => stat(e, a.key).state === 'healthy', 5000, 'a healthy on 204')
    const q = a.requests.find((r) => r.url === '/healthz')
    expect(q).toMatchObject({ method: 'HEAD', headers: { host: 'app.internal', 'user-agent': 'balancer-health', connection: 'close' } })
  })

  it('an engine process with checks running exits by itself once shut down', async () => {
    const a = await checked('a')
    const script = fileURLToPath(new URL('../support/services/engine-child.ts', import.meta.url))
    const p = spawn(process.execPath, [script, String(a.port)], { stdio: ['pipe', 'pipe', 'inherit'] })
    cleanup.push(async () => void p.kill('SIGKILL'))
    let out = ''
    p.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)))
    await until(() => out.includes('HEALTHY'), 10_000, 'the child engine to see a healthy upstream')
    p.stdin.write('stop\n')
    await until(() => out.includes('STOPPED'), 10_000, 'the child engine to stop')
    const checks = a.checks()
    expect(await within(exited, 10_000, 'the child process to exit')).toBe(0)
    expect(a.checks()).toBeLessThanOrEqual(checks + 1)
  })

  it('shutdown stops every check', async () => {
    const a = await checked('a')
    const e = await engine({ upstreams: [at(a.port)], check: { ...CHECK, intervalMs: 20 } })
    await until(() => a.checks() >= 3, 5000, 'checks to run')
    await e.stop()
    const n = a.checks()
    // Asserts that no probe runs after shutdown: only a stretch of time (ten check intervals) can show it.
    await new Promise((r) => setTimeout(r, 200))
    expect(a.checks()).toBeLessThanOrEqual(n + 1) // at most the one in flight at shutdown
    expect(e.engine.stats().upstreams.flatMap((u) => u.checks)).toEqual([])
  })
})
