// The seed's three-step quick start, run as written with the real curl against
// the real balancer process, with a local upstream standing in for the
// seed's public web site (tests only talk to loopback).
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir } from './harness.ts'
import type { Running } from './harness.ts'

// Asynchronous: the upstream runs in this process and must keep answering.
async function curl(args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('curl', ['-sS', '--max-time', '5', ...args], { encoding: 'utf8' })
  return stdout
}

describe('seed quick start', () => {
  let upstream: Server
  let upstreamPort = 0
  let bal: Running
  let listenPort = 0
  const dir = tempDir()
  const cfg = join(dir, 'balancer.json')

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      res.setHeader('content-type', 'text/plain')
      res.end(`homepage via ${String(req.headers.host)} xff=${String(req.headers['x-forwarded-for'])}\n`)
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    const a = upstream.address()
    upstreamPort = typeof a === 'object' && a !== null ? a.port : 0
    listenPort = await freePort()
    bal = await startBalancer(['--config', cfg])
  })
  afterAll(async () => {
    await bal?.stop()
    upstream?.close()
  })

  it('1. stores a server with curl --data (form content type)', async () => {
    const body = `{"address":":${listenPort}","upstreams":[{"Target":"127.0.0.1","Port":${upstreamPort}}]}`
    const out = await curl(['-X', 'POST', `${bal.api.replace('http://', '')}/server`, '--data', body, '-w', '\n%{http_code}'])
    const lines = out.trimEnd().split('\n')
    expect(lines.at(-1)).toBe('201')
    const created = JSON.parse(lines.slice(0, -1).join('\n')) as { address: string; upstreams: unknown[] }
    expect(created.address).toBe(`:${listenPort}`)
    expect(created.upstreams).toEqual([{ Target: '127.0.0.1', Port: upstreamPort, Priority: 1, Weight: 1 }])
  })

  it('2. shows the server at /server/:port', async () => {
    const out = await curl([`${bal.api.replace('http://', '')}/server/:${listenPort}`])
    const server = JSON.parse(out) as { address: string; upstreams: Array<{ Target: string; Port: number }> }
    expect(server.address).toBe(`:${listenPort}`)
    expect(server.upstreams[0]).toMatchObject({ Target: '127.0.0.1', Port: upstreamPort })
  })

  it('3. proxies curl localhost:port to the upstream', async () => {
    const out = await curl([`localhost:${listenPort}`])
    expect(out).toMatch(new RegExp(`^homepage via localhost:${listenPort} xff=(127\\.0\\.0\\.1|::1)\n$`))
  })

  it('wrote the configuration durably in canonical form', () => {
    const saved = JSON.parse(readFileSync(cfg, 'utf8')) as { servers: Array<{ address: string }> }
    expect(saved.servers.map((s) => s.address)).toEqual([`:${listenPort}`])
  })
})
