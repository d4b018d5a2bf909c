// Active health checks as the API shows them, through the real balancer
// process and real upstreams (README "Health and failover"):
//   - an upstream whose first check has not passed is `pending` and gets no
//     traffic;
//   - one that passes its checks is `healthy`;
//   - one whose check path answers 503 Fall times in a row is `unhealthy`,
//     with the failing result in its checks, and gets no traffic.
import { createServer, request } from 'node:http'
import type { Server } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

interface Up {
  server: Server
  port: number
  /** Requests other than health checks. */
  traffic: number
  checks: number
  /** Status the check path answers; null: it never answers. */
  checkStatus: number | null
}

async function upstream(name: string, checkStatus: number | null): Promise<Up> {
  const up: Up = { server: createServer(), port: 0, traffic: 0, checks: 0, checkStatus }
  up.server.on('request', (req, res) => {
    if (req.url === '/healthz') {
      up.checks++
      if (up.checkStatus === null) return // Hangs: the check never completes.
      res.statusCode = up.checkStatus
      res.end()
      return
    }
    up.traffic++
    res.end(name)
  })
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', r))
  const a = up.server.address()
  up.port = typeof a === 'object' && a !== null ? a.port : 0
  return up
}

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (r) => {
      let body = ''
      r.setEncoding('utf8')
      r.on('data', (c: string) => (body += c))
      r.on('end', () => res({ status: r.statusCode ?? 0, body }))
    })
    req.on('error', rej)
    req.end()
  })
}

async function api(bal: Running, path: string): Promise<any> {
  const res = await fetch(`${bal.api}${path}`)
  expect(res.status).toBe(200)
  return res.json()
}

describe('active health checks in the API (real balancer)', () => {
  let good: Up, flaky: Up, silent: Up
  let listenPort = 0
  let bal: Running
  const dir = tempDir()
  const cfg = join(dir, 'balancer.json')
  const server = (): string => `/server/127.0.0.1:${listenPort}`

  beforeAll(async () => {
    ;[good, flaky, silent] = await Promise.all([upstream('good', 200), upstream('flaky', 200), upstream('silent', null)])
    listenPort = await freePort()
    writeFileSync(
      cfg,
      JSON.stringify({
        servers: [
          {
            address: `127.0.0.1:${listenPort}`,
            upstreams: [
              { Target: '127.0.0.1', Port: good.port },
              { Target: '127.0.0.1', Port: flaky.port },
            ],
            // Timeout long enough that a loaded machine never fails the good upstream's check (Fall 1).
            health: { Path: '/healthz', Interval: '500ms', Timeout: '500ms', Rise: 1, Fall: 1 },
            routes: [
              {
                name: 'slow',
                filter: { Hosts: ['slow.test'] },
                upstreams: [{ Target: '127.0.0.1', Port: silent.port }],
                // Its first check cannot finish within the test: it stays pending.
                health: { Path: '/healthz', Interval: '1h', Timeout: '1h' },
              },
            ],
          },
        ],
      }),
    )
    bal = await startBalancer(['--config', cfg])
  })
  afterAll(async () => {
    await bal?.stop()
    for (const u of [good, flaky, silent]) u?.server.close()
  })

  it('an upstream whose first check has not passed is pending and gets no traffic', async () => {
    await until(() => silent.checks >= 1, 10_000, 'the first check of the silent upstream')
    const route = await api(bal, `${server()}/route/slow`)
    const s = route.status.upstreams[`127.0.0.1-${silent.port}`]
    expect(s.state).toBe('pending')
    expect(s.checks).toEqual([expect.objectContaining({ state: 'pending', lastResult: null, lastAt: null })])
    // No available upstream and no fallback: a clear 502/503, never the pending upstream.
    expect([502, 503]).toContain((await get(listenPort, 'slow.test')).status)
    expect(silent.traffic).toBe(0)
  })

  it('passing checks make an upstream healthy; 503 on the check path makes it unhealthy', async () => {
    const goodKey = `127.0.0.1-${good.port}`
    const flakyKey = `127.0.0.1-${flaky.port}`
    await until(
      async () => {
        const s = await api(bal, server())
        return s.status.upstreams[goodKey].state === 'healthy' && s.status.upstreams[flakyKey].state === 'healthy'
      },
      10_000,
      'both upstreams to pass their first check',
    )

    flaky.checkStatus = 503
    await until(async () => (await api(bal, server())).status.upstreams[flakyKey].state === 'unhealthy', 10_000, 'the flaky upstream to become unhealthy')
    const s = await api(bal, server())
    expect(s.status.upstreams[goodKey].state).toBe('healthy')
    expect(s.status.upstreams[flakyKey].checks).toEqual([expect.objectContaining({ state: 'unhealthy', lastResult: '503' })])
    expect(Date.parse(s.status.upstreams[flakyKey].checks[0].lastAt)).not.toBeNaN()
    const status = await api(bal, '/status')
    expect(status.upstreams[flakyKey].state).toBe('unhealthy')

    // Only the healthy upstream takes traffic now.
    const before = flaky.traffic
    for (let i = 0; i < 6; i++) expect(await get(listenPort, 'localhost')).toEqual({ status: 200, body: 'good' })
    expect(flaky.traffic).toBe(before)

    // Passing again (Rise 1) brings it back.
    flaky.checkStatus = 200
    await until(async () => (await api(bal, server())).status.upstreams[flakyKey].state === 'healthy', 10_000, 'the flaky upstream to recover')
  })
})
