// Servers: create, replace, delete, and every refusal leaving the file as it was.

import { writeFileSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
afterEach(async () => {
  await api.close()
})

describe('servers', () => {
  beforeEach(async () => {
    api = await startApi()
  })

  it('POST of an existing address is 409 E_EXISTS and changes nothing', async () => {
    expect((await api.send('POST', '/server', { body: { address: ':8080' } })).status).toBe(201)
    const before = api.fileText()
    const r = await api.send('POST', '/server', { body: { address: ':8080', upstreams: [{ Target: 'x', Port: 1 }] } })
    expect(r.status).toBe(409)
    expect(r.json.code).toBe('E_EXISTS')
    expect(api.fileText()).toBe(before)
  })

  it('an address that clashes with another server is 409 E_CONFLICT', async () => {
    await api.send('POST', '/server', { body: { address: ':8080' } })
    const before = api.fileText()
    const r = await api.send('POST', '/server', { body: { address: '127.0.0.1:8080' } })
    expect(r.status).toBe(409)
    expect(r.json.code).toBe('E_CONFLICT')
    expect(r.json.problems[0].path).toBe('servers[1].address')
    expect(api.fileText()).toBe(before)
  })

  it('an invalid body is 400 E_VALIDATION naming every field, and the file is byte-identical', async () => {
    await api.send('POST', '/server', { body: { address: ':8080' } })
    const before = api.fileText()
    const r = await api.send('POST', '/server', {
      body: '{"address":":9090","upstreams":[{"Target":"127.0.0.1","Port":"http"}],"fitler":{}}',
    })
    expect(r.status).toBe(400)
    expect(r.json.code).toBe('E_VALIDATION')
    expect(r.json.problems).toEqual([
      { path: 'body.fitler', message: expect.stringContaining('unknown field') },
      { path: 'body.upstreams[0].Port', message: 'must be an integer 1-65535, got "http"' },
    ])
    expect(r.json.message).toContain('body.upstreams[0].Port')
    expect(api.fileText()).toBe(before)
  })

  it('a missing address is 400 naming body.address; an empty body too', async () => {
    for (const body of ['{"upstreams":[]}', undefined]) {
      const r = await api.send('POST', '/server', body === undefined ? {} : { body })
      expect(r.status).toBe(400)
      expect(r.json.problems[0].path).toBe('body.address')
    }
    expect(api.fileText()).toBeNull()
  })

  it('PUT creates (201 + Location) then replaces (200); the body address may be omitted', async () => {
    const created = await api.send('PUT', '/server/:8080', { body: { upstreams: [{ Target: 'a', Port: 80 }] } })
    expect(created.status).toBe(201)
    expect(created.headers.location).toBe('/server/:8080')
    const replaced = await api.send('PUT', '/server/:8080', { body: { address: ':8080', fallbacks: [{ Target: 'b', Port: 80 }] } })
    expect(replaced.status).toBe(200)
    expect(replaced.headers.location).toBeUndefined()
    expect(replaced.json.upstreams).toEqual([])
    expect(replaced.json.fallbacks).toEqual([{ Target: 'b', Port: 80, Priority: 1, Weight: 1 }])
    expect(api.control.stored().config.servers).toEqual([replaced.json])
  })

  it('PUT with a body address that differs from the URL is 400 naming body.address', async () => {
    const r = await api.send('PUT', '/server/:8080', { body: { address: ':9090' } })
    expect(r.status).toBe(400)
    expect(r.json.problems).toEqual([{ path: 'body.address', message: expect.stringContaining('":8080"') }])
    expect(api.fileText()).toBeNull()
  })

  it('DELETE is 204, then 404; GET of a deleted server is 404', async () => {
    await api.send('POST', '/server', { body: { address: ':8080' } })
    await api.send('POST', '/server', { body: { address: ':8081' } })
    expect((await api.send('DELETE', '/server/:8080')).status).toBe(204)
    expect(api.control.stored().config.servers.map((s) => s.address)).toEqual([':8081'])
    expect((await api.send('GET', '/server/:8080')).status).toBe(404)
    const again = await api.send('DELETE', '/server/%3A8080')
    expect(again.status).toBe(404)
    expect(again.json).toEqual({ code: 'E_NOT_FOUND', message: 'server ":8080" not found', problems: [] })
  })

  it('a write is one applied event with the new revision; a refused write is none', async () => {
    const seen: string[] = []
    api.control.subscribe((e) => seen.push(`${e.type} ${e.revision} ${e.causes.join()}`))
    await api.send('POST', '/server', { body: { address: ':8080' } })
    expect(seen).toEqual([`applied ${api.control.stored().revision} api`])
    await api.send('POST', '/server', { body: { address: ':8080' } })
    await api.send('PUT', '/server/:8080', { body: { address: ':8080' } })
    expect(seen).toHaveLength(1)
  })

  it('an unknown API route is 404 in the same error shape', async () => {
    const r = await api.send('GET', '/servers')
    expect(r.status).toBe(404)
    expect(r.json).toEqual({ code: 'E_NOT_FOUND', message: expect.stringContaining('GET /servers'), problems: [] })
  })

  it('GET /status reports the store, the revision and the last error', async () => {
    await api.send('POST', '/server', { body: { address: ':8080' } })
    const r = await api.send('GET', '/status')
    expect(r.status).toBe(200)
    const revision = api.control.stored().revision
    expect(r.json).toEqual({
      store: { kind: 'file', location: api.file, revision },
      lastError: null,
      snapshotVersion: 2,
      appliedRevision: revision,
      discovery: { origins: [], problems: [] },
      storeHealth: null,
    })
  })
})

describe('server setup variants', () => {
  it('GET /status shows the data plane: the engine and the workers', async () => {
    const engine = { snapshotVersion: 1, listeners: [{ key: '*:8080', port: 8080, connections: 3, draining: false }], upstreams: [], inFlight: 2 }
    const workers = [{ id: 0, pid: 42, serving: true, restarts: 0, snapshotVersion: 1, inFlight: 2, connections: 3, requests: 9 }]
    api = await startApi({ plane: { engine: () => engine, workers: () => workers } })
    const r = await api.send('GET', '/status')
    expect(r.json).toMatchObject({ store: { kind: 'file' }, lastError: null, upstreams: {}, engine, workers })
  })

  it('a body over the limit is 413 E_TOO_LARGE and changes nothing', async () => {
    api = await startApi({ bodyLimit: 1024 })
    const big = JSON.stringify({ address: ':8080', filter: { Hosts: Array.from({ length: 200 }, (_, i) => `h${i}.example.com`) } })
    expect(big.length).toBeGreaterThan(1024)
    const r = await api.send('POST', '/server', { body: big })
    expect(r.status).toBe(413)
    expect(r.json.code).toBe('E_TOO_LARGE')
    expect(api.fileText()).toBeNull()
    // Just under the limit is fine.
    expect((await api.send('POST', '/server', { body: { address: ':8080' } })).status).toBe(201)
  })

  it('the default limit is 1 MiB', async () => {
    api = await startApi()
    const r = await api.send('POST', '/server', { body: `{"address":":8080"}${' '.repeat(1024 * 1024)}` })
    expect(r.status).toBe(413)
    expect((await api.send('POST', '/server', { body: `{"address":":8080"}${' '.repeat(1000 * 1000)}` })).status).toBe(201)
  })

  it('a write to an invalid config file is refused with the file problems, the file untouched', async () => {
    const bad = '[{"address": ":8080", "upstreams": [{"Target": "127.0.0.1", "Port": 0}]}]'
    api = await startApi({ fileText: '[]' })
    // Hand-edited to something invalid after start.
    writeFileSync(api.file, bad)
    const r = await api.send('POST', '/server', { body: { address: ':9090' } })
    expect(r.status).toBe(400)
    expect(r.json.message).toContain(api.file)
    expect(r.json.problems[0].path).toBe('servers[0].upstreams[0].Port')
    expect(api.fileText()).toBe(bad)
  })
})
