// Retries on bad statuses (which requests, how many tries, the budget),
// per-upstream connection limits with a wait queue, and passive ejection as
// the route's plan configures it. Real upstream servers on loopback.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import type { UpstreamStats } from '../../src/engine/types.ts'
import { RawClient, httpGet, httpRequest } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { EngineTestOptions, StartedEngine } from '../support/engine.ts'
import { Load } from '../support/load.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import type { RouteSpec, TargetSpec } from '../support/snapshot.ts'
import { httpUpstream, refusedPort } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

/** Answers `status` with `name` as the body. */
async function answering(name: string, status = 200): Promise<HttpUpstream> {
  const up = await httpUpstream(
    (_q: IncomingMessage, res: ServerResponse) => {
      res.statusCode = status
      res.end(name)
    },
    { name },
  )
  cleanup.push(() => up.close())
  return up
}

async function engine(route: RouteSpec, opts: EngineTestOptions = {}): Promise<StartedEngine> {
  const e = await startEngine(snapshotFor({ routes: [route] }, 1), opts)
  cleanup.push(() => e.stop())
  return e
}

const at = (up: { port: number }, extra: Partial<TargetSpec> = {}): TargetSpec => ({ host: '127.0.0.1', port: up.port, ...extra })

function stat(e: StartedEngine, key: string): UpstreamStats {
  const s = e.engine.stats().upstreams.find((u) => u.key === key)
  if (s === undefined) throw new Error(`no stats for ${key}`)
  return s
}

describe('retry on bad statuses', () => {
  it('a 503 is sent again to another upstream, then the fallback; the client sees the healthy answer', async () => {
    const bad = await answering('bad', 503)
    const worse = await answering('worse', 502)
    const fb = await answering('fallback')
    const e = await engine({ upstreams: [at(bad, { priority: 1 }), at(worse, { priority: 2 })], fallbacks: [at(fb)], passive: { failures: 0 } })
    for (let i = 0; i < 5; i++) {
      const r = await httpGet(e.port, `/g${i}`)
      expect([r.status, r.text]).toEqual([200, 'fallback'])
    }
    expect(bad.requests.length).toBe(5)
    expect(worse.requests.length).toBe(5)
    expect(stat(e, fb.key).retries).toBe(5)
    expect(stat(e, worse.key).retries).toBe(5)
    expect(stat(e, bad.key).retries).toBe(0)
  })

  it('when the last try also gets a retriable status, that response is forwarded as it is', async () => {
    const a = await answering('a', 503)
    const b = await answering('b', 503)
    const c = await answering('c', 503)
    const e = await engine({ upstreams: [at(a), at(b), at(c)], retry: { attempts: 2 }, passive: { failures: 0 } })
    const r = await httpGet(e.port, '/')
    expect(r.status).toBe(503)
    expect(['a', 'b', 'c']).toContain(r.text) // the upstream's own 503, not the proxy's
    expect(a.requests.length + b.requests.length + c.requests.length).toBe(2)
  })

  it('a status outside retry.statuses, and attempts = 1, are not retried', async () => {
    const a = await answering('a', 500)
    const b = await answering('b', 503)
    const e1 = await engine({ upstreams: [at(a, { priority: 1 }), at(b, { priority: 2 })], passive: { failures: 0 } })
    expect((await httpGet(e1.port, '/')).text).toBe('a')
    expect(b.requests.length).toBe(0)
    const c = await answering('c', 503)
    const d = await answering('d')
    const e2 = await startEngine(snapshotFor({ routes: [{ upstreams: [at(c, { priority: 1 }), at(d, { priority: 2 })], retry: { attempts: 1 } }] }, 1))
    cleanup.push(() => e2.stop())
    expect((await httpGet(e2.port, '/')).text).toBe('c')
    expect(d.requests.length).toBe(0)
  })

  it('POST: a small kept body is sent again; one larger than retryBodyBytes is not, the client gets the 503', async () => {
    const bad = await httpUpstream((_q, res) => {
      res.statusCode = 503
      res.end('bad')
    })
    cleanup.push(() => bad.close())
    const good = await httpUpstream((_q, res, body) => res.end(`good:${body.length}`))
    cleanup.push(() => good.close())
    const e = await engine({ upstreams: [at(bad, { priority: 1 }), at(good, { priority: 2 })], passive: { failures: 0 } }, { retryBodyBytes: 1024 })
    const small = await httpRequest(e.port, '/p', {}, { method: 'POST', body: 'x'.repeat(100) })
    expect([small.status, small.text]).toEqual([200, 'good:100'])
    const big = await httpRequest(e.port, '/p', {}, { method: 'POST', body: 'y'.repeat(200_000) })
    expect([big.status, big.text]).toEqual([503, 'bad'])
    expect(good.requests.map((q) => q.body.length)).toEqual([100])
    expect(bad.requests.map((q) => q.body.length)).toEqual([100, 200_000])
  })

  it('the budget stops a retry storm: every upstream answers 503, retries stay near the budget', async () => {
    const ups = [await answering('a', 503), await answering('b', 503), await answering('c', 503)]
    const e = await engine({ upstreams: ups.map((u) => at(u)), retry: { attempts: 3, budgetPercent: 20 }, passive: { failures: 0 } })
    const t0 = performance.now()
    const l = new Load(e.port, { concurrency: 4, gapMs: 0, max: 600 })
    cleanup.push(async () => void (await l.stop()))
    await until(() => l.outcomes.length >= 600, 20_000, '600 requests')
    const outcomes = await l.stop()
    const secs = (performance.now() - t0) / 1000
    const sent = ups.reduce((n, u) => n + u.requests.length, 0)
    const retries = sent - outcomes.length
    // 20% of the requests, the bucket's 10, 3 a second for the run, and the tries of requests still in flight at the end.
    const allowed = outcomes.length * 0.2 + 10 + 3 * secs + 4 * 3
    console.log(`[measure] retry storm: requests=${outcomes.length} upstreamRequests=${sent} retries=${retries} allowed<=${Math.round(allowed)} withoutBudget=${outcomes.length * 3}`)
    expect(outcomes.every((o) => o.status === 503)).toBe(true)
    expect(retries).toBeLessThanOrEqual(allowed)
    expect(retries).toBeGreaterThan(0)
  })
})

describe('limits', () => {
  /** Holds every response until release() is called. */
  async function holding(name: string) {
    const held: ServerResponse[] = []
    const up = await httpUpstream((_q, res) => void held.push(res), { name })
    cleanup.push(() => up.close())
    return {
      up,
      held,
      release: () => {
        for (const r of held.splice(0)) r.end(name)
      },
    }
  }

  it('MaxConnections with MaxPending: busy ones at the limit, the next wait in FIFO order, the rest get 503 at once', async () => {
    const h = await holding('a')
    const e = await engine({ upstreams: [at(h.up)], limits: { maxConnections: 2, maxPending: 2 } })
    const busy = [httpGet(e.port, '/busy0'), httpGet(e.port, '/busy1')]
    await until(() => h.held.length === 2, 5000, 'two requests at the upstream')
    const w1 = httpGet(e.port, '/w1')
    await until(() => stat(e, h.up.key).pending === 1, 5000, 'one request waiting')
    const w2 = httpGet(e.port, '/w2')
    await until(() => stat(e, h.up.key).pending === 2, 5000, 'two requests waiting')
    expect(stat(e, h.up.key)).toMatchObject({ active: 2, pending: 2 })
    const over = await httpGet(e.port, '/over')
    expect(over.status).toBe(503)
    expect(over.headers['retry-after']).toMatch(/^\d+$/)
    expect(h.held.length).toBe(2)
    h.held.shift()?.end('a') // one slot frees: the first waiter takes it
    await until(() => h.up.requests.length === 3, 5000, 'the first waiter at the upstream')
    expect(h.up.requests[2]?.url).toBe('/w1')
    expect(stat(e, h.up.key)).toMatchObject({ active: 2, pending: 1 })
    h.release()
    await until(() => h.up.requests.length === 4, 5000, 'the second waiter at the upstream')
    expect(h.up.requests[3]?.url).toBe('/w2')
    h.release()
    for (const r of await Promise.all([...busy, w1, w2])) expect([r.status, r.text]).toEqual([200, 'a'])
    expect(h.up.requests.map((q) => q.url)).not.toContain('/over')
    expect(stat(e, h.up.key)).toMatchObject({ active: 0, pending: 0 })
  })

  it('a full tier with no wait room sends the overflow to the next tier; a waiter times out to it too', async () => {
    const h = await holding('a')
    const b = await answering('b')
    const e = await engine({ upstreams: [at(h.up, { priority: 1 }), at(b, { priority: 2 })], limits: { maxConnections: 1, maxPending: 1 } }, { connectTimeoutMs: 300 })
    const first = httpGet(e.port, '/1')
    await until(() => h.held.length === 1, 5000, 'one request at a')
    // Waits for a's slot, gives up after connectTimeoutMs, and goes to b.
    const second = httpGet(e.port, '/2')
    await until(() => stat(e, h.up.key).pending === 1, 5000, 'a waiter')
    const third = await httpGet(e.port, '/3')
    expect(third.text).toBe('b')
    expect((await second).text).toBe('b')
    expect(stat(e, h.up.key).pending).toBe(0)
    h.release()
    expect((await first).text).toBe('a')
  })

  it('idle pooled connections do not count: sequential requests with MaxConnections 1 all succeed', async () => {
    const a = await answering('a')
    const e = await engine({ upstreams: [at(a)], limits: { maxConnections: 1, maxPending: 0 } })
    for (let i = 0; i < 20; i++) expect((await httpGet(e.port, '/')).status).toBe(200)
    expect(stat(e, a.key)).toMatchObject({ active: 0, idle: 1 })
  })

  it('a client that resets while waiting leaves the queue', async () => {
    const h = await holding('a')
    const e = await engine({ upstreams: [at(h.up)], limits: { maxConnections: 1, maxPending: 5 } })
    const first = httpGet(e.port, '/1')
    await until(() => h.held.length === 1, 5000, 'one request at a')
    const c = await RawClient.connect(e.port)
    c.write('GET /gone HTTP/1.1\r\nhost: x\r\n\r\n')
    await until(() => stat(e, h.up.key).pending === 1, 5000, 'a waiter')
    c.sock.resetAndDestroy()
    await until(() => stat(e, h.up.key).pending === 0, 5000, 'the queue to empty')
    h.release()
    expect((await first).text).toBe('a')
    expect(h.up.requests.map((q) => q.url)).toEqual(['/1'])
  })
})

describe('passive detection follows the route plan', () => {
  it('failures = 0: never ejected however often it fails', async () => {
    const a = await answering('a', 503)
    const e = await engine({ upstreams: [at(a)], passive: { failures: 0, on5xx: true }, retry: { attempts: 1 } })
    for (let i = 0; i < 10; i++) expect((await httpGet(e.port, '/')).status).toBe(503)
    expect(stat(e, a.key)).toMatchObject({ state: 'healthy', ejections: 0, failures: 10 })
  })

  it('on5xx: ejected after `failures` 5xx in a row, again at the first failure after it; the ejection doubles up to the maximum', async () => {
    const a = await answering('a', 500)
    const b = await answering('b')
    const e = await engine({ upstreams: [at(a, { priority: 1 }), at(b, { priority: 2 })], passive: { failures: 2, on5xx: true, ejectionMs: 200, maxEjectionMs: 300 } })
    // 200 ms, then 400 capped to 300, then 300 again.
    const expected = [200, 300, 300]
    for (let k = 0; k < 3; k++) {
      // Back from an ejection an upstream is on probation: its failure streak is kept until a success.
      const n = k === 0 ? 2 : 1
      const before = a.requests.length
      for (let i = 0; i < n - 1; i++) expect((await httpGet(e.port, '/')).text).toBe('a')
      const t0 = Date.now()
      expect((await httpGet(e.port, '/')).text).toBe('a')
      const t1 = Date.now()
      expect(a.requests.length).toBe(before + n)
      const s = stat(e, a.key)
      expect(s).toMatchObject({ state: 'ejected', ejections: k + 1 })
      const until_ = s.ejectedUntil ?? 0
      expect(until_ - t0).toBeGreaterThanOrEqual(expected[k] as number)
      expect(until_ - t1).toBeLessThanOrEqual(expected[k] as number)
      expect((await httpGet(e.port, '/')).text).toBe('b')
      await until(() => stat(e, a.key).state === 'healthy', 5000, 'the ejection to end')
    }
  })

  it('logs one line when an upstream is ejected and one when it is readmitted', async () => {
    const lines: string[] = []
    const rec = (level: string) => (obj: object, msg: string) => void lines.push(`${level} ${msg} ${String((obj as { upstream?: string }).upstream)}`)
    const a = await answering('a')
    const dead = await refusedPort()
    // 1 s: the five requests end well inside one ejection even on a busy machine (a second ejection would log a second line).
    const e = await engine({ upstreams: [at({ port: dead }), at(a)], passive: { ejectionMs: 1000 } }, { log: { info: rec('info'), warn: rec('warn'), error: rec('error') } })
    for (let i = 0; i < 5; i++) expect((await httpGet(e.port, '/')).text).toBe('a')
    const key = `127.0.0.1:${dead}`
    await until(() => lines.some((l) => l.startsWith('info upstream readmitted')), 5000, 'the readmission line')
    expect(lines.filter((l) => l.endsWith(key))).toEqual([`warn upstream ejected ${key}`, `info upstream readmitted: ejection over ${key}`])
  })
})
