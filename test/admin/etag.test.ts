// ETags on every GET, If-Match on every write: a stale tag is 412 and writes
// nothing; the fresh tag from a GET (or from the previous write) succeeds.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
beforeEach(async () => {
  api = await startApi()
  await api.send('POST', '/server', { body: '{"address":":8080","upstreams":[{"Target":"127.0.0.1","Port":9000}]}' })
  await api.send('POST', '/server/:8080/route/app', { body: { filter: { Hosts: ['app.example.com'] } } })
})
afterEach(async () => {
  await api.close()
})

const etag = async (path: string): Promise<string> => {
  const r = await api.send('GET', path)
  expect(r.status).toBe(200)
  expect(r.headers.etag).toMatch(/^"[A-Za-z0-9_-]{16}"$/)
  return String(r.headers.etag)
}

describe('ETag / If-Match', () => {
  it('every resource has an ETag that changes only when the resource does', async () => {
    const paths = ['/', '/server/:8080', '/server/:8080/upstream/127.0.0.1-9000', '/server/:8080/filter', '/server/:8080/route', '/server/:8080/route/app', '/server/:8080/route/app/filter']
    const before = await Promise.all(paths.map(etag))
    expect(new Set(before).size).toBe(paths.length)
    // Changing the route's filter leaves the default route's upstream and filter tags alone.
    await api.send('PUT', '/server/:8080/route/app/filter', { body: { Hosts: ['other.example.com'] } })
    const after = await Promise.all(paths.map(etag))
    expect(after.map((t, i) => t === before[i])).toEqual([false, false, true, true, false, false, false])
  })

  it('412 on a stale If-Match, nothing written; then success with the fresh ETag', async () => {
    const stale = await etag('/server/:8080/upstream/127.0.0.1-9000')
    // Someone else changes the upstream.
    await api.send('PUT', '/server/:8080/upstream/127.0.0.1-9000', { body: { Weight: 5 } })
    const before = api.fileText()
    const refused = await api.send('PUT', '/server/:8080/upstream/127.0.0.1-9000', { body: { Weight: 7 }, headers: { 'if-match': stale } })
    expect(refused.status).toBe(412)
    expect(refused.json.code).toBe('E_PRECONDITION')
    expect(refused.json.problems[0].path).toBe('If-Match')
    expect(api.fileText()).toBe(before)

    const fresh = await etag('/server/:8080/upstream/127.0.0.1-9000')
    const ok = await api.send('PUT', '/server/:8080/upstream/127.0.0.1-9000', { body: { Weight: 7 }, headers: { 'if-match': fresh } })
    expect(ok.status).toBe(200)
    expect(ok.json.Weight).toBe(7)
    // The write's ETag is the new one: it chains into the next write.
    const next = await api.send('DELETE', '/server/:8080/upstream/127.0.0.1-9000', { headers: { 'if-match': String(ok.headers.etag) } })
    expect(next.status).toBe(204)
  })

  it('a nested write may be guarded by the enclosing server ETag', async () => {
    const serverTag = await etag('/server/:8080')
    const first = await api.send('PUT', '/server/:8080/fallback/10.0.0.1-80', { headers: { 'if-match': serverTag } })
    expect(first.status).toBe(201)
    // The server changed with that write: the same tag is now stale.
    const second = await api.send('PUT', '/server/:8080/fallback/10.0.0.2-80', { headers: { 'if-match': serverTag } })
    expect(second.status).toBe(412)
    const third = await api.send('PUT', '/server/:8080/fallback/10.0.0.2-80', { headers: { 'if-match': await etag('/server/:8080') } })
    expect(third.status).toBe(201)
  })

  it('POST /server is guarded by the whole configuration ETag', async () => {
    const configTag = await etag('/')
    await api.send('POST', '/server', { body: { address: ':8081' } })
    const refused = await api.send('POST', '/server', { body: { address: ':8082' }, headers: { 'if-match': configTag } })
    expect(refused.status).toBe(412)
    expect(api.control.stored().config.servers.map((s) => s.address)).toEqual([':8080', ':8081'])
    const ok = await api.send('POST', '/server', { body: { address: ':8082' }, headers: { 'if-match': await etag('/') } })
    expect(ok.status).toBe(201)
  })

  it('a list of tags matches if any does; weak tags never match', async () => {
    const tag = await etag('/server/:8080/filter')
    const weak = await api.send('PUT', '/server/:8080/filter', { body: {}, headers: { 'if-match': `W/${tag}` } })
    expect(weak.status).toBe(412)
    const listed = await api.send('PUT', '/server/:8080/filter', { body: { PathPrefix: '/x' }, headers: { 'if-match': `"nope", ${tag}` } })
    expect(listed.status).toBe(200)
  })

  it('If-Match: * requires the resource to exist', async () => {
    const missing = await api.send('PUT', '/server/:8080/upstream/10.9.9.9-80', { headers: { 'if-match': '*' } })
    expect(missing.status).toBe(412)
    expect((await api.send('GET', '/server/:8080/upstream/10.9.9.9-80')).status).toBe(404)
    const present = await api.send('PUT', '/server/:8080/upstream/127.0.0.1-9000', { body: { Weight: 2 }, headers: { 'if-match': '*' } })
    expect(present.status).toBe(200)
    expect((await api.send('PUT', '/server/:9999', { body: {}, headers: { 'if-match': '*' } })).status).toBe(412)
    expect((await api.send('DELETE', '/server/:8080/route/app', { headers: { 'if-match': '*' } })).status).toBe(204)
  })

  it('If-None-Match with the current ETag is 304', async () => {
    const tag = await etag('/server/:8080/route/app')
    const r = await api.send('GET', '/server/:8080/route/app', { headers: { 'if-none-match': tag } })
    expect(r.status).toBe(304)
    expect(r.text).toBe('')
  })
})
