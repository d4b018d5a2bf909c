// access end to end: Deny/Allow on the client address (or, from a trusted
// proxy, on X-Forwarded-For), BasicAuth with hashes written by Apache's
// htpasswd and by argon2, and ForwardAuth against a real auth service.

import { execFileSync } from 'node:child_process'
import { argon2id } from 'hash-wasm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { httpGet, httpRequest, rawRequest } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { listenKey, snapshotFor, snapshotWith } from '../support/snapshot.ts'
import http2 from 'node:http2'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import type { RouteSpec } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { rulesOf } from './compile-rules.ts'
import { normalizeConfig } from '../../src/model/normalize.ts'
import { BalancerError } from '../../src/model/errors.ts'

/** `user:hash` as `htpasswd -nbB` (Debian's apache2-utils) writes it. */
function htpasswd(flag: string, user: string, password: string): string {
  return execFileSync('htpasswd', [`-nb${flag}`, user, password], { encoding: 'utf8' }).trim()
}
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

let up: HttpUpstream
let auth: HttpUpstream
let silentAuth: HttpUpstream
let edge: StartedEngine
let behind: StartedEngine
let v6: StartedEngine

beforeAll(async () => {
  up = await httpUpstream(undefined, { name: 'app' })
  auth = await httpUpstream((req, res) => {
    if (req.headers.authorization === 'Bearer good' && req.headers['x-forwarded-uri'] === '/fwd/ok?x=1' && req.headers['x-forwarded-method'] === 'GET') {
      res.setHeader('x-user', 'alice')
      res.setHeader('x-other', 'not copied')
      res.end()
      return
    }
    res.statusCode = 401
    res.setHeader('www-authenticate', 'Bearer realm="sso"')
    res.setHeader('content-type', 'text/plain')
    res.end('log in first')
  })
  silentAuth = await httpUpstream(() => {
    // never answers: the ForwardAuth timeout decides
  })
  const argon = await argon2id({ password: 'carol-pw', salt: new Uint8Array(16).fill(7), parallelism: 1, iterations: 2, memorySize: 1024, hashLength: 32, outputType: 'encoded' })
  const users = [htpasswd('B', 'alice', 'alice-pw'), htpasswd('B', 'bob', 'bob pw:with colon'), `carol:${argon}`]
  const u = [{ host: '127.0.0.1', port: up.port }]
  const route = (pathPrefix: string, groups: Record<string, unknown>): RouteSpec => ({ hosts: [], pathPrefix, upstreams: u, rules: rulesOf(groups, pathPrefix) })
  const routes = (): RouteSpec[] => [
    route('/allow-lo', { access: { Allow: ['127.0.0.0/8'] } }),
    route('/allow-ten', { access: { Allow: ['10.0.0.0/8'] } }),
    route('/deny-lo', { access: { Allow: ['127.0.0.0/8'], Deny: ['127.0.0.1'] } }),
    route('/basic', { access: { BasicAuth: users } }),
    route('/fwd/', { access: { ForwardAuth: { Address: `http://127.0.0.1:${auth.port}/verify`, ResponseHeaders: ['X-User'] } } }),
    route('/slow/', { access: { ForwardAuth: { Address: `http://127.0.0.1:${silentAuth.port}/`, Timeout: '200ms' } } }),
    route('/v6', { access: { Allow: ['::1/128'] } }),
    route('/small', { body: { MaxRequestBytes: 10 } }),
  ]
  edge = await startEngine(snapshotWith([{ h2c: true, routes: routes() }], 1))
  behind = await startEngine(snapshotFor({ routes: routes() }, 1), { trustedProxies: ['127.0.0.0/8', '10.9.0.0/16'] })
  v6 = await startEngine(snapshotWith([{ host: '::1', routes: routes() }], 1))
})
afterAll(async () => {
  for (const e of [edge, behind, v6]) await e?.stop()
  for (const s of [up, auth, silentAuth]) await s?.close()
})

describe('Allow and Deny', () => {
  it('checks the client address against IPv4 CIDRs: allowed, not allowed, denied first', async () => {
    expect((await httpGet(edge.port, '/allow-lo')).status).toBe(200)
    expect((await httpGet(edge.port, '/allow-ten')).status).toBe(403)
    expect((await httpGet(edge.port, '/deny-lo')).status).toBe(403)
    expect(up.requests.some((r) => r.url === '/allow-ten' || r.url === '/deny-lo')).toBe(false)
  })

  it('checks IPv6 clients against IPv6 CIDRs', async () => {
    expect((await httpGet(v6.portOf(listenKey('::1')), '/v6', {}, { host: '::1' })).status).toBe(200)
    expect((await httpGet(v6.portOf(listenKey('::1')), '/allow-lo', {}, { host: '::1' })).status).toBe(403)
  })

  it('believes X-Forwarded-For only from a trusted proxy, and then its last untrusted address', async () => {
    // Not trusted: the header is ignored, the connection's 127.0.0.1 is checked.
    expect((await httpGet(edge.port, '/allow-ten', { 'x-forwarded-for': '10.1.2.3' })).status).toBe(403)
    // Trusted peer: the last address that is not a trusted proxy (10.9.x is one) decides.
    expect((await httpGet(behind.port, '/allow-ten', { 'x-forwarded-for': '10.1.2.3, 10.9.0.5' })).status).toBe(200)
    expect((await httpGet(behind.port, '/allow-ten', { 'x-forwarded-for': '10.1.2.3, 192.0.2.7' })).status).toBe(403)
    expect((await httpGet(behind.port, '/allow-lo', { 'x-forwarded-for': '192.0.2.7' })).status).toBe(403)
  })
})

describe('BasicAuth', () => {
  it('asks for credentials with 401 and WWW-Authenticate, and refuses a wrong password or user', async () => {
    const none = await httpGet(edge.port, '/basic')
    expect(none.status).toBe(401)
    expect(none.headers['www-authenticate']).toMatch(/^Basic realm=/)
    expect((await httpGet(edge.port, '/basic', { authorization: basic('alice', 'wrong') })).status).toBe(401)
    expect((await httpGet(edge.port, '/basic', { authorization: basic('mallory', 'alice-pw') })).status).toBe(401)
    expect((await httpGet(edge.port, '/basic', { authorization: 'Bearer x' })).status).toBe(401)
    expect(up.requests.some((r) => r.url === '/basic')).toBe(false)
  })

  it('lets through bcrypt hashes from htpasswd -B (also a password with a colon) and argon2 hashes, again and again', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await httpGet(edge.port, '/basic', { authorization: basic('alice', 'alice-pw') })).status).toBe(200)
      expect((await httpGet(edge.port, '/basic', { authorization: basic('bob', 'bob pw:with colon') })).status).toBe(200)
      expect((await httpGet(edge.port, '/basic', { authorization: basic('carol', 'carol-pw') })).status).toBe(200)
    }
  })

  it('refuses plain, MD5, SHA and crypt htpasswd lines at validation, naming the line', () => {
    const lines = [htpasswd('p', 'p', 'x'), htpasswd('m', 'm', 'x'), htpasswd('s', 's', 'x'), htpasswd('B', 'ok', 'x')]
    let problems: Array<{ path: string; message: string }> = []
    try {
      normalizeConfig({ servers: [{ address: ':8080', upstreams: [], access: { BasicAuth: lines } }] })
    } catch (err) {
      if (!(err instanceof BalancerError)) throw err
      problems = err.problems
    }
    expect(problems.map((p) => p.path)).toEqual(['servers[0].access.BasicAuth[0]', 'servers[0].access.BasicAuth[1]', 'servers[0].access.BasicAuth[2]'])
    expect(problems[1]?.message).toContain('MD5')
    expect(problems[2]?.message).toContain('SHA')
  })
})

describe('ForwardAuth', () => {
  it('a 2xx from the auth service lets the request through with the listed fields copied; the client cannot send them itself', async () => {
    const res = await httpGet(edge.port, '/fwd/ok?x=1', { authorization: 'Bearer good', 'x-user': 'mallory' })
    expect(res.status).toBe(200)
    const seen = up.requests.find((r) => r.url === '/fwd/ok?x=1')
    expect(seen?.headers['x-user']).toBe('alice')
    expect(seen?.headers['x-other']).toBeUndefined()
    expect(seen?.rawHeaders.filter((h) => h.toLowerCase() === 'x-user')).toHaveLength(1)
  })

  it('any other answer goes to the client as the auth service gave it', async () => {
    const res = await httpGet(edge.port, '/fwd/no', { authorization: 'Bearer bad' })
    expect(res.status).toBe(401)
    expect(res.headers['www-authenticate']).toBe('Bearer realm="sso"')
    expect(res.text).toBe('log in first')
    expect(up.requests.some((r) => r.url === '/fwd/no')).toBe(false)
  })

  it('an auth service that does not answer within Timeout gives 504', async () => {
    const res = await httpGet(edge.port, '/slow/x')
    expect(res.status).toBe(504)
    expect(up.requests.some((r) => r.url === '/slow/x')).toBe(false)
  })
})

describe('body', () => {
  it('MaxRequestBytes: a Content-Length over it is answered 413 before the upstream sees the request; one within it passes', async () => {
    const big = await httpRequest(edge.port, '/small/cl', {}, { method: 'POST', body: 'x'.repeat(11) })
    expect(big.status).toBe(413)
    expect(up.requests.some((r) => r.url === '/small/cl')).toBe(false)
    const ok = await httpRequest(edge.port, '/small/ok', {}, { method: 'POST', body: 'x'.repeat(10) })
    expect(ok.status).toBe(200)
    expect(up.requests.find((r) => r.url === '/small/ok')?.body.length).toBe(10)
  })

  it('a chunked body that grows past it is cut with 413 and the connection closed; the upstream never gets the whole body', async () => {
    const res = await rawRequest(edge.port, 'POST /small/chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n', { timeoutMs: 5000 })
    expect(res.text).toMatch(/^HTTP\/1\.1 413 /)
    expect(res.closed).toBe(true)
    expect(up.requests.find((r) => r.url === '/small/chunked')?.complete ?? false).toBe(false)
  })
})

/** One request on a fresh h2c connection to the edge. */
function h2(headers: OutgoingHttpHeaders, body?: Buffer): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  const c = http2.connect(`http://127.0.0.1:${edge.port}`)
  c.on('error', () => {})
  return new Promise<{ status: number; headers: IncomingHttpHeaders; text: string }>((resolve, reject) => {
    const req = c.request(headers, { endStream: body === undefined })
    const chunks: Buffer[] = []
    let head: IncomingHttpHeaders = {}
    req.on('response', (h) => (head = h))
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, text: Buffer.concat(chunks).toString() }))
    req.on('error', reject)
    if (body !== undefined) {
      req.write(body)
      req.end()
    }
  }).finally(() => c.close())
}

describe('HTTP/2 streams get the same access and body rules', () => {
  it('Allow, BasicAuth (401 with WWW-Authenticate, then 200) and ForwardAuth on h2c streams', async () => {
    expect((await h2({ ':path': '/allow-ten', ':authority': 'a' })).status).toBe(403)
    expect((await h2({ ':path': '/allow-lo/h2', ':authority': 'a' })).status).toBe(200)
    const none = await h2({ ':path': '/basic/h2', ':authority': 'a' })
    expect(none.status).toBe(401)
    expect(none.headers['www-authenticate']).toMatch(/^Basic realm=/)
    expect((await h2({ ':path': '/basic/h2', ':authority': 'a', authorization: basic('alice', 'wrong') })).status).toBe(401)
    expect((await h2({ ':path': '/basic/h2', ':authority': 'a', authorization: basic('alice', 'alice-pw') })).status).toBe(200)
    const denied = await h2({ ':path': '/fwd/no', ':authority': 'a', authorization: 'Bearer bad' })
    expect(denied.status).toBe(401)
    expect(denied.text).toBe('log in first')
    expect(denied.headers['www-authenticate']).toBe('Bearer realm="sso"')
    const ok = await h2({ ':path': '/fwd/ok?x=1', ':authority': 'a', authorization: 'Bearer good', 'x-user': 'mallory' })
    expect(ok.status).toBe(200)
    expect(up.requests.filter((r) => r.url === '/fwd/ok?x=1').every((r) => r.headers['x-user'] === 'alice')).toBe(true)
  })

  it('MaxRequestBytes on a stream: a content-length over it or DATA past it gets 413', async () => {
    const declared = await h2({ ':path': '/small/h2cl', ':method': 'POST', ':authority': 'a', 'content-length': '11' }, Buffer.alloc(11, 0x78))
    expect(declared.status).toBe(413)
    const streamed = await h2({ ':path': '/small/h2data', ':method': 'POST', ':authority': 'a' }, Buffer.alloc(64, 0x78))
    expect(streamed.status).toBe(413)
    expect(up.requests.some((r) => r.url === '/small/h2cl' || (r.url === '/small/h2data' && r.complete))).toBe(false)
    expect((await h2({ ':path': '/small/h2ok', ':method': 'POST', ':authority': 'a' }, Buffer.alloc(10, 0x78))).status).toBe(200)
  })
})
