// The policy groups through the API: in server and route bodies, and as the
// sub-resources /health, /passive, /retry, /limits of a server and a route.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
beforeEach(async () => {
  api = await startApi()
  const body = '{"address":":8080","upstreams":[{"Target":"127.0.0.1","Port":9000}]}'
  expect((await api.send('POST', '/server', { body })).status).toBe(201)
  expect((await api.send('PUT', '/server/:8080/route/app', { body: { filter: { Hosts: ['app.example.com'] } } })).status).toBe(201)
})
afterEach(async () => {
  await api.close()
})

const HEALTH_DEFAULTS = { Type: 'http', Path: '/', Method: 'GET', Host: '', Statuses: ['200-399'], Interval: '5s', Timeout: '2s', Rise: 2, Fall: 3 }
const RETRY_DEFAULTS = { Statuses: [502, 503, 504], Attempts: 3, Budget: 20 }

describe('policy groups in server and route bodies', () => {
  it('a loose group is stored whole and canonical; absent groups stay absent', async () => {
    const r = await api.send('PUT', '/server/:8080', {
      body: '{"upstreams":[{"Target":"127.0.0.1","Port":9000}], "HEALTH": {"path":"/healthz","interval":1000,"statuses":"200,204"}, "retry": {"attempts":"2"}}',
    })
    expect(r.status).toBe(200)
    expect(r.json.health).toEqual({ ...HEALTH_DEFAULTS, Path: '/healthz', Interval: '1s', Timeout: '1s', Statuses: ['200', '204'] })
    expect(r.json.retry).toEqual({ ...RETRY_DEFAULTS, Attempts: 2 })
    expect(r.json).not.toHaveProperty('passive')
    expect(r.json).not.toHaveProperty('limits')
    expect(JSON.parse(api.fileText() ?? '').servers[0].health.Interval).toBe('1s')
  })

  it('every invalid field is one 400 listing each path; nothing is stored', async () => {
    const before = api.fileText()
    const r = await api.send('PUT', '/server/:8080/route/app', {
      body: { filter: { Hosts: ['app.example.com'] }, health: { Interval: 'fast', Rise: 0 }, retry: { Attempts: 11 } },
    })
    expect(r.status).toBe(400)
    expect(r.json.code).toBe('E_VALIDATION')
    expect(r.json.problems).toEqual([
      { path: 'body.health.Interval', message: 'must be a duration like 5s or 500ms, got "fast"' },
      { path: 'body.health.Rise', message: 'must be an integer 1-100, got 0' },
      { path: 'body.retry.Attempts', message: 'must be an integer 1-10, got 11' },
    ])
    expect(api.fileText()).toBe(before)
  })
})

describe('/health, /passive, /retry, /limits', () => {
  it('health: 404 until set; PUT stores it completed with defaults; DELETE removes it', async () => {
    const none = await api.send('GET', '/server/:8080/health')
    expect(none.status).toBe(404)
    expect(none.json.code).toBe('E_NOT_FOUND')
    const put = await api.send('PUT', '/server/:8080/health', { body: { path: '/ready', type: 'HTTP', method: 'head' } })
    expect(put.status).toBe(200)
    expect(put.json).toEqual({ ...HEALTH_DEFAULTS, Path: '/ready', Method: 'HEAD' })
    const got = await api.send('GET', '/server/:8080/health')
    expect(got.json).toEqual(put.json)
    expect(got.headers.etag).toBe(put.headers.etag)
    expect(api.control.stored().config.servers[0]?.health).toEqual(put.json)
    // The server body shows it too, and the default route is the same thing.
    expect((await api.send('GET', '/server/:8080/route/default/health')).json).toEqual(put.json)
    expect((await api.send('DELETE', '/server/:8080/health')).status).toBe(204)
    expect((await api.send('GET', '/server/:8080/health')).status).toBe(404)
    expect(api.control.stored().config.servers[0]).not.toHaveProperty('health')
  })

  it('a route inherits its server group; its own replaces it; DELETE goes back to the server group', async () => {
    await api.send('PUT', '/server/:8080/retry', { body: { Attempts: 5 } })
    const inherited = await api.send('GET', '/server/:8080/route/app/retry')
    expect(inherited.json).toEqual({ ...RETRY_DEFAULTS, Attempts: 5 })
    const own = await api.send('PUT', '/server/:8080/route/app/retry', { body: { Attempts: 1, Statuses: [503] } })
    expect(own.status).toBe(200)
    expect(own.json).toEqual({ Statuses: [503], Attempts: 1, Budget: 20 })
    const cfg = api.control.stored().config.servers[0]
    expect(cfg?.retry?.Attempts).toBe(5)
    expect(cfg?.routes[0]?.retry).toEqual(own.json)
    expect((await api.send('DELETE', '/server/:8080/route/app/retry')).status).toBe(204)
    expect((await api.send('GET', '/server/:8080/route/app/retry')).json).toEqual({ ...RETRY_DEFAULTS, Attempts: 5 })
    expect(api.control.stored().config.servers[0]?.routes[0]).not.toHaveProperty('retry')
  })

  it('passive and limits answer their defaults when unset', async () => {
    expect((await api.send('GET', '/server/:8080/passive')).json).toEqual({ Failures: 3, Ejection: '1s', MaxEjection: '30s', EjectOn5xx: false })
    expect((await api.send('GET', '/server/:8080/route/app/limits')).json).toEqual({ MaxConnections: 0, MaxPending: 0 })
    const put = await api.send('PUT', '/server/:8080/limits', { body: '{"maxconnections": 10}' })
    expect(put.json).toEqual({ MaxConnections: 10, MaxPending: 0 })
  })

  it('a route can opt out of its server health check with health: null', async () => {
    await api.send('PUT', '/server/:8080/health', { body: { Path: '/healthz' } })
    expect((await api.send('GET', '/server/:8080/route/app/health')).json.Path).toBe('/healthz')
    const r = await api.send('PUT', '/server/:8080/route/app', { body: { filter: { Hosts: ['app.example.com'] }, health: null } })
    expect(r.status).toBe(200)
    expect(r.json.health).toBeNull()
    expect((await api.send('GET', '/server/:8080/route/app/health')).status).toBe(404)
  })

  it('bad input is 400 naming the field; nothing stored changes', async () => {
    const before = api.fileText()
    const r = await api.send('PUT', '/server/:8080/health', { body: { Interval: '50ms', Timeout: 'soon', Statuses: ['600'] } })
    expect(r.status).toBe(400)
    expect(r.json.problems.map((p: { path: string }) => p.path)).toEqual(['body.Statuses[0]', 'body.Interval', 'body.Timeout'])
    expect(r.json.message).toContain('body.Interval: must be between 100ms and 1h, got "50ms"')
    const bad = await api.send('PUT', '/server/:8080/route/app/passive', { body: { Failures: 'x', Surprise: 1 } })
    expect(bad.status).toBe(400)
    expect(bad.json.problems.map((p: { path: string }) => p.path)).toEqual(['body.Surprise', 'body.Failures'])
    expect(api.fileText()).toBe(before)
  })

  it('If-Match: the group ETag or the server ETag guards a write; a stale one is 412', async () => {
    const tag = String((await api.send('GET', '/server/:8080/retry')).headers.etag)
    const serverTag = String((await api.send('GET', '/server/:8080')).headers.etag)
    const ok = await api.send('PUT', '/server/:8080/retry', { body: { Attempts: 2 }, headers: { 'if-match': tag } })
    expect(ok.status).toBe(200)
    const stale = await api.send('PUT', '/server/:8080/retry', { body: { Attempts: 4 }, headers: { 'if-match': tag } })
    expect(stale.status).toBe(412)
    expect(stale.json.code).toBe('E_PRECONDITION')
    const staleServer = await api.send('DELETE', '/server/:8080/retry', { headers: { 'if-match': serverTag } })
    expect(staleServer.status).toBe(412)
    expect(api.control.stored().config.servers[0]?.retry?.Attempts).toBe(2)
    const fresh = String((await api.send('GET', '/server/:8080')).headers.etag)
    expect((await api.send('DELETE', '/server/:8080/retry', { headers: { 'if-match': fresh } })).status).toBe(204)
  })

  it('of an unknown server or route is 404', async () => {
    expect((await api.send('GET', '/server/:1/retry')).status).toBe(404)
    expect((await api.send('PUT', '/server/:8080/route/nope/limits', { body: {} })).status).toBe(404)
    expect((await api.send('DELETE', '/server/:1/health')).status).toBe(404)
  })

  it('changing the filter or an upstream keeps the groups', async () => {
    await api.send('PUT', '/server/:8080/health', { body: { Path: '/h' } })
    await api.send('PUT', '/server/:8080/route/app/limits', { body: { MaxPending: 3 } })
    await api.send('PUT', '/server/:8080/filter', { body: { Hosts: ['x.example.com'] } })
    await api.send('PUT', '/server/:8080/upstream/127.0.0.1-9001')
    await api.send('PUT', '/server/:8080/route/app/upstream/127.0.0.1-9002')
    const s = api.control.stored().config.servers[0]
    expect(s?.health?.Path).toBe('/h')
    expect(s?.routes[0]?.limits?.MaxPending).toBe(3)
  })
})
