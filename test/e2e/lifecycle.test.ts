// Process lifecycle against the real binary: durable writes across a crash,
// drain of slow in-flight requests on SIGTERM, a second signal exits at once.
import { createServer, request } from 'node:http'
import type { IncomingMessage, Server } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

async function upstream(delayMs: number): Promise<{ server: Server; port: number; received: () => number }> {
  let received = 0
  const server = createServer((req, res) => {
    received++
    setTimeout(() => res.end(`slow ${req.url ?? ''}\n`), delayMs)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const a = server.address()
  return { server, port: typeof a === 'object' && a !== null ? a.port : 0, received: () => received }
}

async function api(bal: Running, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${bal.api}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  return { status: res.status, json: text === '' ? null : (JSON.parse(text) as unknown) }
}

function get(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (r: IncomingMessage) => {
      let body = ''
      r.setEncoding('utf8')
      r.on('data', (c: string) => (body += c))
      r.on('end', () => res({ status: r.statusCode ?? 0, body }))
      r.on('error', rej)
    })
    req.on('error', rej)
    req.end()
  })
}

function refused(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(port, '127.0.0.1')
    s.on('connect', () => {
      s.destroy()
      res(false)
    })
    s.on('error', () => res(true))
  })
}

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c()
})

describe('balancer process lifecycle', () => {
  it('keeps an acknowledged write across a crash (kill -9) and restart', async () => {
    const up = await upstream(0)
    cleanup.push(() => up.server.close())
    const dir = tempDir()
    const cfg = join(dir, 'conf.json')
    const port = await freePort()
    const a = await startBalancer(['--config', cfg])
    const created = await api(a, 'POST', '/server', { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: up.port, Weight: 3 }] })
    expect(created.status).toBe(201)
    a.proc.kill('SIGKILL')
    await a.exited
    const b = await startBalancer(['--config', cfg])
    cleanup.push(() => b.stop())
    const got = await api(b, 'GET', `/server/127.0.0.1:${port}`)
    expect(got.status).toBe(200)
    expect(got.json).toMatchObject({ address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: up.port, Priority: 1, Weight: 3 }] })
    expect(await get(port)).toEqual({ status: 200, body: 'slow /\n' })
  })

  it('drains a slow in-flight request on SIGTERM, refuses new connections, exits 0', async () => {
    const up = await upstream(1500)
    cleanup.push(() => up.server.close())
    const port = await freePort()
    const bal = await startBalancer(['--config', join(tempDir(), 'c.json'), '--grace', '10s'])
    expect((await api(bal, 'POST', '/server', { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: up.port }] })).status).toBe(201)
    const inflight = get(port, '/slow')
    await until(() => up.received() === 1, 5000, 'the request to reach the upstream')
    const t0 = Date.now()
    bal.proc.kill('SIGTERM')
    await bal.waitLog((l) => l.msg === 'draining')
    expect(await refused(port)).toBe(true)
    expect(await inflight).toEqual({ status: 200, body: 'slow /slow\n' })
    const exit = await bal.exited
    expect(exit.code).toBe(0)
    expect(Date.now() - t0).toBeLessThan(10_000)
  })

  it('exits at once on a second signal even with a request in flight', async () => {
    const up = await upstream(20_000)
    cleanup.push(() => up.server.close())
    const port = await freePort()
    const bal = await startBalancer(['--config', join(tempDir(), 'c.json'), '--grace', '30s'])
    await api(bal, 'POST', '/server', { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: up.port }] })
    const inflight = get(port, '/never').catch((e: unknown) => e)
    await until(() => up.received() === 1, 5000, 'the request to reach the upstream')
    bal.proc.kill('SIGTERM')
    await bal.waitLog((l) => l.msg === 'draining')
    const t0 = Date.now()
    bal.proc.kill('SIGINT')
    const exit = await bal.exited
    expect(Date.now() - t0).toBeLessThan(3000)
    expect(exit.code).not.toBe(0)
    expect(await inflight).toBeInstanceOf(Error)
  })
})
