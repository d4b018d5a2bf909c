// Token and cross-origin checks.

import { afterEach, describe, expect, it } from 'vitest'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
afterEach(async () => {
  await api.close()
})

const TOKEN = 's3cret-token-for-tests-0123456789'

describe('bearer token', () => {
  it('without a token or with a wrong one: 401 E_UNAUTHORIZED with WWW-Authenticate, nothing written', async () => {
    api = await startApi({ token: TOKEN })
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: `Basic ${TOKEN}` }, { authorization: `Bearer ${TOKEN}x` }]) {
      const r = await api.send('POST', '/server', { body: { address: ':8080' }, headers })
      expect(r.status).toBe(401)
      expect(r.json.code).toBe('E_UNAUTHORIZED')
      expect(r.headers['www-authenticate']).toMatch(/^Bearer/)
    }
    expect((await api.send('GET', '/')).status).toBe(401)
    expect((await api.send('GET', '/status')).status).toBe(401)
    expect((await api.send('GET', '/no/such/route')).status).toBe(401)
    expect(api.fileText()).toBeNull()
  })

  it('with the token: allowed (scheme case-insensitive)', async () => {
    api = await startApi({ token: TOKEN })
    const r = await api.send('POST', '/server', { body: { address: ':8080' }, headers: { authorization: `Bearer ${TOKEN}` } })
    expect(r.status).toBe(201)
    expect((await api.send('GET', '/server/:8080', { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200)
  })

  it('the documentation pages need no token (a browser cannot send one on page load)', async () => {
    api = await startApi({ token: TOKEN })
    expect((await api.send('GET', '/docs')).status).toBe(200)
    expect((await api.send('GET', '/docs/json')).status).toBe(200)
    // ...but nothing else under a look-alike path.
    expect((await api.send('GET', '/docsx')).status).toBe(401)
  })

  it('no token configured: no Authorization needed', async () => {
    api = await startApi()
    expect((await api.send('GET', '/')).status).toBe(200)
  })
})

describe('cross-origin requests', () => {
  it('an Origin other than the Host is 403 E_CROSS_ORIGIN, nothing written, no CORS headers', async () => {
    api = await startApi()
    for (const origin of ['http://evil.example', 'null', `http://127.0.0.1:${1}`, 'http://localhost:9123']) {
      const r = await api.send('POST', '/server', { body: { address: ':8080' }, headers: { origin } })
      expect(r.status).toBe(403)
      expect(r.json.code).toBe('E_CROSS_ORIGIN')
      expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-'))).toEqual([])
    }
    expect(api.fileText()).toBeNull()
    // A CORS preflight gets the same refusal.
    const pre = await api.send('OPTIONS', '/server', { headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } })
    expect(pre.status).toBe(403)
    expect(Object.keys(pre.headers).filter((h) => h.startsWith('access-control-'))).toEqual([])
  })

  it('Sec-Fetch-Site cross-site or same-site is 403 even without Origin', async () => {
    api = await startApi()
    for (const site of ['cross-site', 'same-site']) {
      const r = await api.send('GET', '/', { headers: { 'sec-fetch-site': site } })
      expect(r.status).toBe(403)
      expect(r.json.code).toBe('E_CROSS_ORIGIN')
    }
  })

  it('same-origin browser requests (Swagger UI) are allowed', async () => {
    api = await startApi()
    const origin = `http://127.0.0.1:${api.port}`
    const r = await api.send('POST', '/server', { body: { address: ':8080' }, headers: { origin, 'sec-fetch-site': 'same-origin' } })
    expect(r.status).toBe(201)
    expect((await api.send('GET', '/', { headers: { 'sec-fetch-site': 'none' } })).status).toBe(200)
  })

  it('cross-origin is refused before the token is even looked at', async () => {
    api = await startApi({ token: TOKEN })
    const r = await api.send('GET', '/', { headers: { origin: 'http://evil.example', authorization: `Bearer ${TOKEN}` } })
    expect(r.status).toBe(403)
  })
})
