// rewrite and headers end to end: a client on a real socket, the balancer's
// engine, and a real upstream that records the request it got.

import http2 from 'node:http2'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient, httpGet } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { snapshotWith } from '../support/snapshot.ts'
import type { RouteSpec } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { rulesOf } from './compile-rules.ts'
import { normalizeConfig } from '../../src/model/normalize.ts'
import { BalancerError } from '../../src/model/errors.ts'

let up: HttpUpstream
let edge: StartedEngine

beforeAll(async () => {
  up = await httpUpstream((req, res) => {
    res.setHeader('server', 'upstream/1.0')
    res.setHeader('x-powered-by', 'php')
    res.setHeader('x-frame-options', 'SAMEORIGIN')
    res.setHeader('content-type', 'text/plain')
    res.end(`saw ${req.url}`)
  })
  const u = [{ host: '127.0.0.1', port: up.port }]
  const route = (r: Partial<RouteSpec> & { pathPrefix: string }): RouteSpec => ({ hosts: [], upstreams: u, ...r })
  edge = await startEngine(
    snapshotWith(
      [
        {
          h2c: true,
          routes: [
            route({ pathPrefix: '/api', rules: rulesOf({ rewrite: { StripPrefix: true } }, '/api') }),
            route({ pathPrefix: '/both/', rules: rulesOf({ rewrite: { StripPrefix: true, AddPrefix: '/v2', Host: 'upstream' } }, '/both/') }),
            route({ pathPrefix: '/old', rules: rulesOf({ rewrite: { ReplacePathRegex: { Regex: '^/old/(\\w+)/(.*)$', Replacement: '/new/$2/$1' }, Host: 'internal.example' } }, '/old') }),
            route({ pathPrefix: '/evil', rules: rulesOf({ rewrite: { ReplacePathRegex: { Regex: '^/evil/(a+)+$', Replacement: '/matched' } } }, '/evil') }),
            route({
              pathPrefix: '/h',
              rules: rulesOf(
                {
                  headers: {
                    Request: { Set: { 'X-Env': 'prod' }, Add: { 'X-Tag': 'edge' }, Remove: ['Cookie'] },
                    Response: { Set: { Server: 'balancer' }, Remove: ['X-Powered-By'] },
                    FrameDeny: true,
                    ContentTypeNosniff: true,
                  },
                },
                '/h',
              ),
            }),
            route({ pathPrefix: '/plain' }),
          ],
        },
      ],
      1,
    ),
  )
})
afterAll(async () => {
  await edge?.stop()
  await up?.close()
})

function seen(url: string) {
  const r = up.requests.find((q) => q.url === url)
  if (r === undefined) throw new Error(`upstream never saw ${url}; saw ${up.requests.map((q) => q.url).join(', ')}`)
  return r
}

describe('rewrite', () => {
  it('StripPrefix removes the matched PathPrefix, keeps the query, and sends the prefix as X-Forwarded-Prefix', async () => {
    const res = await httpGet(edge.port, '/api/users/7?full=1', { host: 'shop.example.com', 'x-forwarded-prefix': '/spoofed' })
    expect(res.text).toBe('saw /users/7?full=1')
    const r = seen('/users/7?full=1')
    expect(r.headers['x-forwarded-prefix']).toBe('/api')
    expect(r.headers.host).toBe('shop.example.com')
    expect(r.headers['x-forwarded-host']).toBe('shop.example.com')
  })

  it('StripPrefix of the whole path leaves "/"', async () => {
    const res = await httpGet(edge.port, '/api?x=1')
    expect(res.text).toBe('saw /?x=1')
  })

  it('AddPrefix after StripPrefix; Host "upstream" sends the picked upstream, the client Host goes in X-Forwarded-Host', async () => {
    const res = await httpGet(edge.port, '/both/items', { host: 'www.example.org' })
    expect(res.text).toBe('saw /v2/items')
    const r = seen('/v2/items')
    expect(r.headers.host).toBe(`127.0.0.1:${up.port}`)
    expect(r.headers['x-forwarded-host']).toBe('www.example.org')
    // One Host line only.
    expect(r.rawHeaders.filter((h) => h.toLowerCase() === 'host')).toHaveLength(1)
  })

  it('ReplacePathRegex with groups; a fixed Host name, also for an absolute-form request', async () => {
    const res = await httpGet(edge.port, '/old/shop/cart/1?q=2', { host: 'a.example' })
    expect(res.text).toBe('saw /new/cart/1/shop?q=2')
    expect(seen('/new/cart/1/shop?q=2').headers.host).toBe('internal.example')
    const c = await RawClient.connect(edge.port)
    c.write('GET http://b.example/old/x/y HTTP/1.1\r\nHost: b.example\r\n\r\n')
    const raw = await c.read().finally(() => c.destroy())
    expect(raw.body.toString()).toBe('saw /new/y/x')
    const r = seen('/new/y/x')
    expect(r.headers.host).toBe('internal.example')
    expect(r.headers['x-forwarded-host']).toBe('b.example')
  })

  it('a pattern that backtracks catastrophically elsewhere runs in linear time: the request is answered', async () => {
    // (a+)+$ against 40 a's and a mismatch: 2^40 steps for a backtracking engine, a few for RE2.
    const path = `/evil/${'a'.repeat(40)}!`
    const res = await httpGet(edge.port, path, {}, { timeoutMs: 5000 })
    expect(res.text).toBe(`saw ${path}`)
    const ok = await httpGet(edge.port, '/evil/aaaa')
    expect(ok.text).toBe('saw /matched')
  })

  it('a route without rules forwards path and Host untouched', async () => {
    const res = await httpGet(edge.port, '/plain/x', { host: 'p.example' })
    expect(res.text).toBe('saw /plain/x')
    expect(seen('/plain/x').headers.host).toBe('p.example')
    expect(seen('/plain/x').headers['x-forwarded-prefix']).toBeUndefined()
  })
})

describe('headers', () => {
  it('Request Set replaces, Add adds, Remove drops; the upstream sees the edited request', async () => {
    const res = await httpGet(edge.port, '/h/1', { 'x-env': 'dev', cookie: 'session=1', 'x-keep': 'yes' })
    expect(res.status).toBe(200)
    const r = seen('/h/1')
    expect(r.headers['x-env']).toBe('prod')
    expect(r.headers['x-tag']).toBe('edge')
    expect(r.headers.cookie).toBeUndefined()
    expect(r.headers['x-keep']).toBe('yes')
  })

  it('Response Set, Remove and the FrameDeny / ContentTypeNosniff shortcuts reach the client', async () => {
    const res = await httpGet(edge.port, '/h/2')
    expect(res.text).toBe('saw /h/2')
    expect(res.headers.server).toBe('balancer')
    expect(res.headers['x-powered-by']).toBeUndefined()
    expect(res.headers['x-frame-options']).toBe('DENY')
    expect(res.headers['x-content-type-options']).toBe('nosniff')
    expect(res.rawHeaders.filter((h) => h.toLowerCase() === 'x-frame-options')).toHaveLength(1)
  })

  it('a route without rules relays the response head as received', async () => {
    const res = await httpGet(edge.port, '/plain/y')
    expect(res.headers.server).toBe('upstream/1.0')
    expect(res.headers['x-powered-by']).toBe('php')
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN')
  })
})

/** One request on a fresh h2c (prior knowledge) connection to the edge. */
function h2(headers: OutgoingHttpHeaders): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  const c = http2.connect(`http://127.0.0.1:${edge.port}`)
  c.on('error', () => {})
  return new Promise<{ status: number; headers: IncomingHttpHeaders; text: string }>((resolve, reject) => {
    const req = c.request(headers)
    const chunks: Buffer[] = []
    let head: IncomingHttpHeaders = {}
    req.on('response', (h) => (head = h))
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, text: Buffer.concat(chunks).toString() }))
    req.on('error', reject)
  }).finally(() => c.close())
}

describe('HTTP/2 streams get the same rules', () => {
  it('to an HTTP/2 (h2c) upstream: path rewritten, :authority the upstream for Host "upstream", response edits applied', async () => {
    const saw: IncomingHttpHeaders[] = []
    const h2up = http2.createServer((req, res) => {
      saw.push(req.headers)
      res.setHeader('x-powered-by', 'grpc')
      res.end(`h2 saw ${req.url}`)
    })
    await new Promise<void>((r) => h2up.listen(0, '127.0.0.1', r))
    const port = (h2up.address() as { port: number }).port
    const local = await startEngine(
      snapshotWith(
        [
          {
            h2c: true,
            routes: [
              {
                pathPrefix: '/g',
                upstreams: [{ host: '127.0.0.1', port, protocol: 'h2c' }],
                rules: rulesOf({ rewrite: { StripPrefix: true, Host: 'upstream' }, headers: { Response: { Remove: ['X-Powered-By'] }, FrameDeny: true } }, '/g'),
              },
            ],
          },
        ],
        1,
      ),
    )
    const c = http2.connect(`http://127.0.0.1:${local.port}`)
    c.on('error', () => {})
    try {
      const res = await new Promise<{ headers: IncomingHttpHeaders; text: string }>((resolve, reject) => {
        const req = c.request({ ':path': '/g/svc/Call', ':authority': 'client.example' })
        const chunks: Buffer[] = []
        let head: IncomingHttpHeaders = {}
        req.on('response', (h) => (head = h))
        req.on('data', (d: Buffer) => chunks.push(d))
        req.on('end', () => resolve({ headers: head, text: Buffer.concat(chunks).toString() }))
        req.on('error', reject)
      })
      expect(res.text).toBe('h2 saw /svc/Call')
      expect(saw[0]?.[':authority']).toBe(`127.0.0.1:${port}`)
      expect(saw[0]?.['x-forwarded-host']).toBe('client.example')
      expect(saw[0]?.['x-forwarded-prefix']).toBe('/g')
      expect(res.headers['x-powered-by']).toBeUndefined()
      expect(res.headers['x-frame-options']).toBe('DENY')
    } finally {
      c.close()
      await local.stop()
      await new Promise<void>((r) => h2up.close(() => r()))
    }
  })

  it('StripPrefix, AddPrefix and Host "upstream" on an h2c stream', async () => {
    const a = await h2({ ':path': '/api/users/9?x=1', ':authority': 'shop.example.com' })
    expect(a.text).toBe('saw /users/9?x=1')
    const r = seen('/users/9?x=1')
    expect(r.headers['x-forwarded-prefix']).toBe('/api')
    expect(r.headers.host).toBe('shop.example.com')
    const b = await h2({ ':path': '/both/h2items', ':authority': 'www.example.org' })
    expect(b.text).toBe('saw /v2/h2items')
    expect(seen('/v2/h2items').headers.host).toBe(`127.0.0.1:${up.port}`)
    expect(seen('/v2/h2items').headers['x-forwarded-host']).toBe('www.example.org')
    const c = await h2({ ':path': '/old/shop/h2', ':authority': 'a.example' })
    expect(c.text).toBe('saw /new/h2/shop')
    expect(seen('/new/h2/shop').headers.host).toBe('internal.example')
  })

  it('request and response header edits on an h2c stream', async () => {
    const res = await h2({ ':path': '/h/h2', ':authority': 'a.example', 'x-env': 'dev', cookie: 'session=1', 'x-keep': 'yes' })
    expect(res.status).toBe(200)
    const r = seen('/h/h2')
    expect(r.headers['x-env']).toBe('prod')
    expect(r.headers['x-tag']).toBe('edge')
    expect(r.headers.cookie).toBeUndefined()
    expect(r.headers['x-keep']).toBe('yes')
    expect(res.headers.server).toBe('balancer')
    expect(res.headers['x-powered-by']).toBeUndefined()
    expect(res.headers['x-frame-options']).toBe('DENY')
    expect(res.headers['x-content-type-options']).toBe('nosniff')
    const plain = await h2({ ':path': '/plain/h2', ':authority': 'p.example' })
    expect(plain.headers['x-frame-options']).toBe('SAMEORIGIN')
    expect(seen('/plain/h2').headers.host).toBe('p.example')
  })
})

function problems(groups: Record<string, unknown>): Array<{ path: string; message: string }> {
  try {
    normalizeConfig({ servers: [{ address: ':8080', upstreams: [], ...groups }] })
  } catch (err) {
    if (err instanceof BalancerError) return err.problems.map((p) => ({ path: p.path, message: p.message }))
    throw err
  }
  return []
}

describe('validation', () => {
  it('refuses a pattern RE2 cannot run in linear time (backreference, lookahead), naming the field', () => {
    const back = problems({ rewrite: { ReplacePathRegex: { Regex: '^/(\\w+)/\\1$', Replacement: '/x' } } })
    expect(back).toEqual([{ path: 'servers[0].rewrite.ReplacePathRegex.Regex', message: expect.stringContaining('cannot be run in linear time') }])
    const look = problems({ rewrite: { ReplacePathRegex: { Regex: '^/(?=admin)', Replacement: '/x' } } })
    expect(look[0]?.path).toBe('servers[0].rewrite.ReplacePathRegex.Regex')
  })

  it('refuses hop-by-hop, framing and balancer-owned fields, bad names and values, with every path', () => {
    const got = problems({
      headers: {
        Request: { Set: { Connection: 'close', Host: 'x', 'X-Forwarded-For': '1.2.3.4', 'Bad Name': 'v', 'X-Ok': 'a\r\nb' }, Remove: ['Transfer-Encoding'] },
        Response: { Set: { 'Content-Length': '1', 'Strict-Transport-Security': 'max-age=1' } },
      },
      rewrite: { AddPrefix: 'v2', Host: 'bad host' },
    })
    const paths = got.map((p) => p.path).sort()
    expect(paths).toEqual(
      [
        'servers[0].headers.Request.Set.Connection',
        'servers[0].headers.Request.Set.Host',
        'servers[0].headers.Request.Set["X-Forwarded-For"]',
        'servers[0].headers.Request.Set["Bad Name"]',
        'servers[0].headers.Request.Set["X-Ok"]',
        'servers[0].headers.Request.Remove[0]',
        'servers[0].headers.Response.Set["Content-Length"]',
        'servers[0].headers.Response.Set["Strict-Transport-Security"]',
        'servers[0].rewrite.AddPrefix',
        'servers[0].rewrite.Host',
      ].sort(),
    )
    expect(got.find((p) => p.path.endsWith('Strict-Transport-Security"]'))?.message).toContain('hsts')
  })

  it("writes the groups back whole, and a route may turn its server's group off with null", () => {
    const cfg = normalizeConfig({
      servers: [
        { address: ':8080', upstreams: [], rewrite: { stripprefix: 'true' }, headers: { framedeny: true }, routes: [{ name: 'r', filter: { PathPrefix: '/r' }, upstreams: [], rewrite: null }] },
      ],
    })
    const s = cfg.servers[0]
    expect(s?.rewrite).toEqual({ StripPrefix: true, AddPrefix: '', ReplacePathRegex: null, Host: 'client' })
    expect(s?.headers).toEqual({ Request: { Set: {}, Add: {}, Remove: [] }, Response: { Set: {}, Add: {}, Remove: [] }, FrameDeny: true, ContentTypeNosniff: false })
    expect(s?.routes[0]?.rewrite).toBeNull()
  })
})
