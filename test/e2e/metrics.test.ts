// Prometheus metrics from the real balancer process: GET /metrics counts
// exactly the requests sent, through one engine and through two workers,
// across a reload; a removed upstream's series go away; a scrape during load
// fails no request; --metrics serves the same text without the token.
import { createServer, request } from 'node:http'
import type { IncomingMessage, Server } from 'node:http'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir } from './harness.ts'
import type { Running } from './harness.ts'

interface Up {
  server: Server
  port: number
  hits: number
}

async function upstream(): Promise<Up> {
  const up: Up = {
    server: createServer((_req, res) => {
      up.hits++
      res.end('ok')
    }),
    port: 0,
    hits: 0,
  }
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', r))
  const a = up.server.address()
  up.port = typeof a === 'object' && a !== null ? a.port : 0
  return up
}

/** One request on a fresh connection, so the kernel spreads them over the workers. */
function get(port: number, path = '/'): Promise<number> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (r: IncomingMessage) => {
      r.resume()
      r.on('end', () => res(r.statusCode ?? 0))
      r.on('error', rej)
    })
    req.on('error', rej)
    req.end()
  })
}

const TOKEN = 'metrics-test-token-0123456789'
const auth = { authorization: `Bearer ${TOKEN}` }

async function call(bal: Running, method: string, path: string, body?: unknown): Promise<number> {
  const res = await fetch(`${bal.api}${path}`, {
    method,
    headers: { ...auth, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  await res.arrayBuffer()
  return res.status
}

async function scrape(bal: Running): Promise<string> {
  const res = await fetch(`${bal.api}/metrics`, { headers: auth })
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return res.text()
}

/** The value of the series `name{labels...}` whose labels include every one given; summed when several match. */
function value(text: string, name: string, labels: Record<string, string> = {}): number | null {
  let found = false
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/.exec(line)
    if (m === null || m[1] !== name) continue
    const have = new Map([...(m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) {
      found = true
      sum += Number(m[4])
    }
  }
  return found ? sum : null
}

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

async function balancer(workers: number, extra: string[] = []): Promise<Running> {
  const bal = await startBalancer(['--config', join(tempDir(), 'balancer.json'), '--workers', String(workers), '--token', TOKEN, ...extra])
  cleanup.push(() => bal.stop('SIGKILL'))
  return bal
}

describe.each([1, 2])('GET /metrics with --workers %i', (workers) => {
  it('counts exactly the requests sent, across a reload, and drops a removed upstream', async () => {
    const [a, b] = await Promise.all([upstream(), upstream()])
    cleanup.push(
      () => a.server.close(),
      () => b.server.close(),
    )
    const port = await freePort()
    const bal = await balancer(workers)
    const address = `127.0.0.1:${port}`
    expect(await call(bal, 'POST', '/server', { address, upstreams: [{ Target: '127.0.0.1', Port: a.port }] })).toBe(201)
    const ka = `127.0.0.1:${a.port}`
    const kb = `127.0.0.1:${b.port}`

    let text = await scrape(bal)
    expect(value(text, 'balancer_requests_total', { server: address, route: 'default', upstream: ka, code_class: '2xx' })).toBe(0)
    expect(value(text, 'balancer_upstream_state', { upstream: ka, state: 'healthy' })).toBe(1)

    const N = 150
    for (let i = 0; i < N; i++) expect(await get(port)).toBe(200)
    text = await scrape(bal)
    expect(value(text, 'balancer_requests_total', { upstream: ka, code_class: '2xx' })).toBe(N)
    expect(value(text, 'balancer_request_duration_seconds_count', { server: address, route: 'default' })).toBe(N)
    expect(value(text, 'balancer_request_duration_seconds_bucket', { route: 'default', le: '+Inf' })).toBe(N)
    expect(value(text, 'balancer_config_reloads_total', { result: 'applied' })).toBeGreaterThanOrEqual(2)
    const version = value(text, 'balancer_config_version') ?? 0
    expect(version).toBeGreaterThanOrEqual(1)
    expect(value(text, 'process_resident_memory_bytes')).toBeGreaterThan(0)
    if (workers > 1) {
      expect(value(text, 'balancer_workers')).toBe(workers)
      expect(value(text, 'balancer_worker_resident_memory_bytes', { worker: '1' })).toBeGreaterThan(0)
    }

    // A reload (a second upstream) keeps the counts, and counts on from there.
    expect(await call(bal, 'POST', `/server/${address}/upstream/127.0.0.1-${b.port}`, { Target: '127.0.0.1', Port: b.port })).toBe(201)
    const M = 100
    for (let i = 0; i < M; i++) expect(await get(port)).toBe(200)
    text = await scrape(bal)
    expect(value(text, 'balancer_config_version')).toBe(version + 1)
    const onA = value(text, 'balancer_requests_total', { upstream: ka, code_class: '2xx' }) ?? 0
    const onB = value(text, 'balancer_requests_total', { upstream: kb, code_class: '2xx' }) ?? 0
    expect(onA + onB).toBe(N + M)
    expect(onA).toBe(a.hits)
    expect(onB).toBe(b.hits)
    expect(onB).toBeGreaterThan(0)
    expect(value(text, 'balancer_request_duration_seconds_count', { route: 'default' })).toBe(N + M)

    // Removing upstream a: its series are gone from the next scrape.
    expect(await call(bal, 'DELETE', `/server/${address}/upstream/127.0.0.1-${a.port}`)).toBe(204)
    text = await scrape(bal)
    expect(value(text, 'balancer_requests_total', { upstream: ka })).toBeNull()
    expect(value(text, 'balancer_upstream_state', { upstream: ka })).toBeNull()
    expect(value(text, 'balancer_requests_total', { upstream: kb, code_class: '2xx' })).toBe(onB)
  })
})

describe('metrics', () => {
  it('a scrape during load fails no request, and counts every one', async () => {
    const a = await upstream()
    cleanup.push(() => a.server.close())
    const port = await freePort()
    const bal = await balancer(2)
    const address = `127.0.0.1:${port}`
    expect(await call(bal, 'POST', '/server', { address, upstreams: [{ Target: '127.0.0.1', Port: a.port }] })).toBe(201)
    const statuses: number[] = []
    let scrapes = 0
    let loading = true
    const load = (async () => {
      const lanes = Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 60; i++) statuses.push(await get(port))
      })
      await Promise.all(lanes)
      loading = false
    })()
    while (loading) {
      await scrape(bal)
      scrapes++
    }
    await load
    expect(scrapes).toBeGreaterThan(1)
    expect(statuses.length).toBe(480)
    expect(statuses.filter((s) => s !== 200)).toEqual([])
    expect(value(await scrape(bal), 'balancer_requests_total', { server: address, code_class: '2xx' })).toBe(480)
  })

  it('requires the token on the admin API; --metrics serves the same text without one', async () => {
    const mport = await freePort()
    const bal = await balancer(1, ['--metrics', `127.0.0.1:${mport}`])
    expect((await fetch(`${bal.api}/metrics`)).status).toBe(401)
    const open = await fetch(`http://127.0.0.1:${mport}/metrics`)
    expect(open.status).toBe(200)
    const text = await open.text()
    expect(value(text, 'balancer_config_version')).toBeGreaterThanOrEqual(1)
    expect(value(text, 'balancer_store_up', { store: 'file' })).toBe(1)
    expect((await fetch(`http://127.0.0.1:${mport}/`)).status).toBe(404)
  })

  it('counts refused heads and requests no route takes under the server, with no route or upstream', async () => {
    const a = await upstream()
    cleanup.push(() => a.server.close())
    const port = await freePort()
    const bal = await balancer(1)
    const address = `127.0.0.1:${port}`
    expect(await call(bal, 'POST', '/server', { address, filter: { Hosts: ['app.test'] }, upstreams: [{ Target: '127.0.0.1', Port: a.port }] })).toBe(201)
    for (let i = 0; i < 3; i++) expect(await get(port)).toBe(404) // Host 127.0.0.1:port: no route
    const text = await scrape(bal)
    expect(value(text, 'balancer_requests_total', { server: address, route: '', upstream: '', code_class: '4xx' })).toBe(3)
  })
})
