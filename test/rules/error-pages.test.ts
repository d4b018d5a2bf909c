// errors end to end: a route's statuses answered with its page, from an
// upstream that renders pages or from a static file, whether the upstream
// sent the status or the balancer did; the status stays; HTTP/2 alike.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import type { IncomingHttpHeaders } from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../e2e/harness.ts'
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

let app: HttpUpstream
let pages: HttpUpstream
let edge: StartedEngine
const dir = mkdtempSync(join(tmpdir(), 'balancer-pages-'))

beforeAll(async () => {
  app = await httpUpstream((req, res) => {
    res.statusCode = req.url?.endsWith('/missing') ? 404 : 200
    res.setHeader('content-type', 'text/plain')
    res.end(`app says ${res.statusCode}`)
  })
  pages = await httpUpstream((req, res) => {
    res.setHeader('content-type', 'text/html; charset=utf-8')
    res.end(`<h1>page for ${req.url}</h1>`)
  })
  writeFileSync(join(dir, '404.html'), '<h1>static 404</h1>')
  const dead = await freePort()
  const u = [{ host: '127.0.0.1', port: app.port }]
  const route = (pathPrefix: string, upstreams: RouteSpec['upstreams'], errors: Record<string, unknown>): RouteSpec => ({ hosts: [], pathPrefix, upstreams, rules: rulesOf({ errors }, pathPrefix) })
  edge = await startEngine(
    snapshotWith(
      [
        {
          h2c: true,
          routes: [
            route('/svc', u, { Page: `http://127.0.0.1:${pages.port}/errors/{status}.html` }),
            route('/down', [{ host: '127.0.0.1', port: dead }], { Page: `http://127.0.0.1:${pages.port}/errors/{status}.html` }),
            route('/file', u, { Page: `${pathToFileURL(dir).href}/{status}.html` }),
            route('/nopage', u, { Page: `${pathToFileURL(dir).href}/none-{status}.html` }),
          ],
        },
      ],
      1,
    ),
  )
})
afterAll(async () => {
  await edge?.stop()
  for (const s of [app, pages]) await s?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('errors', () => {
  it("an upstream's 404 is answered with the page, status kept; other answers pass untouched", async () => {
    const res = await httpGet(edge.port, '/svc/missing')
    expect(res.status).toBe(404)
    expect(res.text).toBe('<h1>page for /errors/404.html</h1>')
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8')
    const ok = await httpGet(edge.port, '/svc/fine')
    expect(ok.status).toBe(200)
    expect(ok.text).toBe('app says 200')
    // The connection is kept for the next request.
    expect((await httpGet(edge.port, '/svc/missing')).text).toContain('page for')
    // HEAD: the page's length is said, no body sent; the connection stays in step.
    const c = await RawClient.connect(edge.port)
    try {
      c.write('HEAD /svc/missing HTTP/1.1\r\nHost: a\r\n\r\nGET /svc/fine HTTP/1.1\r\nHost: a\r\n\r\n')
      const head = await c.read({ head: true })
      expect(head.status).toBe(404)
      expect(Number(head.headers.find(([n]) => n === 'content-length')?.[1])).toBe('<h1>page for /errors/404.html</h1>'.length)
      const next = await c.read()
      expect(next.status).toBe(200)
      expect(next.body.toString()).toBe('app says 200')
    } finally {
      c.destroy()
    }
  })

  it("the balancer's own 502/503 (no upstream answers) gets the page too", async () => {
    const res = await httpGet(edge.port, '/down/x')
    expect([502, 503]).toContain(res.status)
    expect(res.text).toBe(`<h1>page for /errors/${res.status}.html</h1>`)
  })

  it('a static file page, its type from its extension; a page that cannot be read leaves the plain answer', async () => {
    const res = await httpGet(edge.port, '/file/missing')
    expect(res.status).toBe(404)
    expect(res.text).toBe('<h1>static 404</h1>')
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8')
    const plain = await httpGet(edge.port, '/nopage/missing')
    expect(plain.status).toBe(404)
    expect(plain.text).toBe('404 Not Found\n')
  })

  it('HTTP/2 streams get the page alike', async () => {
    const c = http2.connect(`http://127.0.0.1:${edge.port}`)
    c.on('error', () => {})
    try {
      const r = await new Promise<{ status: number; headers: IncomingHttpHeaders; text: string }>((resolve, reject) => {
        const req = c.request({ ':path': '/svc/missing', ':authority': 'a' })
        const chunks: Buffer[] = []
        let head: IncomingHttpHeaders = {}
        req.on('response', (h) => (head = h))
        req.on('data', (d: Buffer) => chunks.push(d))
        req.on('end', () => resolve({ status: Number(head[':status']), headers: head, text: Buffer.concat(chunks).toString() }))
        req.on('error', reject)
      })
      expect(r.status).toBe(404)
      expect(r.text).toBe('<h1>page for /errors/404.html</h1>')
    } finally {
      c.close()
    }
  })

  it('refuses a page that is neither http:// nor file:///, and statuses outside 400-599, with their paths', () => {
    let paths: string[] = []
    try {
      normalizeConfig({ servers: [{ address: ':8080', upstreams: [], errors: { Page: 'ftp://x/{status}', Statuses: [404, 302] } }] })
    } catch (err) {
      if (!(err instanceof BalancerError)) throw err
      paths = err.problems.map((p) => p.path)
    }
    expect(paths.sort()).toEqual(['servers[0].errors.Page', 'servers[0].errors.Statuses[1]'])
    const ok = normalizeConfig({ servers: [{ address: ':8080', upstreams: [], errors: { Page: 'http://pages:8080/{status}.html', Statuses: '503, 502' } }] })
    expect(ok.servers[0]?.errors).toEqual({ Page: 'http://pages:8080/{status}.html', Statuses: [502, 503], Timeout: '2s' })
  })
})
