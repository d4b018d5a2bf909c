// Hot reload and graceful shutdown: applying snapshots under keep-alive load
// drops no request and closes no client connection; in-flight requests finish
// on the snapshot they started with; removed listeners and shutdown drain.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { RawClient, httpGet, watchedAgent } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import { until, within } from '../support/poll.ts'
import { snapshotFor, snapshotWith } from '../support/snapshot.ts'
import type { ListenerSpec, TargetSpec } from '../support/snapshot.ts'
import { connectRefused, httpUpstream, rawUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

async function named(name: string): Promise<HttpUpstream> {
  const up = await httpUpstream(undefined, { name })
  cleanup.push(() => up.close())
  return up
}

/** Answers `name` after `ms`; `state.answered` turns true once it has written its response. */
async function slow(name: string, ms: number): Promise<HttpUpstream & { state: { answered: boolean } }> {
  const state = { answered: false }
  const up = await httpUpstream((_req: IncomingMessage, res: ServerResponse) => {
    setTimeout(() => res.end(name, () => (state.answered = true)), ms)
  })
  cleanup.push(() => up.close())
  return Object.assign(up, { state })
}

async function started(snap: Parameters<typeof startEngine>[0]) {
  const e = await startEngine(snap)
  cleanup.push(() => e.stop())
  return e
}

const at = (u: { port: number }, weight = 1): TargetSpec => ({ host: '127.0.0.1', port: u.port, weight })
const SECOND = '127.0.0.2:0'

describe('hot reload under load', () => {
  it('120 applies while two keep-alive clients loop: no failure, no client socket closed, last snapshot wins', async () => {
    const [a1, a2, b1, b2, c1] = await Promise.all(['a1', 'a2', 'b1', 'b2', 'c1'].map(named))
    if (a1 === undefined || a2 === undefined || b1 === undefined || b2 === undefined || c1 === undefined) throw new Error('setup')
    const sets = [
      [at(a1, 1), at(a2, 3)],
      [at(b1, 2), at(b2, 1)],
      [at(a2), at(b1)],
    ]
    const snap = (v: number, second: boolean, ups: TargetSpec[]) => {
      const ls: ListenerSpec[] = [{ routes: [{ upstreams: ups }] }]
      if (second) ls.push({ host: '127.0.0.2', routes: [{ upstreams: [at(c1)] }] })
      return snapshotWith(ls, v)
    }
    const e = await started(snap(1, false, sets[0] ?? []))

    let stop = false
    let done = 0
    const failures: string[] = []
    const clients = [watchedAgent(), watchedAgent()]
    const loop = async (agent: (typeof clients)[number]): Promise<void> => {
      for (let n = 0; !stop && n < 3000; n++) {
        try {
          const r = await httpGet(e.port, `/n${n}`, {}, { agent: agent.agent, timeoutMs: 5000 })
          if (r.status !== 200) failures.push(`status ${r.status}: ${r.text}`)
        } catch (err) {
          failures.push(String(err))
        }
        done++
      }
    }
    const loops = clients.map(loop)

    let v = 1
    for (let i = 0; i < 120; i++) {
      const second = Math.floor(i / 10) % 2 === 1
      await e.engine.apply(snap(++v, second, sets[i % sets.length] ?? []))
      if (second && i % 10 === 0) {
        const r = await httpGet(e.portOf(SECOND), '/second', {}, { host: '127.0.0.2' })
        expect(r.text).toBe('c1')
      }
      const before = done
      if (done < 6000) await until(() => done > before || done >= 6000, 5000, 'client progress between applies')
    }
    await e.engine.apply(snap(++v, false, [at(c1)]))
    stop = true
    await within(Promise.all(loops), 10_000, 'the client loops')

    expect(failures).toEqual([])
    expect(done).toBeGreaterThanOrEqual(120)
    for (const c of clients) {
      const tail: string[] = []
      for (let i = 0; i < 5; i++) tail.push((await httpGet(e.port, '/last', {}, { agent: c.agent })).text)
      expect(tail).toEqual(['c1', 'c1', 'c1', 'c1', 'c1'])
      expect(c.sockets(), 'each client kept one connection').toBe(1)
      expect(c.closes(), 'the proxy never closed a client connection').toBe(0)
      c.destroy()
    }
    expect(e.engine.stats().snapshotVersion).toBe(v)
    expect(e.engine.boundPort('127.0.0.1:0'), 'a kept listener keeps its socket').toBe(e.port)
  })

  it('a slow request started before a reload that removes its upstream still completes with 200', async () => {
    const s = await slow('slow', 500)
    const other = await named('other')
    const e = await started(snapshotFor({ routes: [{ upstreams: [at(s)] }] }, 1))
    const inflight = httpGet(e.port, '/slow')
    await until(() => s.requests.length === 1, 3000, 'the slow request at the upstream')
    await e.engine.apply(snapshotFor({ routes: [{ upstreams: [at(other)] }] }, 2))
    expect((await httpGet(e.port, '/new')).text).toBe('other')
    const r = await inflight
    expect([r.status, r.text]).toEqual([200, 'slow'])
  })
})

describe('a snapshot that cannot be applied', () => {
  it('rejects with E_LISTEN when a new address is taken, and changes nothing', async () => {
    const a = await named('a')
    const b = await named('b')
    const e = await started(snapshotFor({ routes: [{ upstreams: [at(a)] }] }, 1))
    // a.port is bound by the upstream itself, so the new listener cannot bind.
    const bad = snapshotWith([{ routes: [{ upstreams: [at(b)] }] }, { host: '127.0.0.1', port: a.port, routes: [{ upstreams: [at(b)] }] }], 2)
    await expect(e.engine.apply(bad)).rejects.toMatchObject({ code: 'E_LISTEN' })
    expect(e.engine.stats().snapshotVersion).toBe(1)
    for (let i = 0; i < 4; i++) expect((await httpGet(e.port, '/')).text).toBe('a')
    await e.engine.apply(snapshotFor({ routes: [{ upstreams: [at(b)] }] }, 3))
    expect((await httpGet(e.port, '/')).text).toBe('b')
  })
})

describe('removed upstreams', () => {
  it('their idle pooled connections are closed after the reload', async () => {
    const a = await named('a')
    const b = await named('b')
    const e = await started(snapshotFor({ routes: [{ upstreams: [at(a)] }] }, 1))
    const w = watchedAgent()
    try {
      for (let i = 0; i < 3; i++) expect((await httpGet(e.port, '/', {}, { agent: w.agent })).text).toBe('a')
    } finally {
      w.destroy()
    }
    expect(a.open()).toBeGreaterThan(0)
    await e.engine.apply(snapshotFor({ routes: [{ upstreams: [at(b)] }] }, 2))
    await until(() => a.open() === 0, 3000, 'the proxy to close its idle connections to the removed upstream')
  })
})

describe('removing a listener', () => {
  it('refuses new connections at once and lets its in-flight request finish', async () => {
    const s = await slow('slow', 500)
    const other = await named('other')
    const both = snapshotWith([{ routes: [{ upstreams: [at(other)] }] }, { host: '127.0.0.2', routes: [{ upstreams: [at(s)] }] }], 1)
    const e = await started(both)
    const port2 = e.portOf(SECOND)
    const inflight = httpGet(port2, '/slow', {}, { host: '127.0.0.2' })
    await until(() => s.requests.length === 1, 3000, 'the slow request at the upstream')
    await e.engine.apply(snapshotFor({ routes: [{ upstreams: [at(other)] }] }, 2))
    expect(await connectRefused(port2, '127.0.0.2')).toBe(true)
    expect((await httpGet(e.port, '/kept')).text).toBe('other')
    const r = await inflight
    expect([r.status, r.text]).toEqual([200, 'slow'])
  })
})

describe('shutdown', () => {
  it('waits for a slow in-flight request, closes the listener and idle connections, then resolves', async () => {
    const s = await slow('slow', 500)
    const e = await started(snapshotFor({ routes: [{ upstreams: [at(s)] }] }, 1))
    const idle = await RawClient.connect(e.port)
    idle.write('GET /idle HTTP/1.1\r\nHost: a\r\n\r\n')
    await idle.read({ timeoutMs: 3000 })
    const inflight = httpGet(e.port, '/slow')
    await until(() => s.requests.length === 2, 3000, 'the slow request at the upstream')

    let answeredAtResolve: boolean | null = null
    const down = e.engine.shutdown(10_000).then(() => {
      answeredAtResolve = s.state.answered
    })
    await until(() => connectRefused(e.port), 3000, 'the listener to close')
    expect(await idle.whenClosed(3000), 'an idle keep-alive connection is closed within a second (DRAIN_WAIT_MS)').toBe(true)
    const r = await inflight
    expect([r.status, r.text]).toEqual([200, 'slow'])
    await within(down, 5000, 'shutdown after the last request')
    expect(answeredAtResolve).toBe(true)
    expect(e.engine.stats().inFlight).toBe(0)
  })

  it('a request sent just after shutdown began, on an idle keep-alive or a just-accepted connection, is answered with connection: close', async () => {
    const up = await named('up')
    const e = await started(snapshotFor({ routes: [{ upstreams: [at(up)] }] }, 1))
    const keep = await RawClient.connect(e.port)
    keep.write('GET /first HTTP/1.1\r\nHost: a\r\n\r\n')
    expect((await keep.read()).status).toBe(200)
    const fresh = await RawClient.connect(e.port)
    await until(() => e.engine.stats().listeners[0]?.connections === 2, 3000, 'both connections accepted')
    const down = e.engine.shutdown(10_000)
    // Both clients send as the balancer starts draining: what a client racing a SIGTERM does.
    keep.write('GET /second HTTP/1.1\r\nHost: a\r\n\r\n')
    fresh.write('GET /fresh HTTP/1.1\r\nHost: a\r\n\r\n')
    for (const c of [keep, fresh]) {
      const r = await c.read({ timeoutMs: 3000 })
      expect([r.status, r.headers.find(([k]) => k === 'connection')?.[1]]).toEqual([200, 'close'])
      expect(await c.whenClosed(3000)).toBe(true)
    }
    await within(down, 5000, 'shutdown once both are answered')
  })

  it('a response whose head went out before shutdown began (no connection: close): its client may reuse the connection once more, and is answered with connection: close', async () => {
    const finish: Array<() => void> = []
    const up = await httpUpstream((req: IncomingMessage, res: ServerResponse) => {
      if (req.url !== '/streamed') return void res.end('next')
      res.writeHead(200, { 'content-length': '4' })
      res.write('ab')
      finish.push(() => res.end('cd'))
    })
    cleanup.push(() => up.close())
    const e = await started(snapshotFor({ routes: [{ upstreams: [at(up)] }] }, 1))
    const c = await RawClient.connect(e.port)
    c.write('GET /streamed HTTP/1.1\r\nHost: a\r\n\r\n')
    await until(() => c.buffered.includes('\r\n\r\nab'), 3000, 'the head and the first body bytes at the client')
    const down = e.engine.shutdown(10_000)
    for (const f of finish) f()
    const first = await c.read({ timeoutMs: 3000 })
    expect([first.status, first.headers.find(([k]) => k === 'connection')?.[1]]).toEqual([200, undefined])
    // The client was told the connection stays: what a keep-alive client does next.
    c.write('GET /next HTTP/1.1\r\nHost: a\r\n\r\n')
    const next = await c.read({ timeoutMs: 3000 })
    expect([next.status, next.headers.find(([k]) => k === 'connection')?.[1]]).toEqual([200, 'close'])
    expect(await c.whenClosed(3000)).toBe(true)
    await within(down, 5000, 'shutdown once the connection is closed')
  })

  it('a request outlasting the grace period is cut at the deadline', async () => {
    const silent = await rawUpstream()
    cleanup.push(() => silent.close())
    const e = await started(snapshotFor({ routes: [{ upstreams: [at(silent)] }] }, 1))
    const outcome = httpGet(e.port, '/forever', {}, { timeoutMs: 10_000 }).then(
      (r) => `status ${r.status}`,
      (err: Error) => `error ${err.message}`,
    )
    await until(() => silent.bytes() > 0, 3000, 'the request at the upstream')
    const t0 = performance.now()
    await within(e.engine.shutdown(200), 5000, 'shutdown at its deadline')
    expect(performance.now() - t0).toBeGreaterThanOrEqual(150)
    const got = await within(outcome, 3000, 'the cut request to end')
    expect(got).not.toBe('status 200')
    await until(() => silent.conns.every((c) => c.closed), 3000, 'the upstream connection to be closed')
  })
})
