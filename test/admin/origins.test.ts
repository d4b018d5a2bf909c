// The API shows what is served: discovered servers, routes and members with
// their origin, next to the stored configuration; discovered parts are
// read-only (409 E_READ_ONLY naming the origin); `?origin=store` is the stored
// configuration alone and round-trips through PUT. Discovery publishes
// through the control plane's real entry point (Control.discovered), as a
// source does; the same with real containers is test/sources/docker-api.test.ts.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Server } from '../../src/model/types.ts'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api

const up = (target: string, port: number, weight = 1) => ({ Target: target, Port: port, Priority: 1, Weight: weight })

function found(address: string, upstreams: ReturnType<typeof up>[], hosts: string[] = []): Server {
  return { address, filter: { Hosts: hosts, Schemes: [], PathPrefix: '' }, upstreams, fallbacks: [], routes: [] }
}

const WEB1 = { source: 'docker', name: 'web-1' }
const WEB2 = { source: 'docker', name: 'web-2' }

beforeEach(async () => {
  api = await startApi()
  // A stored server on :8080 with one upstream and a named route.
  expect(
    (await api.send('POST', '/server', { body: { address: ':8080', upstreams: [up('10.0.0.1', 80)], routes: [{ name: 'api', filter: { PathPrefix: '/api' }, upstreams: [up('10.0.0.9', 80)] }] } }))
      .status,
  ).toBe(201)
  // Discovery: web-1 joins :8080's own route (same filter), web-2 brings a route for shop.test to :8080, web-3 a server of its own on :9090.
  await api.control.discovered(
    'docker',
    [found(':8080', [up('172.17.0.2', 80)]), found(':8080', [up('172.17.0.3', 80)], ['shop.test']), found(':9090', [up('172.17.0.4', 8080)])],
    ['web-1', 'web-2', 'web-3'],
  )
})
afterEach(async () => {
  await api.close()
})

async function shopRoute(): Promise<string> {
  const r = await api.send('GET', '/server/:8080/route')
  return (r.json as Array<{ name: string; origin?: unknown }>).find((x) => x.origin !== undefined)?.name ?? ''
}

describe('what is served, with origins', () => {
  it('GET / shows stored and discovered parts; only discovered ones carry an origin', async () => {
    const r = await api.send('GET', '/')
    expect(r.status).toBe(200)
    const [s8080, s9090] = r.json.servers
    expect(s8080).not.toHaveProperty('origin')
    expect(s8080.upstreams).toEqual([up('10.0.0.1', 80), { ...up('172.17.0.2', 80), origin: WEB1 }])
    expect(s8080.routes.map((x: { name: string; origin?: unknown }) => [x.name, x.origin])).toEqual([
      ['api', undefined],
      [expect.stringMatching(/^docker-[0-9a-f]{8}$/), WEB2],
    ])
    expect(s8080.routes[1].upstreams).toEqual([{ ...up('172.17.0.3', 80), origin: WEB2 }])
    expect(s9090).toMatchObject({ address: ':9090', origin: { source: 'docker', name: 'web-3' }, upstreams: [{ ...up('172.17.0.4', 8080), origin: { source: 'docker', name: 'web-3' } }] })
    // The ETag is the stored configuration's, and a view with discovered parts is never 304.
    const stored = await api.send('GET', '/?origin=store')
    expect(r.headers.etag).toBe(stored.headers.etag)
    expect((await api.send('GET', '/', { headers: { 'if-none-match': String(r.headers.etag) } })).status).toBe(200)
  })

  it('?origin=store is exactly the stored configuration: the file, with no discovered part', async () => {
    const r = await api.send('GET', '/?origin=store')
    expect(r.text).toBe(api.fileText())
    expect(r.text).not.toContain('172.17.0')
    expect((await api.send('GET', '/', { headers: { 'if-none-match': String(r.headers.etag) } })).status).toBe(200)
    expect((await api.send('GET', '/?origin=store', { headers: { 'if-none-match': String(r.headers.etag) } })).status).toBe(304)
    expect((await api.send('GET', '/server?origin=store')).json.map((s: { address: string }) => s.address)).toEqual([':8080'])
    expect((await api.send('GET', '/server/:9090?origin=store')).status).toBe(404)
  })

  it('GET /server lists every served server; a discovered one has a weak ETag of what is served', async () => {
    expect((await api.send('GET', '/server')).json.map((s: { address: string; origin?: unknown }) => [s.address, s.origin])).toEqual([
      [':8080', undefined],
      [':9090', { source: 'docker', name: 'web-3' }],
    ])
    const d = await api.send('GET', '/server/:9090')
    expect(d.status).toBe(200)
    expect(d.headers.etag).toMatch(/^W\/"/)
    expect(d.json.origin).toEqual({ source: 'docker', name: 'web-3' })
    const m = await api.send('GET', '/server/:9090/upstream/172.17.0.4-8080')
    expect(m.json).toEqual({ ...up('172.17.0.4', 8080), origin: { source: 'docker', name: 'web-3' } })
    expect((await api.send('GET', `/server/:8080/route/${await shopRoute()}`)).json.origin).toEqual(WEB2)
  })

  it('an unknown ?origin value is 400 naming the parameter', async () => {
    const r = await api.send('GET', '/?origin=docker')
    expect(r.status).toBe(400)
    expect(r.json).toMatchObject({ code: 'E_VALIDATION', problems: [{ path: 'query.origin' }] })
  })
})

describe('discovered parts are read-only', () => {
  const before = () => api.fileText()

  it.each([
    ['PUT', '/server/:9090', { upstreams: [] }, 'server ":9090"'],
    ['DELETE', '/server/:9090', undefined, 'server ":9090"'],
    ['POST', '/server', { address: ':9090' }, 'server ":9090"'],
    ['PUT', '/server/:9090/upstream/172.17.0.4-8080', { Weight: 5 }, 'server ":9090"'],
    ['PUT', '/server/:9090/filter', { Hosts: ['x.test'] }, 'server ":9090"'],
    ['PUT', '/server/:9090/retry', { Attempts: 1 }, 'server ":9090"'],
    ['POST', '/server/:9090/route/extra', { filter: { PathPrefix: '/x' } }, 'server ":9090"'],
    ['DELETE', '/server/:8080/upstream/172.17.0.2-80', undefined, 'upstream "172.17.0.2-80" of route "default" on server ":8080"'],
    ['PUT', '/server/:8080/upstream/172.17.0.2-80', { Weight: 5 }, 'upstream "172.17.0.2-80" of route "default" on server ":8080"'],
    ['POST', '/server/:8080/upstream/172.17.0.2-80', {}, 'upstream "172.17.0.2-80" of route "default" on server ":8080"'],
  ])('%s %s is 409 E_READ_ONLY naming what and who, and writes nothing', async (method, path, body, what) => {
    const file = before()
    const r = await api.send(method, path, body === undefined ? {} : { body })
    expect(r.status).toBe(409)
    expect(r.json.code).toBe('E_READ_ONLY')
    expect(r.json.message).toContain(what)
    expect(r.json.message).toMatch(/discovered \(docker "web-[123]"\)/)
    expect(api.fileText()).toBe(file)
  })

  it('the discovered route on a stored server is read-only, and so is taking over its filter', async () => {
    const name = await shopRoute()
    const file = before()
    for (const [method, path, body] of [
      ['PUT', `/server/:8080/route/${name}`, { filter: { Hosts: ['shop.test'] } }],
      ['DELETE', `/server/:8080/route/${name}`, undefined],
      ['PUT', `/server/:8080/route/${name}/filter`, { Hosts: ['other.test'] }],
      ['POST', `/server/:8080/route/${name}/upstream/10.0.0.5-80`, {}],
      // A stored route with the discovered route's filter would take its members over.
      ['POST', '/server/:8080/route/mine', { filter: { Hosts: ['shop.test'] } }],
    ] as const) {
      const r = await api.send(method, path, body === undefined ? {} : { body })
      expect({ method, path, status: r.status, code: r.json?.code, web2: String(r.json?.message).includes('docker "web-2"') }).toEqual({ method, path, status: 409, code: 'E_READ_ONLY', web2: true })
    }
    expect(api.fileText()).toBe(file)
  })

  it('a stored server that discovery adds to stays editable in its stored parts', async () => {
    expect((await api.send('PUT', '/server/:8080/filter', { body: { Hosts: ['a.test'] } })).status).toBe(200)
    expect((await api.send('PUT', '/server/:8080/upstream/10.0.0.1-80', { body: { Weight: 3 } })).status).toBe(200)
    expect((await api.send('POST', '/server/:8080/upstream/10.0.0.2-80', { body: {} })).status).toBe(201)
    expect((await api.send('DELETE', '/server/:8080/route/api')).status).toBe(204)
    const stored = (await api.send('GET', '/server/:8080?origin=store')).json
    expect(stored.upstreams).toEqual([up('10.0.0.1', 80, 3), up('10.0.0.2', 80)])
    expect(stored.routes).toEqual([])
    expect(JSON.stringify(stored)).not.toContain('origin')
  })
})

describe('round trips', () => {
  it('a server GET with discovered parts, PUT back as is, changes nothing; a changed discovered part is 409', async () => {
    const file = api.fileText()
    const got = await api.send('GET', '/server/:8080')
    const put = await api.send('PUT', '/server/:8080', { body: got.text, headers: { 'if-match': String(got.headers.etag) } })
    expect(put.status).toBe(200)
    expect(api.fileText()).toBe(file)
    const changed = JSON.parse(got.text)
    changed.upstreams[1].Weight = 7
    const refused = await api.send('PUT', '/server/:8080', { body: changed })
    expect(refused.status).toBe(409)
    expect(refused.json).toMatchObject({ code: 'E_READ_ONLY', problems: [{ path: 'body.upstreams[1]' }] })
    expect(api.fileText()).toBe(file)
  })

  it('?origin=store round-trips through PUT, server by server, and the stored text is unchanged', async () => {
    const file = api.fileText()
    for (const s of (await api.send('GET', '/?origin=store')).json.servers) {
      const r = await api.send('PUT', `/server/${s.address}`, { body: s })
      expect(r.status).toBe(200)
    }
    expect(api.fileText()).toBe(file)
    const one = await api.send('GET', '/server/:8080?origin=store')
    expect((await api.send('PUT', '/server/:8080', { body: one.text, headers: { 'if-match': String(one.headers.etag) } })).status).toBe(200)
    expect(api.fileText()).toBe(file)
  })
})
