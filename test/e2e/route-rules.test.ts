// Route rules through the real process: written with the REST API, stored,
// compiled, and applied by the engine in the main process and in worker
// processes (the compiled rules cross the worker protocol).
import { createServer, request } from 'node:http'
import type { IncomingHttpHeaders, Server } from 'node:http'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from './harness.ts'

let upstream: Server
let upstreamPort = 0
const seen = new Map<string, IncomingHttpHeaders>()

beforeAll(async () => {
  upstream = createServer((req, res) => {
    seen.set(req.url ?? '', req.headers)
    res.setHeader('x-powered-by', 'php')
    res.end(`saw ${req.url}`)
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  const a = upstream.address()
  upstreamPort = typeof a === 'object' && a !== null ? a.port : 0
})
afterAll(async () => {
  await new Promise((r) => upstream.close(r))
})

function get(port: number, path: string): Promise<{ status: number; text: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { host: 'shop.example' } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (d: Buffer) => chunks.push(d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), headers: res.headers }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('route rules from the API', () => {
  for (const workers of ['1', '2']) {
    it(`rewrite and headers written with POST /server apply (--workers ${workers}) and are written back whole`, async () => {
      const port = await freePort()
      const bal = await startBalancer(['--config', join(tempDir(), 'b.json'), '--workers', workers])
      try {
        const body = {
          address: `127.0.0.1:${port}`,
          filter: { PathPrefix: '/api' },
          upstreams: [{ Target: '127.0.0.1', Port: upstreamPort }],
          rewrite: { StripPrefix: true, ReplacePathRegex: { Regex: '^/v1/(.*)$', Replacement: '/v2/$1' }, Host: 'upstream' },
          headers: { Request: { Set: { 'X-Env': 'prod' } }, Response: { Remove: ['X-Powered-By'] }, FrameDeny: true },
        }
        const r = await fetch(`${bal.api}/server`, { method: 'POST', body: JSON.stringify(body) })
        expect(r.status).toBe(201)
        const path = `/api/v1/items?w=${workers}`
        let res = { status: 0, text: '', headers: {} as IncomingHttpHeaders }
        await until(async () => {
          res = await get(port, path).catch(() => res)
          return res.status === 200
        }, 10_000, 'the server serving')
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
      } finally {
        await bal.stop()
      }
    }, 60_000)
  }
})
