// Route rules through the real process: written with the REST API, stored,
// compiled, and applied by the engine in the main process and in worker
// processes (the compiled rules cross the worker protocol).
import { execFileSync } from 'node:child_process'
import { createServer, request } from 'node:http'
import type { IncomingHttpHeaders, Server } from 'node:http'
import { join } from 'node:path'
import { brotliDecompressSync } from 'node:zlib'
import { DEFAULT_TYPES } from '../../src/model/compress.ts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from './harness.ts'

let upstream: Server
let upstreamPort = 0
const seen = new Map<string, IncomingHttpHeaders>()

beforeAll(async () => {
  upstream = createServer((req, res) => {
    seen.set(req.url ?? '', req.headers)
    res.setHeader('x-powered-by', 'php')
    res.setHeader('content-type', 'text/plain')
    res.end(`saw ${req.url}`)
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  const a = upstream.address()
  upstreamPort = typeof a === 'object' && a !== null ? a.port : 0
})
afterAll(async () => {
  await new Promise((r) => upstream.close(r))
})

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET', body = ''): Promise<{ status: number; text: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false, headers: { host: 'shop.example', ...headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (d: Buffer) => chunks.push(d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), headers: res.headers }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

function getRaw(port: number, path: string, headers: Record<string, string>): Promise<{ headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { host: 'shop.example', ...headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (d: Buffer) => chunks.push(d))
      res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('route rules from the API', () => {
  // rewrite, headers and compress on the server, access and body on a route added by PUT.
  {
    const workers = '2'
    it(`rewrite, headers and compress (POST /server), access and body (PUT, a route) apply with --workers ${workers}; groups are written back whole`, async () => {
      const port = await freePort()
      const bal = await startBalancer(['--config', join(tempDir(), 'b.json'), '--workers', workers])
      try {
        const body = {
          address: `127.0.0.1:${port}`,
          filter: { PathPrefix: '/api' },
          upstreams: [{ Target: '127.0.0.1', Port: upstreamPort }],
          rewrite: { StripPrefix: true, ReplacePathRegex: { Regex: '^/v1/(.*)$', Replacement: '/v2/$1' }, Host: 'upstream' },
          headers: { Request: { Set: { 'X-Env': 'prod' } }, Response: { Remove: ['X-Powered-By'] }, FrameDeny: true },
          compress: { Encodings: 'br, gzip', MinBytes: '0' },
        }
        const r = await fetch(`${bal.api}/server`, { method: 'POST', body: JSON.stringify(body) })
        expect(r.status).toBe(201)
        const path = `/api/v1/items?w=${workers}`
        let res = { status: 0, text: '', headers: {} as IncomingHttpHeaders }
        await until(
          async () => {
            res = await get(port, path).catch(() => res)
            return res.status === 200
          },
          10_000,
          'the server serving',
        )
        expect(res.text).toBe(`saw /v2/items?w=${workers}`)
        expect(res.headers['x-powered-by']).toBeUndefined()
        expect(res.headers['x-frame-options']).toBe('DENY')
        const h = seen.get(`/v2/items?w=${workers}`) ?? {}
        expect(h.host).toBe(`127.0.0.1:${upstreamPort}`)
        expect(h['x-forwarded-host']).toBe('shop.example')
        expect(h['x-forwarded-prefix']).toBe('/api')
        expect(h['x-env']).toBe('prod')
        const stored = (await (await fetch(`${bal.api}/server/127.0.0.1:${port}`)).json()) as Record<string, unknown>
        expect(stored.rewrite).toEqual({ StripPrefix: true, AddPrefix: '', ReplacePathRegex: { Regex: '^/v1/(.*)$', Replacement: '/v2/$1' }, Host: 'upstream' })
        expect(stored.headers).toMatchObject({ Response: { Set: {}, Add: {}, Remove: ['x-powered-by'] }, FrameDeny: true, ContentTypeNosniff: false })
        expect(stored.compress).toEqual({ Encodings: ['br', 'gzip'], Types: [...DEFAULT_TYPES], MinBytes: 0 })
        // compress: the client's Accept-Encoding picks br; the body decodes to the upstream's.
        const zipped = await getRaw(port, path, { 'accept-encoding': 'gzip;q=0.5, br' })
        expect(zipped.headers['content-encoding']).toBe('br')
        expect(zipped.headers.vary).toBe('accept-encoding')
        expect(brotliDecompressSync(zipped.body).toString()).toBe(`saw /v2/items?w=${workers}`)

        // access and body on a second route of the same address: BasicAuth is checked on the hash thread of each worker.
        const hash = execFileSync('htpasswd', ['-nbB', 'alice', 'alice-pw'], { encoding: 'utf8' }).trim()
        const route = { name: 'private', filter: { PathPrefix: '/private' }, upstreams: [{ Target: '127.0.0.1', Port: upstreamPort }], access: { BasicAuth: [hash] }, body: { MaxRequestBytes: 4 } }
        const put = await fetch(`${bal.api}/server/127.0.0.1:${port}`, { method: 'PUT', body: JSON.stringify({ ...stored, routes: [route] }) })
        expect(put.status).toBe(200)
        const auth = { authorization: `Basic ${Buffer.from('alice:alice-pw').toString('base64')}` }
        await until(async () => (await get(port, '/private/x').catch(() => res)).status === 401, 10_000, 'the private route asking for credentials')
        for (let i = 0; i < 4; i++) expect((await get(port, `/private/ok${i}`, auth)).status).toBe(200)
        expect((await get(port, '/private/big', auth, 'POST', 'too long')).status).toBe(413)
        expect(seen.has('/private/big')).toBe(false)
      } finally {
        await bal.stop()
      }
    }, 60_000)
  }
})
