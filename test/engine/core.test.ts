// The engine's core contract against real sockets: forwarding, upstream
// keep-alive, weighted balancing, priority failover, fallbacks, the 503 path,
// hot apply() on a live client connection, listener removal and bind errors.
// Malformed input, streaming, WebSocket and drain details are covered by the
// other files in this folder.

import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { BalancerError } from '../../src/model/errors.ts'
import { httpGet, httpRequest, rawRequest, watchedAgent } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { snapshotFor, snapshotWith } from '../support/snapshot.ts'
import { httpUpstream, refusedPort } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function upstream(name: string): Promise<HttpUpstream> {
  const up = await httpUpstream(undefined, { name })
  cleanups.push(() => up.close())
  return up
}

async function engineFor(...args: Parameters<typeof startEngine>): Promise<StartedEngine> {
  const e = await startEngine(...args)
  cleanups.push(() => e.stop())
  return e
}

const at = (up: { port: number }, extra: { weight?: number; priority?: number } = {}) => ({ host: '127.0.0.1', port: up.port, ...extra })

describe('forwarding', () => {
  it('GET and POST reach the upstream with their body and X-Forwarded-*', async () => {
    const a = await upstream('a')
    const e = await engineFor(snapshotFor({ routes: [{ upstreams: [at(a)] }] }, 1))
    expect((await httpGet(e.port, '/hello?x=1')).text).toBe('a')
    const post = await httpRequest(e.port, '/submit', { 'content-type': 'text/plain' }, { method: 'POST', body: 'payload' })
    expect(post.status).toBe(200)
    const [get, sent] = a.requests
    expect(get?.url).toBe('/hello?x=1')
    expect(get?.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(get?.headers['x-forwarded-proto']).toBe('http')
    expect(sent?.method).toBe('POST')
    expect(sent?.body.toString()).toBe('payload')
    expect(sent?.headers['content-type']).toBe('text/plain')
  })

  it('an HTTP/1.0 request without Host reaches a Host-requiring upstream (node:http) with the upstream as Host', async () => {
    const a = await upstream('a')
    const e = await engineFor(snapshotFor({ routes: [{ upstreams: [at(a)] }] }, 1))
    const r = await rawRequest(e.port, 'GET /old HTTP/1.0\r\n\r\n')
    expect(r.text).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\na$/)
    expect(a.requests[0]?.headers.host).toBe(a.key)
  })

  it('reuses one upstream connection for sequential requests', async () => {
    const a = await upstream('a')
    const e = await engineFor(snapshotFor({ routes: [{ upstreams: [at(a)] }] }, 1))
    for (let i = 0; i < 10; i++) expect((await httpGet(e.port, `/${i}`)).status).toBe(200)
    expect(a.connections).toBe(1)
    const st = e.engine.stats().upstreams.find((u) => u.key === a.key)
    expect(st).toMatchObject({ requests: 10, failures: 0, active: 0, idle: 1, state: 'healthy' })
  })
})

describe('balancing', () => {
  it('splits 3:1 exactly over 8 requests, interleaved', async () => {
    const a = await upstream('a')
    const b = await upstream('b')
    const e = await engineFor(snapshotFor({ routes: [{ upstreams: [at(a, { weight: 3 }), at(b, { weight: 1 })] }] }, 1))
    const seen: string[] = []
    for (let i = 0; i < 8; i++) seen.push((await httpGet(e.port, '/')).text)
    expect(seen).toEqual(['a', 'a', 'b', 'a', 'a', 'a', 'b', 'a'])
  })

  it('keeps the round-robin position across an apply that leaves the route unchanged', async () => {
    const a = await upstream('a')
    const b = await upstream('b')
    const spec = { routes: [{ upstreams: [at(a), at(b)] }] }
    const e = await engineFor(snapshotFor(spec, 1))
    expect((await httpGet(e.port, '/')).text).toBe('a')
    await e.engine.apply(snapshotFor(spec, 2))
    expect((await httpGet(e.port, '/')).text).toBe('b')
  })
})

describe('failure handling', () => {
  it('fails over to the next priority when tier 1 refuses connections', async () => {
    const dead = await refusedPort()
    const b = await upstream('b')
    const e = await engineFor(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: dead, priority: 1 }, at(b, { priority: 2 })] }] }, 1))
    for (let i = 0; i < 4; i++) expect((await httpGet(e.port, '/')).text).toBe('b')
    const st = e.engine.stats().upstreams.find((u) => u.port === dead)
    expect(st).toMatchObject({ state: 'ejected', failures: 1, consecutiveFailures: 1 })
  })

  it('uses the fallback when every upstream refuses', async () => {
    const d1 = await refusedPort()
    const d2 = await refusedPort()
    const fb = await upstream('fallback')
    const e = await engineFor(
      snapshotFor(
        {
          routes: [
            {
              upstreams: [
                { host: '127.0.0.1', port: d1 },
                { host: '127.0.0.1', port: d2, priority: 2 },
              ],
              fallbacks: [at(fb)],
            },
          ],
        },
        1,
      ),
    )
    const r = await httpRequest(e.port, '/p', {}, { method: 'POST', body: 'x' })
    expect(r.text).toBe('fallback')
    expect(fb.requests[0]?.body.toString()).toBe('x')
  })

  it('answers 503 with Retry-After at once when nothing can be connected', async () => {
    const dead = await refusedPort()
    const e = await engineFor(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: dead }] }] }, 1))
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now()
      const r = await httpGet(e.port, '/')
      expect(r.status).toBe(503)
      expect(r.headers['retry-after']).toBe('1')
      expect(Date.now() - t0).toBeLessThan(500)
    }
  })

  it('with every upstream ejected, still probes the one back soonest', async () => {
    const port = await refusedPort()
    const e = await engineFor(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port }] }] }, 1))
    expect((await httpGet(e.port, '/')).status).toBe(503)
    expect(e.engine.stats().upstreams[0]?.state).toBe('ejected')
    // The upstream comes back on the same port while still ejected: the next request is served.
    const srv = createServer()
    await new Promise<void>((r) => srv.listen(port, '127.0.0.1', () => r()))
    cleanups.push(() => new Promise<void>((r) => srv.close(() => r())))
    srv.on('connection', (s) => {
      s.on('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nback'))
      s.on('error', () => {})
    })
    expect((await httpGet(e.port, '/')).text).toBe('back')
    expect(e.engine.stats().upstreams[0]).toMatchObject({ state: 'healthy', consecutiveFailures: 0 })
  })

  it('a route with no upstream and no fallback answers 503', async () => {
    const e = await engineFor(snapshotFor({ routes: [{ upstreams: [] }] }, 1))
    const r = await rawRequest(e.port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    expect(r.text).toMatch(/^HTTP\/1\.1 503 /)
    expect(r.text).toMatch(/\r\nretry-after: 1\r\n/i)
  })
})

describe('apply()', () => {
  it('a changed plan reaches a live keep-alive client connection without closing it', async () => {
    const a = await upstream('a')
    const b = await upstream('b')
    const e = await engineFor(snapshotFor({ routes: [{ upstreams: [at(a)] }] }, 1))
    const w = watchedAgent()
    cleanups.push(async () => w.destroy())
    expect((await httpGet(e.port, '/', {}, { agent: w.agent })).text).toBe('a')
    await e.engine.apply(snapshotFor({ routes: [{ upstreams: [at(b)] }] }, 2))
    expect((await httpGet(e.port, '/', {}, { agent: w.agent })).text).toBe('b')
    expect(w.sockets()).toBe(1)
    expect(w.closes()).toBe(0)
    expect(e.engine.stats().snapshotVersion).toBe(2)
    // a is no longer referenced: its pooled connection is closed and its record goes.
    expect(e.engine.stats().upstreams.map((u) => u.key)).toEqual([b.key])
  })

  it('a removed listener stops accepting; the kept one keeps serving', async () => {
    const a = await upstream('a')
    const route = { routes: [{ upstreams: [at(a)] }] }
    const e = await engineFor(
      snapshotWith(
        [
          { host: '127.0.0.1', ...route },
          { host: '127.0.0.2', ...route },
        ],
        1,
      ),
    )
    const gone = e.portOf('127.0.0.2:0')
    expect((await httpGet(e.port, '/')).status).toBe(200)
    await e.engine.apply(snapshotWith([{ host: '127.0.0.1', ...route }], 2))
    expect(e.engine.boundPort('127.0.0.2:0')).toBeNull()
    const r = await rawRequest(gone, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', { host: '127.0.0.2', timeoutMs: 1000 })
    expect(r.reset).toBe(true)
    expect(r.buf.length).toBe(0)
    expect((await httpGet(e.port, '/')).status).toBe(200)
  })

  it('every listening socket of an address serves, and removing the address frees the port entirely', async () => {
    // An address is served by several SO_REUSEPORT sockets (listener.ts) that
    // the kernel spreads new connections over: 200 connections reach all of
    // them, and after removal a plain bind of the port must succeed, which it
    // cannot while any of them is still open.
    const a = await upstream('a')
    const route = { routes: [{ upstreams: [at(a)] }] }
    const e = await engineFor(
      snapshotWith(
        [
          { host: '127.0.0.1', ...route },
          { host: '127.0.0.2', ...route },
        ],
        1,
      ),
    )
    const port = e.portOf('127.0.0.2:0')
    const answers = await Promise.all(Array.from({ length: 200 }, () => rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', { host: '127.0.0.2', timeoutMs: 5000 })))
    expect(answers.filter((r) => r.buf.toString('latin1').startsWith('HTTP/1.1 200')).length).toBe(200)
    await e.engine.apply(snapshotWith([{ host: '127.0.0.1', ...route }], 2))
    const plain = createServer()
    const bound = await new Promise<string>((resolve) => {
      plain.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'))
      plain.listen(port, '127.0.0.2', () => resolve('bound'))
    })
    await new Promise<void>((r) => plain.close(() => r()))
    expect(bound).toBe('bound')
  })

  it('a bind failure rejects with E_LISTEN and changes nothing', async () => {
    const a = await upstream('a')
    const b = await upstream('b')
    const e = await engineFor(snapshotFor({ routes: [{ upstreams: [at(a)] }] }, 1))
    const blocker = createServer()
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.3', () => r()))
    cleanups.push(() => new Promise<void>((r) => blocker.close(() => r())))
    const taken = (blocker.address() as AddressInfo).port
    const next = snapshotWith(
      [
        { host: '127.0.0.1', routes: [{ upstreams: [at(b)] }] },
        { host: '127.0.0.4', routes: [{ upstreams: [at(b)] }] },
        { host: '127.0.0.3', port: taken, routes: [{ upstreams: [at(b)] }] },
      ],
      2,
    )
    const err = await e.engine.apply(next).catch((x: unknown) => x)
    expect(err).toBeInstanceOf(BalancerError)
    expect((err as BalancerError).code).toBe('E_LISTEN')
    expect((err as BalancerError).message).toContain(`127.0.0.3:${taken}`)
    expect((err as BalancerError).message).toContain('EADDRINUSE')
    expect(e.engine.boundPort('127.0.0.4:0')).toBeNull()
    expect((await httpGet(e.port, '/')).text).toBe('a')
    expect(e.engine.stats().snapshotVersion).toBe(1)
    expect(e.engine.stats().upstreams.map((u) => u.key)).toEqual([a.key])
  })
})
