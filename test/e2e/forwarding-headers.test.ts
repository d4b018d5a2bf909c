// --trusted-proxies through the real process, with the engine in the main
// process and in worker processes (the option crosses the worker protocol).
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
    res.end('ok')
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  const a = upstream.address()
  upstreamPort = typeof a === 'object' && a !== null ? a.port : 0
})
afterAll(async () => {
  await new Promise((r) => upstream.close(r))
})

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { 'x-forwarded-for': '6.6.6.6', 'x-real-ip': '6.6.6.6', forwarded: 'for=6.6.6.6;proto=https' } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

async function run(args: string[], path: string): Promise<IncomingHttpHeaders> {
  const port = await freePort()
  const bal = await startBalancer(['--config', join(tempDir(), 'b.json'), ...args])
  try {
    const r = await fetch(`${bal.api}/server`, { method: 'POST', body: JSON.stringify({ address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: upstreamPort }] }) })
    expect(r.status).toBe(201)
    await until(async () => (await get(port, path).catch(() => 0)) === 200, 5000, 'the server serving')
    return seen.get(path) ?? {}
  } finally {
    await bal.stop()
  }
}

describe('--trusted-proxies', () => {
  it("by default a client's forwarding headers are replaced", async () => {
    const h = await run([], '/default')
    expect([h['x-forwarded-for'], h['x-real-ip'], h.forwarded]).toEqual(['127.0.0.1', '127.0.0.1', expect.stringMatching(/^for=127\.0\.0\.1;proto=http;host="127\.0\.0\.1:\d+"$/)])
  })

  it("with --workers 2, a trusted proxy's headers are appended to in every worker", async () => {
    const h = await run(['--workers', '2', '--trusted-proxies', '10.0.0.0/8, 127.0.0.1'], '/trusted')
    expect([h['x-forwarded-for'], h['x-real-ip']]).toEqual(['6.6.6.6, 127.0.0.1', '6.6.6.6'])
    expect(h.forwarded).toMatch(/^for=6\.6\.6\.6;proto=https, for=127\.0\.0\.1;proto=http;host="127\.0\.0\.1:\d+"$/)
  })
})
