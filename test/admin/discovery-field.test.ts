// The stored `discovery` rule through the API: written, read back, refused
// when malformed with the field and column named.

import { afterEach, describe, expect, it } from 'vitest'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
afterEach(async () => {
  await api.close()
})

describe('discovery field', () => {
  it('is stored on servers and routes and read back canonical', async () => {
    api = await startApi()
    expect((await api.send('POST', '/server', { body: { address: ':80', Discovery: 'Deny' } })).status).toBe(201)
    const put = await api.send('PUT', '/server/:80/route/shop', { body: { filter: { Hosts: ['shop.example.com'] }, discovery: { constraint: 'project:shop' } } })
    expect(put.status).toBe(201)
    expect(put.json.discovery).toEqual({ Constraint: 'project:shop' })
    const got = await api.send('GET', '/server/:80')
    expect(got.json.discovery).toBe('deny')
    expect(got.json.routes[0].discovery).toEqual({ Constraint: 'project:shop' })
    // Replacing the default route's filter keeps the server's rule.
    expect((await api.send('PUT', '/server/:80/filter', { body: { Hosts: ['www.example.com'] } })).status).toBe(200)
    expect((await api.send('GET', '/server/:80')).json.discovery).toBe('deny')
  })

  it('a malformed rule is 400 naming the field and the column; nothing stored', async () => {
    api = await startApi()
    const r = await api.send('POST', '/server', { body: { address: ':80', discovery: { Constraint: 'project:shop ||' } } })
    expect(r.status).toBe(400)
    expect(r.json.problems).toEqual([{ path: 'body.discovery.Constraint', message: expect.stringMatching(/^column 16: expected a term/) }])
    expect(api.fileText()).toBeNull()
  })
})
