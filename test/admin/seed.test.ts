// The seed README's steps 1 and 2, byte for byte, plus the ways an address
// can be written in a URL.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { serializeConfig } from '../../src/model/canonical.ts'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
beforeEach(async () => {
  api = await startApi()
})
afterEach(async () => {
  await api.close()
})

const SEED_BODY = '{"address":":8080","upstreams":[{"Target":"www.google.com","Port":80}]}'
const SEED_SERVER = {
  address: ':8080',
  filter: { Hosts: [], Schemes: [], PathPrefix: '' },
  upstreams: [{ Target: 'www.google.com', Port: 80, Priority: 1, Weight: 1 }],
  fallbacks: [],
  routes: [],
}

describe('the seed README steps', () => {
  it('1. curl -X POST localhost:9123/server --data ... (form content type) creates the server', async () => {
    // Exactly what curl sends for --data: form-urlencoded content type, raw JSON body.
    const r = await api.send('POST', '/server', {
      body: SEED_BODY,
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: '*/*', 'user-agent': 'curl/8.5.0' },
    })
    expect(r.status).toBe(201)
    expect(r.headers.location).toBe('/server/:8080')
    expect(r.headers.etag).toMatch(/^"[A-Za-z0-9_-]{16}"$/)
    expect(r.json).toEqual(SEED_SERVER)
    // Durable and canonical on disk.
    expect(api.fileText()).toBe(serializeConfig({ servers: [SEED_SERVER] }))
    expect(api.control.stored().config.servers).toEqual([SEED_SERVER])
  })

  it('2. curl localhost:9123/server/:8080 returns it', async () => {
    await api.send('POST', '/server', { body: SEED_BODY })
    const r = await api.send('GET', '/server/:8080')
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toMatch(/^application\/json/)
    expect(r.json).toEqual(SEED_SERVER)
    const created = await api.send('GET', '/server/:8080')
    expect(created.headers.etag).toBe(r.headers.etag)
  })

  it('GET / returns the whole configuration in canonical form with the revision as ETag', async () => {
    const empty = await api.send('GET', '/')
    expect(empty.status).toBe(200)
    expect(empty.text).toBe('{\n  "servers": []\n}\n')
    await api.send('POST', '/server', { body: SEED_BODY })
    const r = await api.send('GET', '/')
    expect(r.text).toBe(serializeConfig({ servers: [SEED_SERVER] }))
    expect(r.headers.etag).toBe(`"${api.control.stored().revision}"`)
    const again = await api.send('GET', '/', { headers: { 'if-none-match': String(r.headers.etag) } })
    expect(again.status).toBe(304)
  })
})

describe('content types', () => {
  it.each([
    ['application/json', '{"address":":8081"}'],
    ['application/json; charset=utf-8', '{"address":":8081"} // trailing comment'],
    ['text/plain', '{"address":":8081",}'],
    ['application/x-www-form-urlencoded', '/* note */ {"address":":8081"}'],
  ])('%s is read as JSON text', async (type, body) => {
    const r = await api.send('POST', '/server', { body, headers: { 'content-type': type } })
    expect(r.status).toBe(201)
    expect(r.json.address).toBe(':8081')
  })

  it('a body without a content type is read as JSON', async () => {
    const r = await api.send('PUT', '/server/:8082', { body: '{"upstreams":[{"target":"127.0.0.1","port":80}]}', headers: { 'content-type': '' } })
    expect(r.status).toBe(201)
    expect(r.json.upstreams[0]).toEqual({ Target: '127.0.0.1', Port: 80, Priority: 1, Weight: 1 })
  })

  it('other content types get 415 and change nothing', async () => {
    const r = await api.send('POST', '/server', { body: '<server/>', headers: { 'content-type': 'application/xml' } })
    expect(r.status).toBe(415)
    expect(r.json.code).toBe('E_UNSUPPORTED_MEDIA')
    expect(api.fileText()).toBeNull()
  })

  it('bad JSON is 400 E_BAD_JSON with the position', async () => {
    const r = await api.send('POST', '/server', { body: '{"address": ":8080",' })
    expect(r.status).toBe(400)
    expect(r.json.code).toBe('E_BAD_JSON')
    expect(r.json.message).toMatch(/\b1:21\b/)
  })
})

describe('addresses in the URL', () => {
  beforeEach(async () => {
    for (const address of [':8080', '127.0.0.1:9090', '[::1]:7070']) {
      expect((await api.send('POST', '/server', { body: { address } })).status).toBe(201)
    }
  })

  it.each([
    ['/server/:8080', ':8080'],
    ['/server/%3A8080', ':8080'],
    ['/server/%3a8080', ':8080'],
    ['/server/127.0.0.1:9090', '127.0.0.1:9090'],
    ['/server/127.0.0.1%3A9090', '127.0.0.1:9090'],
    ['/server/[::1]:7070', '[::1]:7070'],
    ['/server/%5B%3A%3A1%5D%3A7070', '[::1]:7070'],
  ])('%s names %s', async (path, address) => {
    const r = await api.send('GET', path)
    expect(r.status).toBe(200)
    expect(r.json.address).toBe(address)
  })

  it('matches the address exactly as stored, not by what it binds', async () => {
    for (const path of ['/server/0.0.0.0:8080', '/server/8080', '/server/127.0.0.1:8080']) {
      const r = await api.send('GET', path)
      expect(r.status).toBe(404)
      expect(r.json.code).toBe('E_NOT_FOUND')
    }
  })

  it('Location encodes what a path segment cannot hold but keeps the colon', async () => {
    const r = await api.send('PUT', '/server/%5B%3A%3A1%5D%3A6060', { body: {} })
    expect(r.status).toBe(201)
    expect(r.headers.location).toBe('/server/%5B::1%5D:6060')
    expect((await api.send('GET', String(r.headers.location))).json.address).toBe('[::1]:6060')
  })
})
