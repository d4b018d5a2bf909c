// Access logs and request ids from the real balancer process: one JSON line
// per request under wrk load (two workers writing one file), a file on a full
// or read-only disk never stops proxying (the failure is logged once and the
// lost lines counted), SIGUSR1 reopens a file logrotate moved, sampling, and
// X-Request-Id / traceparent / tracestate end to end.
import { spawn } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import { createServer, request } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { TestCa } from '../support/certs.ts'
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, Server } from 'node:http'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

interface Up {
  server: Server
  port: number
  seen: IncomingHttpHeaders[]
}

async function upstream(echo: string[] = []): Promise<Up> {
  const up: Up = {
    server: createServer((req, res) => {
      up.seen.push(req.headers)
      for (const h of echo) {
        const v = req.headers[h]
        if (typeof v === 'string') res.setHeader(h, v)
      }
      res.end('ok')
    }),
    port: 0,
    seen: [],
  }
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', r))
  const a = up.server.address()
  up.port = typeof a === 'object' && a !== null ? a.port : 0
  return up
}

function get(port: number, headers: OutgoingHttpHeaders = {}, path = '/'): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (r: IncomingMessage) => {
      r.resume()
      r.on('end', () => res({ status: r.statusCode ?? 0, headers: r.headers }))
      r.on('error', rej)
    })
    req.on('error', rej)
    req.end()
  })
}

async function call(bal: Running, method: string, path: string, body?: unknown): Promise<number> {
  const res = await fetch(`${bal.api}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  await res.arrayBuffer()
  return res.status
}

async function metric(bal: Running, name: string): Promise<number | null> {
  const text = await (await fetch(`${bal.api}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? null : Number(line.split(' ')[1])
}

function lines(file: string): Array<Record<string, unknown>> {
  if (!existsSync(file)) return []
  const text = readFileSync(file, 'utf8')
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

async function setup(args: string[], workers = 1): Promise<{ bal: Running; up: Up; port: number; address: string }> {
  const up = await upstream(['x-request-id'])
  cleanup.push(() => up.server.close())
  const port = await freePort()
  const bal = await startBalancer(['--config', join(tempDir(), 'balancer.json'), '--workers', String(workers), ...args])
  cleanup.push(() => bal.stop('SIGKILL'))
  const address = `127.0.0.1:${port}`
  expect(await call(bal, 'POST', '/server', { address, upstreams: [{ Target: '127.0.0.1', Port: up.port }] })).toBe(201)
  return { bal, up, port, address }
}

function wrk(port: number, seconds: number): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn('wrk', ['-t', '2', '-c', '16', '-d', `${seconds}s`, `http://127.0.0.1:${port}/load?x=1`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (c: Buffer) => (out += c.toString()))
    p.on('error', rej)
    p.on('exit', (code) => (code === 0 ? res(out) : rej(new Error(`wrk exited ${code}: ${out}`))))
  })
}

describe('--access-log', () => {
  it('writes one complete JSON line per request under wrk load, with two workers on one file', async () => {
    const file = join(tempDir(), 'access.log')
    const { bal, up, address } = await setup(['--access-log', file], 2)
    const port = Number(address.split(':')[1])
    const out = await wrk(port, 2)
    expect(out).toMatch(/requests in/)
    expect(up.seen.length).toBeGreaterThan(500)
    // Every request that reached the upstream has its line once the buffers are written.
    await until(() => lines(file).length === up.seen.length, 10_000, `one line per request (${up.seen.length})`)
    const all = lines(file)
    const ids = new Set(all.map((l) => l['requestId']))
    expect(ids.size).toBe(all.length)
    const ok = all.filter((l) => l['status'] === 200)
    expect(ok.length).toBeGreaterThan(all.length - 20) // at most wrk's in-flight requests at its stop
    expect(ok[0]).toEqual({
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      kind: 'http',
      client: '127.0.0.1',
      method: 'GET',
      host: `127.0.0.1:${port}`,
      path: '/load?x=1',
      protocol: 'HTTP/1.1',
      tls: null,
      status: 200,
      bytesIn: expect.any(Number),
      bytesOut: expect.any(Number),
      durationMs: expect.any(Number),
      server: address,
      route: 'default',
      upstream: `127.0.0.1:${up.port}`,
      retries: 0,
      requestId: expect.stringMatching(/^[0-9a-f]{12}-\d+$/),
    })
    expect(ok[0]?.['bytesIn']).toBeGreaterThan(30)
    expect(ok[0]?.['bytesOut']).toBeGreaterThan(30)
    expect(await metric(bal, 'balancer_access_log_lines_total')).toBe(all.length)
    expect(await metric(bal, 'balancer_access_log_dropped_lines_total')).toBe(0)
  })

  it('on a full disk (/dev/full) proxying goes on; the failure is logged once and every line counted as dropped', async () => {
    const { bal, port } = await setup(['--access-log', '/dev/full'])
    for (let i = 0; i < 50; i++) expect((await get(port)).status).toBe(200)
    await until(async () => (await metric(bal, 'balancer_access_log_dropped_lines_total')) === 50, 5000, '50 dropped lines')
    for (let i = 0; i < 20; i++) expect((await get(port)).status).toBe(200)
    await until(async () => (await metric(bal, 'balancer_access_log_dropped_lines_total')) === 70, 5000, '70 dropped lines')
    const failures = bal.logs.filter((l) => l['msg'] === 'access log cannot be written; its lines are dropped and counted until it can')
    expect(failures.length).toBe(1)
    expect(JSON.stringify(failures[0])).toMatch(/ENOSPC/)
  })

  it('on a read-only file system proxying goes on, with two workers; each logs the failure once', async () => {
    const dir = tempDir()
    const mnt = join(dir, 'ro')
    mkdirSync(mnt)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', mnt])
    cleanup.push(() => {
      execFileSync('umount', [mnt])
      rmSync(dir, { recursive: true, force: true })
    })
    const { bal, port } = await setup(['--access-log', join(mnt, 'access.log')], 2)
    const statuses = await Promise.all(Array.from({ length: 40 }, () => get(port).then((r) => r.status)))
    expect(statuses.filter((s) => s !== 200)).toEqual([])
    await until(async () => (await metric(bal, 'balancer_access_log_dropped_lines_total')) === 40, 5000, '40 dropped lines')
    const failures = bal.logs.filter((l) => l['msg'] === 'access log cannot be written; its lines are dropped and counted until it can')
    expect(failures.length).toBeGreaterThanOrEqual(1)
    expect(failures.length).toBeLessThanOrEqual(2) // once per worker
    expect(JSON.stringify(failures[0])).toMatch(/EROFS/)
  })

  it('reopens the file on SIGUSR1 after logrotate moved it', async () => {
    const file = join(tempDir(), 'access.log')
    const { bal, port } = await setup(['--access-log', file])
    for (let i = 0; i < 5; i++) await get(port, {}, '/before')
    await until(() => lines(file).length === 5, 5000, 'five lines')
    renameSync(file, `${file}.1`)
    for (let i = 0; i < 3; i++) await get(port, {}, '/moved')
    await until(() => lines(`${file}.1`).length === 8, 5000, 'lines to follow the moved file')
    bal.proc.kill('SIGUSR1')
    await bal.waitLog((l) => l['msg'] === 'access log reopened')
    for (let i = 0; i < 4; i++) await get(port, {}, '/after')
    await until(() => lines(file).length === 4, 5000, 'four lines in the new file')
    expect(lines(file).map((l) => l['path'])).toEqual(['/after', '/after', '/after', '/after'])
  })

  it('--access-log-sample writes about that fraction of requests', async () => {
    const file = join(tempDir(), 'access.log')
    const { port } = await setup(['--access-log', file, '--access-log-sample', '0.5'])
    const N = 400
    for (let i = 0; i < N; i++) await get(port)
    // Binomial(400, 0.5): outside 120..280 has a probability far below 1e-15.
    await until(() => lines(file).length > 120, 5000, 'sampled lines')
    const n = lines(file).length
    expect(n).toBeLessThan(280)
  })

  it('carries the TLS version of an HTTPS request', async () => {
    const ca = new TestCa()
    cleanup.push(() => ca.remove())
    const cert = ca.issue(['127.0.0.1'])
    const file = join(tempDir(), 'access.log')
    const up = await upstream()
    cleanup.push(() => up.server.close())
    const port = await freePort()
    const bal = await startBalancer(['--config', join(tempDir(), 'balancer.json'), '--access-log', file])
    cleanup.push(() => bal.stop('SIGKILL'))
    const created = await call(bal, 'POST', '/server', {
      address: `127.0.0.1:${port}`,
      tls: { Certificates: [{ CertFile: cert.certFile, KeyFile: cert.keyFile }] },
      upstreams: [{ Target: '127.0.0.1', Port: up.port }],
    })
    expect(created).toBe(201)
    const status = await new Promise<number>((res, rej) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/secure', ca: ca.caPem, agent: false, maxVersion: 'TLSv1.2' }, (r) => {
        r.resume()
        r.on('end', () => res(r.statusCode ?? 0))
      })
      req.on('error', rej)
      req.end()
    })
    expect(status).toBe(200)
    await until(() => lines(file).length === 1, 5000, 'the HTTPS line')
    expect(lines(file)[0]).toMatchObject({ path: '/secure', tls: 'TLSv1.2', status: 200 })
  })

  it('is off by default: no file, no access log metrics', async () => {
    const { bal, port } = await setup([])
    expect((await get(port)).status).toBe(200)
    expect(await metric(bal, 'balancer_access_log_lines_total')).toBeNull()
  })
})

describe('request ids and trace headers', () => {
  it('keeps a valid X-Request-Id, replaces an invalid one, makes one when missing; upstream, client and log agree', async () => {
    const file = join(tempDir(), 'access.log')
    const up = await upstream() // echoes nothing: the balancer adds the id to the response
    cleanup.push(() => up.server.close())
    const port = await freePort()
    const bal = await startBalancer(['--config', join(tempDir(), 'balancer.json'), '--access-log', file])
    cleanup.push(() => bal.stop('SIGKILL'))
    expect(await call(bal, 'POST', '/server', { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: up.port }] })).toBe(201)

    const given = await get(port, { 'x-request-id': 'abc-123/XYZ=' })
    expect(given.headers['x-request-id']).toBe('abc-123/XYZ=')
    expect(up.seen[0]?.['x-request-id']).toBe('abc-123/XYZ=')

    const tooLong = 'a'.repeat(129)
    const replaced = await get(port, { 'x-request-id': tooLong })
    expect(replaced.headers['x-request-id']).toMatch(/^[0-9a-f]{12}-\d+$/)
    expect(up.seen[1]?.['x-request-id']).toBe(replaced.headers['x-request-id'])

    const made = await get(port)
    const id = made.headers['x-request-id']
    expect(id).toMatch(/^[0-9a-f]{12}-\d+$/)
    expect(id).not.toBe(replaced.headers['x-request-id'])
    expect(up.seen[2]?.['x-request-id']).toBe(id)

    await until(() => lines(file).length === 3, 5000, 'three lines')
    expect(lines(file).map((l) => l['requestId'])).toEqual(['abc-123/XYZ=', replaced.headers['x-request-id'], id])
  })

  it('passes an upstream response id through, and traceparent / tracestate unchanged', async () => {
    const up = await upstream(['x-request-id', 'traceparent', 'tracestate'])
    cleanup.push(() => up.server.close())
    const port = await freePort()
    const bal = await startBalancer(['--config', join(tempDir(), 'balancer.json')])
    cleanup.push(() => bal.stop('SIGKILL'))
    expect(await call(bal, 'POST', '/server', { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: up.port }] })).toBe(201)
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    const tracestate = 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'
    const r = await get(port, { traceparent, tracestate, 'x-request-id': 'trace-me' })
    expect(up.seen[0]?.['traceparent']).toBe(traceparent)
    expect(up.seen[0]?.['tracestate']).toBe(tracestate)
    expect(r.headers['traceparent']).toBe(traceparent)
    expect(r.headers['tracestate']).toBe(tracestate)
    // The upstream echoed the id: exactly one x-request-id reaches the client.
    expect(r.headers['x-request-id']).toBe('trace-me')
  })
})
