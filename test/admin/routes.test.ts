// Filters and routes (virtual hosting), including the `default` route.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
beforeEach(async () => {
  api = await startApi()
  const body = '{"address":":8080","upstreams":[{"Target":"127.0.0.1","Port":9000}]}'
  expect((await api.send('POST', '/server', { body })).status).toBe(201)
})
afterEach(async () => {
  await api.close()
})

const EMPTY_FILTER = { Hosts: [], Schemes: [], PathPrefix: '' }

describe('filter', () => {
  it('GET returns the server filter; the seed body POSTs and PUTs with 200', async () => {
    const got = await api.send('GET', '/server/:8080/filter')
    expect(got.status).toBe(200)
    expect(got.json).toEqual(EMPTY_FILTER)
    // The seed README's request body, verbatim.
    const seed = await api.send('POST', '/server/:8080/filter', { body: '{"Hosts":null,"Schemes":["",""],"PathPrefix":""}' })
    expect(seed.status).toBe(200)
    expect(seed.json).toEqual(EMPTY_FILTER)
    const put = await api.send('PUT', '/server/:8080/filter', {
      body: { Hosts: ['WWW.Example.com', '*.example.org'], Schemes: ['https'], PathPrefix: '/api' },
    })
    expect(put.status).toBe(200)
    expect(put.json).toEqual({ Hosts: ['www.example.com', '*.example.org'], Schemes: ['https'], PathPrefix: '/api' })
    expect(api.control.stored().config.servers[0]?.filter).toEqual(put.json)
    expect((await api.send('GET', '/server/:8080/filter')).headers.etag).toBe(put.headers.etag)
  })

  it('an invalid filter is 400 naming the field, file unchanged', async () => {
    const before = api.fileText()
    const r = await api.send('PUT', '/server/:8080/filter', { body: { Schemes: ['ftp'], PathPrefix: 'api' } })
    expect(r.status).toBe(400)
    expect(r.json.problems.map((p: { path: string }) => p.path)).toEqual(['body.Schemes[0]', 'body.PathPrefix'])
    expect(api.fileText()).toBe(before)
  })

  it('of an unknown server is 404', async () => {
    expect((await api.send('GET', '/server/:1/filter')).status).toBe(404)
  })
})

describe('routes', () => {
  it('lists default first, then named routes', async () => {
    const list0 = await api.send('GET', '/server/:8080/route')
    expect(list0.status).toBe(200)
    expect(list0.json).toEqual([{ name: 'default', filter: EMPTY_FILTER, upstreams: [{ Target: '127.0.0.1', Port: 9000, Priority: 1, Weight: 1 }], fallbacks: [] }])
    await api.send('POST', '/server/:8080/route/web', { body: { filter: { Hosts: ['web.example.com'] } } })
    const list1 = await api.send('GET', '/server/:8080/route')
    expect(list1.json.map((r: { name: string }) => r.name)).toEqual(['default', 'web'])
  })

  it('POST creates (201 + Location, name from the URL), 409 when it exists, PUT replaces (200), DELETE 204', async () => {
    const body = { filter: { Hosts: ['app.example.com'] }, upstreams: { '127.0.0.1-9001': {} } }
    const created = await api.send('POST', '/server/:8080/route/app', { body })
    expect(created.status).toBe(201)
    expect(created.headers.location).toBe('/server/:8080/route/app')
    expect(created.json).toEqual({
      name: 'app',
      filter: { Hosts: ['app.example.com'], Schemes: [], PathPrefix: '' },
      upstreams: [{ Target: '127.0.0.1', Port: 9001, Priority: 1, Weight: 1 }],
      fallbacks: [],
    })
    expect((await api.send('GET', '/server/:8080/route/app')).json).toEqual(created.json)
    expect((await api.send('POST', '/server/:8080/route/app', { body })).status).toBe(409)

    const replaced = await api.send('PUT', '/server/:8080/route/app', { body: { name: 'app', filter: { Hosts: ['app2.example.com'] } } })
    expect(replaced.status).toBe(200)
    expect(replaced.json.upstreams).toEqual([])
    expect(api.control.stored().config.servers[0]?.routes).toEqual([replaced.json])

    expect((await api.send('DELETE', '/server/:8080/route/app')).status).toBe(204)
    expect((await api.send('GET', '/server/:8080/route/app')).status).toBe(404)
    expect((await api.send('DELETE', '/server/:8080/route/app')).status).toBe(404)
  })

  it('nested upstream, fallback and filter of a named route', async () => {
    await api.send('PUT', '/server/:8080/route/app', { body: { filter: { Hosts: ['app.example.com'] } } })
    expect((await api.send('PUT', '/server/:8080/route/app/upstream/10.0.0.1-80')).status).toBe(201)
    expect((await api.send('PUT', '/server/:8080/route/app/fallback/10.0.0.2-80')).status).toBe(201)
    const f = await api.send('PUT', '/server/:8080/route/app/filter', { body: { Hosts: ['app.example.com'], PathPrefix: '/v2' } })
    expect(f.status).toBe(200)
    const route = (await api.send('GET', '/server/:8080/route/app')).json
    expect(route.upstreams.map((u: { Target: string }) => u.Target)).toEqual(['10.0.0.1'])
    expect(route.fallbacks.map((u: { Target: string }) => u.Target)).toEqual(['10.0.0.2'])
    expect(route.filter.PathPrefix).toBe('/v2')
    // The server's own lists are untouched.
    expect((await api.send('GET', '/server/:8080')).json.upstreams).toHaveLength(1)
  })

  it('`default` is the server itself: GET, PUT replace, nested writes, POST 409, DELETE 400', async () => {
    const got = await api.send('GET', '/server/:8080/route/default')
    expect(got.status).toBe(200)
    expect(got.json.name).toBe('default')
    expect((await api.send('POST', '/server/:8080/route/default', { body: {} })).status).toBe(409)

    const put = await api.send('PUT', '/server/:8080/route/default', { body: { name: 'default', fallbacks: [{ Target: '10.0.0.9', Port: 80 }] } })
    expect(put.status).toBe(200)
    expect(put.json).toEqual({ name: 'default', filter: EMPTY_FILTER, upstreams: [], fallbacks: [{ Target: '10.0.0.9', Port: 80, Priority: 1, Weight: 1 }] })
    const server = (await api.send('GET', '/server/:8080')).json
    expect(server.upstreams).toEqual([])
    expect(server.fallbacks).toEqual(put.json.fallbacks)

    expect((await api.send('PUT', '/server/:8080/route/default/upstream/10.0.0.3-80')).status).toBe(201)
    expect((await api.send('GET', '/server/:8080/upstream/10.0.0.3-80')).status).toBe(200)
    expect((await api.send('GET', '/server/:8080/route/default/filter')).json).toEqual(EMPTY_FILTER)

    const del = await api.send('DELETE', '/server/:8080/route/default')
    expect(del.status).toBe(400)
    expect(del.json.problems[0].path).toBe('path.name')
  })

  it('validation: a body name that disagrees, a bad route name, a duplicate filter', async () => {
    const before = api.fileText()
    const wrongName = await api.send('PUT', '/server/:8080/route/app', { body: { name: 'other' } })
    expect(wrongName.status).toBe(400)
    expect(wrongName.json.problems[0].path).toBe('body.name')
    const badName = await api.send('PUT', '/server/:8080/route/Bad_Name!', { body: {} })
    expect(badName.status).toBe(400)
    expect(badName.json.problems[0].path).toBe('body.name')
    // A route whose filter equals the default route's could never be chosen.
    const dup = await api.send('PUT', '/server/:8080/route/dup', { body: { upstreams: [] } })
    expect(dup.status).toBe(400)
    expect(dup.json.problems[0].path).toBe('servers[0].routes[0].filter')
    expect(api.fileText()).toBe(before)
  })
})
