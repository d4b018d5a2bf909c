// Hot reload through the real process: 100+ API writes and hand edits of the
// file while keep-alive clients run, with zero failed requests.
import { createServer, Agent, request } from 'node:http'
import type { Server } from 'node:http'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

interface Up {
  server: Server
  port: number
  hits: number
}

async function upstream(name: string): Promise<Up> {
  const up: Up = { server: createServer(), port: 0, hits: 0 }
  up.server.on('request', (_req, res) => {
    up.hits++
    res.end(name)
  })
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', r))
  const a = up.server.address()
  up.port = typeof a === 'object' && a !== null ? a.port : 0
  return up
}

function get(agent: Agent, port: number): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent }, (r) => {
      let body = ''
      r.setEncoding('utf8')
      r.on('data', (c: string) => (body += c))
      r.on('end', () => res({ status: r.statusCode ?? 0, body }))
    })
    req.on('error', rej)
    req.end()
  })
}

async function call(bal: Running, method: string, path: string, body?: unknown): Promise<number> {
  const res = await fetch(`${bal.api}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  await res.arrayBuffer()
  return res.status
}

describe('hot reload under keep-alive load', () => {
  let a: Up, b: Up, c: Up
  let bal: Running
  let port = 0
  const dir = tempDir()
  const cfg = join(dir, 'balancer.json')

  beforeAll(async () => {
    ;[a, b, c] = await Promise.all([upstream('a'), upstream('b'), upstream('c')])
    port = await freePort()
    bal = await startBalancer(['--config', cfg])
    expect(await call(bal, 'POST', '/server', { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: a.port }] })).toBe(201)
  })
  afterAll(async () => {
    await bal?.stop()
    for (const u of [a, b, c]) u?.server.close()
  })

  it('applies 120 API changes with zero failed requests and no client connection closed', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 4 })
    let closed = 0
    const seen = new Set<unknown>()
    agent.on('free', (sock) => {
      if (!seen.has(sock)) {
        seen.add(sock)
        sock.on('close', () => closed++)
      }
    })
    let ok = 0
    const failures: string[] = []
    let running = true
    const loop = async (): Promise<void> => {
      const end = Date.now() + 20_000
      while (running && Date.now() < end) {
        try {
          const r = await get(agent, port)
          if (r.status === 200) ok++
          else failures.push(`status ${r.status}: ${r.body}`)
        } catch (e) {
          failures.push(String(e))
        }
      }
    }
    const loops = [loop(), loop(), loop(), loop()]
    const base = `/server/127.0.0.1:${port}`
    for (let i = 0; i < 40; i++) {
      expect(await call(bal, 'PUT', `${base}/upstream/127.0.0.1-${b.port}`, { Target: '127.0.0.1', Port: b.port, Weight: 1 + (i % 3) })).toBeLessThan(300)
      expect(await call(bal, 'PUT', `${base}/upstream/127.0.0.1-${a.port}`, { Weight: 1 + ((i + 1) % 4) })).toBeLessThan(300)
      expect(await call(bal, 'DELETE', `${base}/upstream/127.0.0.1-${b.port}`)).toBe(204)
    }
    expect(await call(bal, 'PUT', `${base}/upstream/127.0.0.1-${c.port}`, { Priority: 0 })).toBeLessThan(300)
    running = false
    await Promise.all(loops)
    agent.destroy()
    expect(failures).toEqual([])
    expect(ok).toBeGreaterThan(100)
    expect(closed).toBe(0)
    // After the last change the priority-0 upstream takes everything.
    const c0 = c.hits
    const agent2 = new Agent({ keepAlive: true })
    for (let i = 0; i < 10; i++) expect((await get(agent2, port)).body).toBe('c')
    agent2.destroy()
    expect(c.hits - c0).toBe(10)
  })

  it('applies a hand edit of the file (save by rename) within a second', async () => {
    const text = readFileSync(cfg, 'utf8')
    const conf = JSON.parse(text) as { servers: Array<{ upstreams: Array<{ Port: number; Priority: number }> }> }
    const server = conf.servers[0]
    if (server === undefined) throw new Error('no server in the file')
    server.upstreams = [{ Target: '127.0.0.1', Port: b.port, Priority: 1, Weight: 1 } as never]
    const t0 = Date.now()
    writeFileSync(`${cfg}.tmp`, `// edited by hand\n${JSON.stringify(conf, null, 2)}`)
    renameSync(`${cfg}.tmp`, cfg)
    const agent = new Agent({ keepAlive: false })
    await until(async () => (await get(agent, port)).body === 'b', 3000, 'the hand edit to be served')
    expect(Date.now() - t0).toBeLessThan(1500)
  })

  it('refuses an invalid edit, keeps serving the last good config, and reports the error', async () => {
    writeFileSync(cfg, '{"servers":[{"address":"127.0.0.1:1","upstreams":[{"Target":"127.0.0.1","Port":"http"}]}]}')
    await until(
      async () => {
        const s = (await (await fetch(`${bal.api}/status`)).json()) as { lastError: { message: string } | null }
        return s.lastError !== null && s.lastError.message.includes('Port')
      },
      3000,
      'the invalid edit to be reported',
    )
    const agent = new Agent({ keepAlive: false })
    expect(await get(agent, port)).toEqual({ status: 200, body: 'b' })
    expect(bal.logs.some((l) => String(l.msg).includes('invalid'))).toBe(true)
  })
})
