// Upstreams and fallbacks: the same routes, on the server (default route) and
// on a named route.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
beforeEach(async () => {
  api = await startApi()
  expect((await api.send('POST', '/server', { body: { address: ':8080' } })).status).toBe(201)
  const route = { filter: { Hosts: ['api.example.com'] } }
  expect((await api.send('POST', '/server/:8080/route/api', { body: route })).status).toBe(201)
})
afterEach(async () => {
  await api.close()
})

const stored = () => api.control.stored().config.servers[0]

describe.each([
  ['upstream', 'upstreams', '/server/:8080', () => stored()],
  ['fallback', 'fallbacks', '/server/:8080', () => stored()],
  ['upstream', 'upstreams', '/server/:8080/route/api', () => stored()?.routes[0]],
  ['fallback', 'fallbacks', '/server/:8080/route/api', () => stored()?.routes[0]],
] as const)('%s at %s', (segment, list, base, where) => {
  const url = `${base}/${segment}/127.0.0.1-8081`

  it('POST creates (201 + Location), GET reads, POST again is 409', async () => {
    const body = { Target: '127.0.0.1', Port: 8081, Priority: 1, Weight: 2 }
    const created = await api.send('POST', url, { body: JSON.stringify(body) })
    expect(created.status).toBe(201)
    expect(created.headers.location).toBe(url)
    expect(created.json).toEqual(body)
    expect(where()?.[list]).toEqual([body])

    const got = await api.send('GET', url)
    expect(got.status).toBe(200)
    expect(got.json).toEqual(body)
    expect(got.headers.etag).toBe(created.headers.etag)

    const again = await api.send('POST', url, { body })
    expect(again.status).toBe(409)
    expect(again.json.code).toBe('E_EXISTS')
  })

  it('PUT creates (201) then replaces (200); Target and Port may come from the URL', async () => {
    const first = await api.send('PUT', url, { body: { Weight: 3 } })
    expect(first.status).toBe(201)
    expect(first.json).toEqual({ Target: '127.0.0.1', Port: 8081, Priority: 1, Weight: 3 })
    const second = await api.send('PUT', url, { body: { Priority: 2 } })
    expect(second.status).toBe(200)
    expect(second.json).toEqual({ Target: '127.0.0.1', Port: 8081, Priority: 2, Weight: 1 })
    expect(second.headers.etag).not.toBe(first.headers.etag)
    expect(where()?.[list]).toEqual([second.json])
  })

  it('a body Target or Port that disagrees with the URL is 400 naming the field', async () => {
    const before = api.fileText()
    const r = await api.send('PUT', url, { body: { Target: '10.0.0.1', Port: 9999 } })
    expect(r.status).toBe(400)
    expect(r.json.code).toBe('E_VALIDATION')
    expect(r.json.problems.map((p: { path: string }) => p.path)).toEqual(['body.Target', 'body.Port'])
    expect(api.fileText()).toBe(before)
  })

  it('DELETE removes (204), then GET and DELETE are 404', async () => {
    await api.send('PUT', url)
    expect((await api.send('DELETE', url)).status).toBe(204)
    expect(where()?.[list]).toEqual([])
    const gone = await api.send('GET', url)
    expect(gone.status).toBe(404)
    expect(gone.json.code).toBe('E_NOT_FOUND')
    expect((await api.send('DELETE', url)).status).toBe(404)
  })
})

describe('member addressing', () => {
  it('splits {target}-{port} at the last dash and compares host names case-insensitively', async () => {
    const r = await api.send('PUT', '/server/:8080/upstream/my-app-v2-9000')
    expect(r.status).toBe(201)
    expect(r.json).toMatchObject({ Target: 'my-app-v2', Port: 9000 })
    expect((await api.send('GET', '/server/:8080/upstream/MY-APP-V2-9000')).status).toBe(200)
  })

  it('a malformed {target}-{port} is 400 naming the path parameter', async () => {
    for (const key of ['noport', 'host-http', 'host-70000', '-80']) {
      const r = await api.send('GET', `/server/:8080/upstream/${key}`)
      expect(r.status).toBe(400)
      expect(r.json.problems[0].path).toBe('path.member')
    }
  })

  it('an unknown server or route is 404, and nothing is written', async () => {
    const before = api.fileText()
    expect((await api.send('PUT', '/server/:9999/upstream/a-80')).json.code).toBe('E_NOT_FOUND')
    expect((await api.send('PUT', '/server/:8080/route/nope/fallback/a-80')).status).toBe(404)
    expect(api.fileText()).toBe(before)
  })

  it('an invalid upstream body is 400 with every problem and the file unchanged', async () => {
    const before = api.fileText()
    const r = await api.send('POST', '/server/:8080/upstream/127.0.0.1-80', { body: '{"Priority": -1, "Weight": "heavy"}' })
    expect(r.status).toBe(400)
    expect(r.json.problems.map((p: { path: string }) => p.path)).toEqual(['body.Priority', 'body.Weight'])
    expect(api.fileText()).toBe(before)
  })

  it('concurrent writes are serialised: none is lost', async () => {
    const ports = Array.from({ length: 20 }, (_, i) => 9100 + i)
    const replies = await Promise.all(ports.map((p) => api.send('PUT', `/server/:8080/upstream/10.1.1.1-${p}`)))
    expect(replies.map((r) => r.status)).toEqual(ports.map(() => 201))
    const onDisk = JSON.parse(api.fileText() ?? '')
    expect(onDisk.servers[0].upstreams.map((u: { Port: number }) => u.Port).sort()).toEqual(ports)
    expect(api.control.stored().config.servers[0]?.upstreams).toHaveLength(ports.length)
  })
})
