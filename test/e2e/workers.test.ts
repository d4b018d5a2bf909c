// The real balancer with --workers 2: both workers serve, a write answered
// 201 is served by every worker, a refused change is applied by none, SIGTERM
// drains every worker, and a killed worker is replaced with the current
// snapshot while traffic continues.
import { createServer, request } from 'node:http'
import type { IncomingMessage, Server } from 'node:http'
import { connect, createServer as createNetServer } from 'node:net'
import type { Server as NetServer } from 'node:net'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

interface Up {
  server: Server
  port: number
  received: () => number
}

async function upstream(name: string, delayMs = 0): Promise<Up> {
  let received = 0
  const server = createServer((req, res) => {
    received++
    if (delayMs === 0) res.end(`${name} ${req.url ?? ''}`)
    else setTimeout(() => res.end(`${name} ${req.url ?? ''}`), delayMs)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const a = server.address()
  return { server, port: typeof a === 'object' && a !== null ? a.port : 0, received: () => received }
}

/** One request on a fresh connection: the kernel picks the worker anew each time. */
function get(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (r: IncomingMessage) => {
      let body = ''
      r.setEncoding('utf8')
      r.on('data', (c: string) => (body += c))
      r.on('end', () => res({ status: r.statusCode ?? 0, body }))
      r.on('error', rej)
    })
    req.on('error', rej)
    req.end()
  })
}

function refused(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(port, '127.0.0.1')
    s.on('connect', () => {
      s.destroy()
      res(false)
    })
    s.on('error', () => res(true))
  })
}

async function call(bal: Running, method: string, path: string, body?: unknown): Promise<number> {
  const res = await fetch(`${bal.api}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  await res.arrayBuffer()
  return res.status
}

interface WorkerStatus {
  id: number
  pid: number | null
  serving: boolean
  restarts: number
  snapshotVersion: number
  requests: number
}
interface Status {
  snapshotVersion: number
  lastError: { code: string } | null
  engine: { snapshotVersion: number }
  workers: WorkerStatus[]
}

async function status(bal: Running): Promise<Status> {
  return (await (await fetch(`${bal.api}/status`)).json()) as Status
}

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

async function twoWorkers(extra: string[] = []): Promise<{ bal: Running; cfg: string }> {
  const cfg = join(tempDir(), 'balancer.json')
  const bal = await startBalancer(['--config', cfg, '--workers', '2', ...extra])
  cleanup.push(() => bal.stop('SIGKILL'))
  return { bal, cfg }
}

/** Upstreams a and b, and two workers serving a server on a fresh port whose one upstream is a. */
async function servingA() {
  const [a, b] = await Promise.all([upstream('a'), upstream('b')])
  cleanup.push(
    () => a.server.close(),
    () => b.server.close(),
  )
  const port = await freePort()
  const { bal } = await twoWorkers()
  expect(await call(bal, 'POST', '/server', { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: a.port }] })).toBe(201)
  return { a, b, port, bal, base: `/server/127.0.0.1:${port}` }
}

describe('--workers 2', () => {
  it('serves requests through both workers and reports each in GET /status', async () => {
    const a = await upstream('a')
    cleanup.push(() => a.server.close())
    const port = await freePort()
    const { bal } = await twoWorkers()
    expect(await call(bal, 'POST', '/server', { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: a.port }] })).toBe(201)
    let sent = 0
    await until(
      async () => {
        for (let i = 0; i < 20; i++) expect(await get(port)).toEqual({ status: 200, body: 'a /' })
        sent += 20
        const s = await status(bal)
        return s.workers.length === 2 && s.workers.every((w) => w.requests > 0)
      },
      15_000,
      'both workers to have served requests',
    )
    const s = await status(bal)
    expect(new Set(s.workers.map((w) => w.pid)).size).toBe(2)
    // Each worker runs with V8's young generation capped (src/workers/group.ts workerExecArgv).
    for (const w of s.workers) expect(readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0')).toContain('--max-semi-space-size=1')
    // Merged figures lag by at most the stats period; they never exceed what was sent.
    await until(async () => (await status(bal)).workers.reduce((n, w) => n + w.requests, 0) === sent, 3000, 'stats to catch up')
  })

  it('answers 201 only once both workers serve the change: no later request sees the old config', async () => {
    const { a, b, port, bal, base } = await servingA()
    for (let round = 0; round < 4; round++) {
      const [from, to] = round % 2 === 0 ? [a, b] : [b, a]
      const name = round % 2 === 0 ? 'b' : 'a'
      expect(await call(bal, 'POST', `${base}/upstream/127.0.0.1-${to.port}`, { Target: '127.0.0.1', Port: to.port })).toBe(201)
      expect(await call(bal, 'DELETE', `${base}/upstream/127.0.0.1-${from.port}`)).toBe(204)
      const bodies = await Promise.all(Array.from({ length: 60 }, () => get(port).then((r) => r.body)))
      expect(bodies.filter((x) => x !== `${name} /`)).toEqual([])
    }
    const s = await status(bal)
    expect(s.workers.map((w) => w.snapshotVersion)).toEqual([s.snapshotVersion, s.snapshotVersion])
  })

  it('knows an upstream as soon as the write that adds it is answered, and forgets it with the write that removes it', async () => {
    const { b, bal, base } = await servingA()
    // The apply answers carry the added and removed upstreams; the periodic figures (every 500 ms) come later.
    for (let round = 0; round < 3; round++) {
      const member = `127.0.0.1-${b.port}`
      expect(await call(bal, 'POST', `${base}/upstream/${member}`, { Target: '127.0.0.1', Port: b.port })).toBe(201)
      expect(await call(bal, 'PUT', `/upstream/${member}/drain`)).toBe(200)
      expect(await call(bal, 'DELETE', `/upstream/${member}/drain`)).toBe(200)
      expect(await call(bal, 'DELETE', `${base}/upstream/${member}`)).toBe(204)
      expect(await call(bal, 'PUT', `/upstream/${member}/drain`)).toBe(404)
    }
  })

  it('reports a busy port as E_LISTEN and applies nothing of the refused change in any worker', async () => {
    const a = await upstream('a')
    cleanup.push(() => a.server.close())
    const [good, fresh] = [await freePort(), await freePort()]
    const busy: NetServer = createNetServer()
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r))
    cleanup.push(() => busy.close())
    const busyAddr = busy.address()
    const busyPort = typeof busyAddr === 'object' && busyAddr !== null ? busyAddr.port : 0
    const { bal, cfg } = await twoWorkers()
    expect(await call(bal, 'POST', '/server', { address: `127.0.0.1:${good}`, upstreams: [{ Target: '127.0.0.1', Port: a.port }] })).toBe(201)
    const before = await status(bal)
    // One change that opens a free port and a taken one: all or nothing.
    const server = (p: number): unknown => ({ address: `127.0.0.1:${p}`, upstreams: [{ Target: '127.0.0.1', Port: a.port }] })
    writeFileSync(`${cfg}.tmp`, JSON.stringify({ servers: [server(good), server(fresh), server(busyPort)] }))
    renameSync(`${cfg}.tmp`, cfg)
    await until(async () => (await status(bal)).lastError?.code === 'E_LISTEN', 5000, 'the refusal to be reported')
    // Asserts that no worker applies the refused change: only a stretch of time (two stats periods) can show it.
    await new Promise((r) => setTimeout(r, 700))
    const after = await status(bal)
    expect(after.snapshotVersion).toBe(before.snapshotVersion)
    expect(after.workers.map((w) => w.snapshotVersion)).toEqual([before.snapshotVersion, before.snapshotVersion])
    for (let i = 0; i < 20; i++) {
      expect(await refused(fresh)).toBe(true)
      expect(await get(good)).toEqual({ status: 200, body: 'a /' })
    }
    expect(bal.logs.some((l) => l.msg === 'configuration refused; the last good one keeps serving')).toBe(true)
    // The next change is sent to each worker as an edit of what it still serves, and both apply it.
    writeFileSync(`${cfg}.tmp`, JSON.stringify({ servers: [server(good), server(fresh)] }))
    renameSync(`${cfg}.tmp`, cfg)
    await until(async () => (await status(bal)).lastError === null, 5000, 'the next change to apply')
    const next = await status(bal)
    expect(next.workers.map((w) => w.snapshotVersion)).toEqual([next.snapshotVersion, next.snapshotVersion])
    for (let i = 0; i < 20; i++) expect(await get(fresh)).toEqual({ status: 200, body: 'a /' })
  })

  it('drains a slow in-flight request in every worker on SIGTERM and exits 0', async () => {
    const slow = await upstream('slow', 1500)
    cleanup.push(() => slow.server.close())
    const port = await freePort()
    const { bal } = await twoWorkers(['--grace', '10s'])
    expect(await call(bal, 'POST', '/server', { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: slow.port }] })).toBe(201)
    // Several fresh connections so that both workers very likely hold one.
    const inflight = Array.from({ length: 6 }, (_, i) => get(port, `/slow${i}`))
    await until(async () => (await status(bal)).workers.every((w) => w.snapshotVersion > 0), 2000, 'workers to report')
    await until(() => slow.received() === 6, 5000, 'the requests to reach the upstream')
    bal.proc.kill('SIGTERM')
    await bal.waitLog((l) => l.msg === 'draining')
    expect(await refused(port)).toBe(true)
    const done = await Promise.all(inflight)
    expect(done).toEqual(Array.from({ length: 6 }, (_, i) => ({ status: 200, body: `slow /slow${i}` })))
    expect((await bal.exited).code).toBe(0)
    expect(
      bal.logs
        .filter((l) => l.msg === 'worker stopped')
        .map((l) => l.worker)
        .sort(),
    ).toEqual([0, 1])
  })

  it('replaces a worker killed with SIGKILL with one serving the current snapshot; traffic continues', async () => {
    const a = await upstream('a')
    cleanup.push(() => a.server.close())
    const port = await freePort()
    const { bal } = await twoWorkers()
    expect(await call(bal, 'POST', '/server', { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: a.port }] })).toBe(201)
    const s0 = await status(bal)
    const victim = s0.workers[1]
    if (victim?.pid == null) throw new Error('no worker 1 pid in /status')
    process.kill(victim.pid, 'SIGKILL')
    await bal.waitLog((l) => l.msg === 'worker exited unexpectedly; restarting it' && l.worker === 1)
    // The survivor keeps serving meanwhile; the kernel sends it every new connection.
    for (let i = 0; i < 20; i++) expect(await get(port)).toEqual({ status: 200, body: 'a /' })
    await bal.waitLog((l) => l.msg === 'worker restarted' && l.worker === 1)
    const s1 = await status(bal)
    const w1 = s1.workers[1]
    expect(w1).toMatchObject({ serving: true, restarts: 1, snapshotVersion: s0.snapshotVersion })
    expect(w1?.pid).not.toBe(victim.pid)
    await until(
      async () => {
        for (let i = 0; i < 20; i++) expect(await get(port)).toEqual({ status: 200, body: 'a /' })
        return ((await status(bal)).workers[1]?.requests ?? 0) > 0
      },
      15_000,
      'the new worker to serve',
    )
    expect(bal.proc.exitCode).toBe(null)
  })

  it('leaves no worker behind when the main process is killed: each drains and exits', async () => {
    const a = await upstream('a')
    cleanup.push(() => a.server.close())
    const port = await freePort()
    const { bal } = await twoWorkers(['--grace', '5s'])
    expect(await call(bal, 'POST', '/server', { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: a.port }] })).toBe(201)
    const pids = (await status(bal)).workers.map((w) => w.pid ?? 0)
    expect(pids.every((p) => p > 0)).toBe(true)
    bal.proc.kill('SIGKILL')
    await bal.exited
    // A zombie (exited, not yet reaped by its new parent) counts as gone.
    const alive = (pid: number): boolean => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
      } catch {
        return false
      }
    }
    await until(() => pids.every((p) => !alive(p)), 10_000, 'the orphaned workers to exit')
    expect(await refused(port)).toBe(true)
  })
})
