// The admin API answers only Host names it is reached by: a browser page whose
// name an attacker re-pointed at 127.0.0.1 (DNS rebinding) sends its own name
// in Host and Origin, and is refused before anything is read or written.

import { afterEach, describe, expect, it } from 'vitest'
import { listRoutes } from '../../src/admin/server.ts'
import { hostPart } from '../../src/admin/host-check.ts'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
afterEach(async () => {
  await api.close()
})

const STORED = `{
  // hand-written, with a comment: the refused requests must leave these bytes alone
  "servers": [{ "address": ":8080", "upstreams": [{ "Target": "127.0.0.1", "Port": 8081 }] }]
}
`
const TOKEN = 's3cret-token-for-tests-0123456789'

function rebinding(port: number): Record<string, string> {
  return { host: `evil.test:${port}`, origin: `http://evil.test:${port}` }
}

describe('DNS rebinding', () => {
  it("GET /, POST /server and /docs with an attacker's Host and Origin: 421 E_MISDIRECTED, file byte-identical", async () => {
    api = await startApi({ fileText: STORED })
    const h = rebinding(api.port)
    const get = await api.send('GET', '/', { headers: h })
    expect(get.status).toBe(421)
    expect(get.json.code).toBe('E_MISDIRECTED')
    expect(get.text).not.toContain('8081')
    const post = await api.send('POST', '/server', { body: { address: ':9000' }, headers: h })
    expect(post.status).toBe(421)
    expect(post.json.code).toBe('E_MISDIRECTED')
    for (const path of ['/docs', '/docs/json', '/docs/yaml', '/docs/static/index.html', '/status', '/no/such/route']) {
      const r = await api.send('GET', path, { headers: h })
      expect([path, r.status, r.json?.code]).toEqual([path, 421, 'E_MISDIRECTED'])
    }
    // Without Origin too (a rebound page's plain navigation sends none).
    expect((await api.send('DELETE', '/server/:8080', { headers: { host: `evil.test:${api.port}` } })).status).toBe(421)
    expect(api.fileText()).toBe(STORED)
    expect(api.control.stored().config.servers).toHaveLength(1)
  })

  it('is refused before the token: the right token does not let a rebound page in', async () => {
    api = await startApi({ token: TOKEN, fileText: STORED })
    const r = await api.send('POST', '/server', { body: { address: ':9000' }, headers: { ...rebinding(api.port), authorization: `Bearer ${TOKEN}` } })
    expect(r.status).toBe(421)
    expect(r.json.code).toBe('E_MISDIRECTED')
    expect(api.fileText()).toBe(STORED)
  })

  it("every route the API registers refuses the attacker's Host, whatever the method", async () => {
    api = await startApi({ fileText: STORED })
    const routes = listRoutes(api.app)
    expect(routes.length).toBeGreaterThan(30)
    for (const { method, url } of routes) {
      const path = url
        .replace(/:address/g, ':8080')
        .replace(/:name/g, 'default')
        .replace(/:member/g, '127.0.0.1-8081')
        .replace(/\*$/, 'x')
        .replace(/:[a-z]+/gi, 'x')
      const r = await api.send(method, path, { headers: { host: 'attacker.example' }, ...(method === 'GET' || method === 'HEAD' ? {} : { body: '{}' }) })
      expect([method, url, r.status]).toEqual([method, url, 421])
    }
    expect(api.fileText()).toBe(STORED)
  })

  it('names that only look local are refused: subdomains of localhost, trailing dots, malformed Hosts', async () => {
    api = await startApi()
    for (const host of ['localhost.', 'evil.localhost', 'localhost.evil.test', '127.0.0.1.nip.io', 'a b', '[fe80::1%25eth0]', 'user@localhost']) {
      const r = await api.send('GET', '/', { headers: { host } })
      expect([host, r.status]).toEqual([host, 421])
    }
  })
})

describe('Hosts the API is reached by', () => {
  it('localhost, 127.0.0.1 and [::1], with any port or none, and any IP literal, work as curl sends them', async () => {
    api = await startApi()
    for (const host of [`localhost:${api.port}`, 'LOCALHOST', `127.0.0.1:${api.port}`, '127.0.0.1', `[::1]:${api.port}`, '[::1]', '10.0.0.5:9123', '[2001:db8::5]:8000', '0.0.0.0']) {
      const r = await api.send('GET', '/', { headers: { host } })
      expect([host, r.status]).toEqual([host, 200])
    }
    const w = await api.send('POST', '/server', { body: { address: ':8080' }, headers: { host: `localhost:${api.port}` } })
    expect(w.status).toBe(201)
  })

  it('a name given with --api-host works (any case, any port); other names still do not', async () => {
    api = await startApi({ hostNames: ['balancer.internal.example'] })
    expect((await api.send('GET', '/', { headers: { host: 'balancer.internal.example:9123' } })).status).toBe(200)
    expect((await api.send('GET', '/docs/json', { headers: { host: 'Balancer.Internal.Example' } })).status).toBe(200)
    const w = await api.send('POST', '/server', { body: { address: ':8080' }, headers: { host: 'balancer.internal.example', origin: 'http://balancer.internal.example' } })
    expect(w.status).toBe(201)
    expect((await api.send('GET', '/', { headers: { host: 'other.internal.example' } })).status).toBe(421)
  })

  it('an HTTP/1.0 request with no Host header (old tools; never a browser) is served', async () => {
    api = await startApi()
    const { connect } = await import('node:net')
    const head = await new Promise<string>((resolve, reject) => {
      const sock = connect(api.port, '127.0.0.1', () => sock.end('GET / HTTP/1.0\r\n\r\n'))
      let got = ''
      sock.setEncoding('latin1')
      sock.on('data', (c: string) => (got += c))
      sock.on('end', () => resolve(got))
      sock.on('error', reject)
    })
    expect(head).toMatch(/^HTTP\/1\.1 200 /)
  })
})

describe('the --metrics listener', () => {
  it('refuses a rebinding Host with 421 like the API, and serves localhost', async () => {
    const { startMetricsServer } = await import('../../src/observability/metrics-server.ts')
    const { hostCheck } = await import('../../src/admin/host-check.ts')
    const hosts = hostCheck([])
    const m = await startMetricsServer(
      '127.0.0.1',
      0,
      async () => 'balancer_up 1\n',
      () => {},
      (h) => hosts.refusal(h),
    )
    api = await startApi()
    try {
      const { request } = await import('node:http')
      const get = (host: string): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port: m.port, path: '/metrics', headers: { host }, agent: false }, (res) => {
            let body = ''
            res.setEncoding('utf8')
            res.on('data', (c: string) => (body += c))
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
          })
          req.on('error', reject)
          req.end()
        })
      const evil = await get(`evil.test:${m.port}`)
      expect(evil.status).toBe(421)
      expect(evil.body).not.toContain('balancer_up')
      expect(await get(`localhost:${m.port}`)).toEqual({ status: 200, body: 'balancer_up 1\n' })
    } finally {
      await new Promise((r) => m.server.close(r))
    }
  })
})

describe('hostPart', () => {
  it('takes the host of host[:port], lower-cased, brackets kept', () => {
    expect(hostPart('LocalHost:9123')).toBe('localhost')
    expect(hostPart('[::1]:80')).toBe('[::1]')
    expect(hostPart('example.com')).toBe('example.com')
    expect(hostPart('example.com:')).toBeNull()
    expect(hostPart('a:b:c')).toBeNull()
    expect(hostPart('')).toBeNull()
  })
})
