// Live upstream state in the API: the admin reads the engine's EngineStats
// through its PlaneView (as the balancer wires it) and shows it
// beside the configuration, never inside it. End-to-end tests with a real
// engine are in test/e2e/status.test.ts.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { EngineStats, UpstreamStats } from '../../src/engine/types.ts'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
let upstreams: UpstreamStats[] = []

function stats(key: string, host: string, port: number, over: Partial<UpstreamStats> = {}): UpstreamStats {
  return { key, host, port, state: 'healthy', ejectedUntil: null, checks: [], active: 0, idle: 0, pending: 0, requests: 0, failures: 0, consecutiveFailures: 0, retries: 0, ejections: 0, ...over }
}

beforeEach(async () => {
  upstreams = []
  api = await startApi({
    plane: { engine: (): EngineStats => ({ snapshotVersion: 1, listeners: [], upstreams, inFlight: 0 }), workers: () => null },
  })
  const body = {
    address: ':8080',
    upstreams: [
      { Target: '127.0.0.1', Port: 9000 },
      { Target: 'App.local', Port: 9001 },
    ],
    fallbacks: [{ Target: '::1', Port: 9009 }],
  }
  expect((await api.send('POST', '/server', { body })).status).toBe(201)
  expect((await api.send('PUT', '/server/:8080/route/app', { body: { filter: { Hosts: ['app.example.com'] }, upstreams: [{ Target: '127.0.0.1', Port: 9002 }] } })).status).toBe(201)
})
afterEach(async () => {
  await api.close()
})

describe('status beside the configuration', () => {
  it('GET /server/{address} adds every member of every route keyed target-port, with ISO times', async () => {
    const until = Date.UTC(2026, 10, 25, 12, 0, 0)
    upstreams.push(
      stats('127.0.0.1:9000', '127.0.0.1', 9000, { requests: 7, idle: 1 }),
      stats('app.local:9001', 'App.local', 9001, {
        state: 'ejected',
        ejectedUntil: until,
        failures: 3,
        ejections: 1,
        checks: [{ probe: 'http GET  / 200-399', state: 'unhealthy', lastResult: '503', lastAt: until - 1000, streak: 3 }],
      }),
      stats('[::1]:9009', '::1', 9009),
    )
    const r = await api.send('GET', '/server/:8080')
    expect(r.status).toBe(200)
    expect(r.json.upstreams).toEqual([
      { Target: '127.0.0.1', Port: 9000, Priority: 1, Weight: 1 },
      { Target: 'App.local', Port: 9001, Priority: 1, Weight: 1 },
    ])
    expect(Object.keys(r.json.status.upstreams)).toEqual(['127.0.0.1-9000', 'App.local-9001', '127.0.0.1-9002'])
    expect(r.json.status.upstreams['127.0.0.1-9000']).toEqual({
      state: 'healthy',
      ejectedUntil: null,
      checks: [],
      active: 0,
      idle: 1,
      pending: 0,
      requests: 7,
      failures: 0,
      consecutiveFailures: 0,
      retries: 0,
      ejections: 0,
    })
    expect(r.json.status.upstreams['App.local-9001']).toMatchObject({
      state: 'ejected',
      ejectedUntil: '2026-11-25T12:00:00.000Z',
      checks: [{ probe: 'http GET  / 200-399', state: 'unhealthy', lastResult: '503', lastAt: '2026-11-25T11:59:59.000Z', streak: 3 }],
    })
    // Not yet known to the engine.
    expect(r.json.status.upstreams['127.0.0.1-9002'].state).toBe('unknown')
    expect(r.json.status.fallbacks).toEqual({ '::1-9009': expect.objectContaining({ state: 'healthy' }) })
  })

  it('the route GET shows its own members only', async () => {
    upstreams.push(stats('127.0.0.1:9002', '127.0.0.1', 9002, { state: 'pending' }))
    const r = await api.send('GET', '/server/:8080/route/app')
    expect(r.json.status).toEqual({ upstreams: { '127.0.0.1-9002': expect.objectContaining({ state: 'pending' }) }, fallbacks: {} })
  })

  it('what a GET returns can be PUT back as is; status is never stored', async () => {
    upstreams.push(stats('127.0.0.1:9000', '127.0.0.1', 9000))
    const got = await api.send('GET', '/server/:8080')
    const before = api.fileText()
    const put = await api.send('PUT', '/server/:8080', { body: got.text, headers: { 'if-match': String(got.headers.etag) } })
    expect(put.status).toBe(200)
    expect(put.json).not.toHaveProperty('status')
    expect(api.fileText()).toBe(before)
    expect(api.fileText()).not.toContain('status')
    const route = await api.send('GET', '/server/:8080/route/app')
    expect((await api.send('PUT', '/server/:8080/route/app', { body: route.text, headers: { 'if-match': String(route.headers.etag) } })).status).toBe(200)
  })

  it('the ETag covers the configuration only, and a live GET is never 304', async () => {
    const a = await api.send('GET', '/server/:8080')
    upstreams.push(stats('127.0.0.1:9000', '127.0.0.1', 9000, { requests: 1 }))
    const b = await api.send('GET', '/server/:8080', { headers: { 'if-none-match': String(a.headers.etag) } })
    expect(b.status).toBe(200)
    expect(b.headers.etag).toBe(a.headers.etag)
    expect(b.json.status.upstreams['127.0.0.1-9000'].requests).toBe(1)
  })

  it('GET /status lists every upstream the engine knows, keyed target-port', async () => {
    upstreams.push(stats('127.0.0.1:9000', '127.0.0.1', 9000), stats('[::1]:9009', '::1', 9009, { state: 'draining' }))
    const r = await api.send('GET', '/status')
    expect(r.json.upstreams).toEqual({
      '127.0.0.1-9000': expect.objectContaining({ state: 'healthy' }),
      '::1-9009': expect.objectContaining({ state: 'draining' }),
    })
  })
})
