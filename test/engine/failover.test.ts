// Upstream failures as the client sees them: connect failures and resets are
// absorbed when the request can safely be sent again (RFC 9110 §9.2.2),
// otherwise the client gets a clear 502/503/504 quickly, never a hang.

import type { IncomingMessage } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { httpGet, httpRequest } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { EngineTestOptions, StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import type { TargetSpec } from '../support/snapshot.ts'
import { httpUpstream, rawUpstream, refusedPort } from '../support/upstream.ts'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

async function engine(upstreams: TargetSpec[], fallbacks: TargetSpec[] = [], opts: EngineTestOptions = {}): Promise<StartedEngine> {
  const e = await startEngine(snapshotFor({ routes: [{ upstreams, fallbacks }] }, 1), opts)
  cleanup.push(() => e.stop())
  return e
}

async function live(name: string, opts: { keepAliveTimeout?: number } = {}) {
  const up = await httpUpstream((req: IncomingMessage, res, body) => res.end(`${name}:${req.method}:${body.toString()}`), { name, ...opts })
  cleanup.push(() => up.close())
  return up
}

/** Reads the request, then resets the connection before sending any response byte. */
async function resetter() {
  const up = await rawUpstream((sock) => sock.resetAndDestroy())
  cleanup.push(() => up.close())
  return up
}

const at = (port: number, extra: Partial<TargetSpec> = {}): TargetSpec => ({ host: '127.0.0.1', port, ...extra })

describe('connect failures', () => {
  it('a refused upstream costs no client error: every request is served by the other', async () => {
    const ok = await live('ok')
    const dead = await refusedPort()
    // Ejected for a minute: the 40 requests end inside one ejection however busy the machine is.
    const e = await startEngine(snapshotFor({ routes: [{ upstreams: [at(dead), at(ok.port)], passive: { ejectionMs: 60_000, maxEjectionMs: 60_000 } }] }, 1))
    cleanup.push(() => e.stop())
    for (let i = 0; i < 30; i++) {
      const r = await httpGet(e.port, `/g${i}`)
      expect([r.status, r.text]).toEqual([200, 'ok:GET:'])
    }
    // Nothing was sent on a refused connection, so a POST is as safe to redirect as a GET.
    for (let i = 0; i < 10; i++) {
      const r = await httpRequest(e.port, '/p', { 'content-type': 'text/plain' }, { method: 'POST', body: `body-${i}` })
      expect([r.status, r.text]).toEqual([200, `ok:POST:body-${i}`])
    }
    const stats = e.engine.stats().upstreams
    expect(stats.find((u) => u.key === `127.0.0.1:${dead}`)).toMatchObject({ state: 'ejected' })
    expect(stats.find((u) => u.key === ok.key)).toMatchObject({ state: 'healthy', consecutiveFailures: 0 })
  })

  it('all upstreams down: 503 with Retry-After, quickly', async () => {
    const e = await engine([at(await refusedPort()), at(await refusedPort())])
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now()
      const r = await httpGet(e.port, '/')
      expect(performance.now() - t0).toBeLessThan(2000)
      expect(r.status).toBe(503)
      expect(r.headers['retry-after']).toMatch(/^\d+$/)
    }
  })

  it('the fallback serves GET and POST when every upstream is down', async () => {
    const fb = await live('fallback')
    const e = await engine([at(await refusedPort(), { priority: 1 }), at(await refusedPort(), { priority: 2 })], [at(fb.port)])
    for (let i = 0; i < 5; i++) {
      expect((await httpGet(e.port, '/')).text).toBe('fallback:GET:')
      const p = await httpRequest(e.port, '/', {}, { method: 'POST', body: 'x' })
      expect([p.status, p.text]).toEqual([200, 'fallback:POST:x'])
    }
  })
})

describe('passive health', () => {
  it('an ejected upstream stays ejected across a reload and gets traffic again once it is back', async () => {
    const ok = await live('ok')
    const port = await refusedPort()
    const e = await engine([at(port), at(ok.port)])
    expect((await httpGet(e.port, '/')).text).toBe('ok:GET:')
    const key = `127.0.0.1:${port}`
    const down = e.engine.stats().upstreams.find((u) => u.key === key)
    expect(down?.state).toBe('ejected')
    await e.engine.apply(snapshotFor({ routes: [{ upstreams: [at(port, { weight: 2 }), at(ok.port)] }] }, 2))
    expect(e.engine.stats().upstreams.find((u) => u.key === key)).toMatchObject({ state: 'ejected', ejectedUntil: down?.ejectedUntil })

    const back = await httpUpstream((_q, res) => res.end('back'))
    cleanup.push(() => back.close())
    await new Promise<void>((res, rej) => {
      back.server.close()
      back.server.once('error', rej)
      back.server.listen(port, '127.0.0.1', () => res())
    })
    await until(async () => (await httpGet(e.port, '/')).text === 'back', 8000, 'the recovered upstream to be used again')
  })

  it('a 1 MiB POST is redirected when the first upstream refuses the connection', async () => {
    const ok = await live('ok')
    const e = await engine([at(await refusedPort(), { priority: 1 }), at(ok.port, { priority: 2 })])
    const body = 'z'.repeat(1024 * 1024)
    const r = await httpRequest(e.port, '/big', { 'content-length': body.length }, { method: 'POST', body })
    expect(r.status).toBe(200)
    expect(r.text).toBe(`ok:POST:${body}`)
  })
})

describe('a reset before any response byte', () => {
  it('GET is retried on another upstream: the client sees 200', async () => {
    const bad = await resetter()
    const ok = await live('ok')
    const e = await engine([at(bad.port, { priority: 1 }), at(ok.port, { priority: 2 })])
    const r = await httpGet(e.port, '/idempotent')
    expect([r.status, r.text]).toEqual([200, 'ok:GET:'])
    expect(bad.text()).toContain('GET /idempotent ')
  })

  it('GET is retried on the fallback', async () => {
    const bad = await resetter()
    const fb = await live('fallback')
    const e = await engine([at(bad.port)], [at(fb.port)])
    const r = await httpGet(e.port, '/idempotent')
    expect([r.status, r.text]).toEqual([200, 'fallback:GET:'])
    expect(bad.text()).toContain('GET /idempotent ')
  })

  it('POST with a body is not sent again: the client sees 502 and no other upstream gets it', async () => {
    const bad = await resetter()
    const ok = await live('ok')
    const fb = await live('fallback')
    const e = await engine([at(bad.port, { priority: 1 }), at(ok.port, { priority: 2 })], [at(fb.port)])
    const r = await httpRequest(e.port, '/order', { 'content-type': 'text/plain' }, { method: 'POST', body: 'buy 1' })
    expect(r.status).toBe(502)
    expect(bad.text()).toContain('POST /order ')
    expect([...ok.requests, ...fb.requests].filter((q) => q.method === 'POST')).toEqual([])
  })
})

describe('retries are bounded', () => {
  it('every upstream resets: 502 quickly, each tried at most twice', async () => {
    const bad = [await resetter(), await resetter(), await resetter()]
    const e = await engine(bad.map((b) => at(b.port)))
    const t0 = performance.now()
    const r = await httpGet(e.port, '/doomed')
    expect(performance.now() - t0).toBeLessThan(2000)
    expect([502, 503]).toContain(r.status)
    for (const b of bad) expect(b.conns.length).toBeLessThanOrEqual(2)
  })

  it('a route with no upstream and no fallback: 503 at once', async () => {
    const e = await engine([])
    const r = await httpGet(e.port, '/')
    expect(r.status).toBe(503)
  })
})

describe('an upstream that never answers', () => {
  it('a GET that times out is served by the fallback', async () => {
    const silent = await rawUpstream()
    cleanup.push(() => silent.close())
    const fb = await live('fallback')
    const e = await engine([at(silent.port)], [at(fb.port)], { responseTimeoutMs: 300 })
    const r = await httpGet(e.port, '/slow-get')
    expect([r.status, r.text]).toEqual([200, 'fallback:GET:'])
  })

  it('gets 504 after responseTimeoutMs, and its connection is not reused', async () => {
    const silent = await rawUpstream()
    cleanup.push(() => silent.close())
    const e = await engine([at(silent.port)], [], { responseTimeoutMs: 300 })
    const t0 = performance.now()
    const r = await httpGet(e.port, '/hang')
    const took = performance.now() - t0
    expect(r.status).toBe(504)
    expect(took).toBeGreaterThanOrEqual(250)
    expect(took).toBeLessThan(5000)
    await until(() => silent.conns.length > 0 && silent.conns.every((c) => c.closed), 3000, 'the proxy to close the timed-out connection')
  })
})

describe('stale pooled connections', () => {
  it('an upstream that drops idle keep-alive sockets at once: 200 sequential requests, no error', async () => {
    const up = await live('ka', { keepAliveTimeout: 1 })
    const e = await engine([at(up.port)])
    const statuses: number[] = []
    for (let i = 0; i < 200; i++) statuses.push((await httpGet(e.port, `/s${i}`)).status)
    expect(statuses.filter((s) => s !== 200)).toEqual([])
  })

  it('an upstream that says keep-alive but closes after each response: 200 sequential requests, no error', async () => {
    const liar = await rawUpstream((sock, data, conn) => {
      conn.pending += data.toString('latin1')
      if (!conn.pending.includes('\r\n\r\n')) return
      conn.pending = ''
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\nok')
      setImmediate(() => sock.end())
    })
    cleanup.push(() => liar.close())
    const e = await engine([at(liar.port)])
    const bodies: string[] = []
    for (let i = 0; i < 200; i++) {
      const r = await httpGet(e.port, `/s${i}`)
      bodies.push(`${r.status} ${r.text}`)
    }
    expect(bodies.filter((b) => b !== '200 ok')).toEqual([])
    expect(liar.conns.length).toBeGreaterThan(1)
  })
})
