// What the upstream and the client see of each other through the proxy:
// hop-by-hop fields dropped both ways (RFC 9110 §7.6.1), Host kept,
// X-Forwarded-* added, and requests routed by host, wildcard and path.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient, httpGet, parseResponses, rawRequest } from '../support/client.ts'
import { header } from '../support/responses.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { answerEachHead, httpUpstream, rawUpstream } from '../support/upstream.ts'
import type { HttpUpstream, RawUpstream } from '../support/upstream.ts'

let a: HttpUpstream
let b: HttpUpstream
let c: HttpUpstream
let d: HttpUpstream
let raw: RawUpstream
let eng: StartedEngine

const RAW_RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Resp-Hop\r\nKeep-Alive: timeout=99\r\n' + 'X-Resp-Hop: secret\r\nX-End: kept\r\n\r\nok'

beforeAll(async () => {
  a = await httpUpstream(undefined, { name: 'A' })
  b = await httpUpstream(undefined, { name: 'B' })
  c = await httpUpstream(undefined, { name: 'C' })
  d = await httpUpstream(undefined, { name: 'D' })
  raw = await rawUpstream(answerEachHead(RAW_RESPONSE))
  const to = (u: { port: number }) => [{ host: '127.0.0.1', port: u.port }]
  eng = await startEngine(
    snapshotFor(
      {
        routes: [
          { hosts: ['*.example.com'], upstreams: to(b) },
          { hosts: ['app.example.com'], upstreams: to(a) },
          { hosts: ['app.example.com'], pathPrefix: '/api', upstreams: to(c) },
          { hosts: ['secure.example.org'], schemes: ['https'], upstreams: to(d) },
          { hosts: ['raw.test'], upstreams: to(raw) },
        ],
      },
      1,
    ),
  )
})
afterAll(async () => {
  await eng?.stop()
  for (const u of [a, b, c, d, raw]) await u?.close()
})

describe('request headers', () => {
  it('drops hop-by-hop fields, keeps Host and end-to-end fields, sets X-Forwarded-*', async () => {
    const conn = await RawClient.connect(eng.port)
    conn.write(
      'GET /hop HTTP/1.1\r\nHost: app.example.com\r\nConnection: keep-alive, X-Custom\r\nKeep-Alive: timeout=5\r\n' +
        'TE: deflate\r\nTrailer: X-Foo\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Custom: secret\r\n' +
        'X-Kept: yes\r\nAuthorization: Bearer t\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n',
    )
    const res = await conn.read().finally(() => conn.destroy())
    expect(res.body.toString()).toBe('A')
    const seen = a.requests.find((q) => q.url === '/hop')
    expect(seen).toBeDefined()
    const h = seen?.headers ?? {}
    expect(h['keep-alive']).toBeUndefined()
    expect(h['x-custom']).toBeUndefined()
    expect(h['trailer']).toBeUndefined()
    expect(h['proxy-authorization']).toBeUndefined()
    // A proxy may send its own TE: trailers; the client's value must not pass.
    expect([undefined, 'trailers']).toContain(h['te'])
    expect(String(h['connection'] ?? '').toLowerCase()).not.toContain('x-custom')
    expect(h['host']).toBe('app.example.com')
    expect(h['x-kept']).toBe('yes')
    expect(h['authorization']).toBe('Bearer t')
    // The client is not a trusted proxy (none is by default): its own X-Forwarded-For is replaced.
    expect(h['x-forwarded-for']).toBe('127.0.0.1')
    expect(h['x-forwarded-proto']).toBe('http')
    expect(h['x-forwarded-host']).toBe('app.example.com')
  })

  it('X-Forwarded-For is created when the client sent none; Host keeps its port', async () => {
    const r = await httpGet(eng.port, '/xff', { host: 'app.example.com:8080' })
    expect(r.text).toBe('A')
    const h = a.requests.find((q) => q.url === '/xff')?.headers ?? {}
    expect(h['x-forwarded-for']).toBe('127.0.0.1')
    expect(h['host']).toBe('app.example.com:8080')
  })
})

describe('response headers', () => {
  it('drops hop-by-hop fields of the response, keeps the rest', async () => {
    const r = await rawRequest(eng.port, 'GET / HTTP/1.1\r\nHost: raw.test\r\nConnection: close\r\n\r\n')
    const [res] = parseResponses(r.buf).responses
    expect(res?.status).toBe(200)
    expect(res?.body.toString()).toBe('ok')
    if (res === undefined) return
    expect(header(res, 'x-resp-hop')).toBeUndefined()
    expect(header(res, 'keep-alive') ?? '').not.toContain('timeout=99')
    expect((header(res, 'connection') ?? '').toLowerCase()).not.toContain('x-resp-hop')
    expect(header(res, 'x-end')).toBe('kept')
  })
})

describe('routing', () => {
  it.each([
    ['app.example.com', '/', 'A'],
    ['APP.Example.COM', '/', 'A'],
    ['app.example.com:8080', '/', 'A'],
    ['foo.example.com', '/', 'B'],
    ['a.b.example.com', '/api', 'B'],
    ['Foo.Example.Com:80', '/', 'B'],
    ['app.example.com', '/api', 'C'],
    ['app.example.com', '/api/users?x=1', 'C'],
    ['app.example.com', '/apiary', 'C'],
    ['app.example.com', '/ap', 'A'],
  ])('Host %s path %s -> %s', async (host, path, want) => {
    const r = await httpGet(eng.port, path, { host })
    expect(r.status).toBe(200)
    expect(r.text).toBe(want)
  })

  it.each([
    ['an unknown host', 'other.org'],
    ['the apex of a wildcard', 'example.com'],
    ['a route that only takes https', 'secure.example.org'],
  ])('%s: 404, and no upstream is asked', async (_name, host) => {
    const before = [a, b, c, d].map((u) => u.requests.length)
    const r = await httpGet(eng.port, '/nowhere', { host })
    expect(r.status).toBe(404)
    expect([a, b, c, d].map((u) => u.requests.length)).toEqual(before)
  })

  it('a 404 keeps the keep-alive connection usable', async () => {
    const r = await rawRequest(eng.port, 'GET / HTTP/1.1\r\nHost: other.org\r\n\r\nGET /again HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n')
    expect(parseResponses(r.buf).responses.map((x) => x.status)).toEqual([404, 200])
  })

  // RFC 9112 §3.2.2: the target's authority wins over the Host field, and the
  // forwarded Host is generated from it.
  it.each([
    ['http://foo.example.com/x', 'app.example.com', 'B', 'foo.example.com', '/x'],
    ['http://app.example.com/api/v', 'other.org', 'C', 'app.example.com', '/api/v'],
  ])('absolute-form %s (Host: %s) routes by its own host', async (target, hostField, want, wantHost, wantPath) => {
    const r = await rawRequest(eng.port, `GET ${target} HTTP/1.1\r\nHost: ${hostField}\r\nConnection: close\r\n\r\n`)
    const [res] = parseResponses(r.buf).responses
    expect(res?.status).toBe(200)
    expect(res?.body.toString()).toBe(want)
    const up = want === 'B' ? b : c
    const seen = up.requests.find((q) => q.url.endsWith(wantPath))
    expect(seen?.headers['host']).toBe(wantHost)
    // Origin servers must accept either form (RFC 9112 §3.2.2); both are correct to forward.
    expect([wantPath, target]).toContain(seen?.url)
  })
})
