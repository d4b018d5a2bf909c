// Upstream state through the API of the real balancer process: a live
// upstream is `healthy`, a dead one is `ejected` after a request failed on
// it (passive detection), in GET /server/{address}, the route GET and GET
// /status. Policy groups in the config file reach the running balancer.
import { createServer, request } from 'node:http'
import type { Server } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

function get(port: number, host = 'localhost'): Promise<{ status: number; body: string }> {
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

describe('upstream state in the API (real balancer)', () => {
  let live: Server
  let livePort = 0
  let deadPort = 0
  let listenPort = 0
  let bal: Running
  const dir = tempDir()
  const cfg = join(dir, 'balancer.json')

  beforeAll(async () => {
    live = createServer((_req, res) => res.end('live'))
    await new Promise<void>((r) => live.listen(0, '127.0.0.1', r))
    const a = live.address()
    livePort = typeof a === 'object' && a !== null ? a.port : 0
    // A port the OS handed out and nobody listens on: connections are refused.
    deadPort = await freePort()
    listenPort = await freePort()
    writeFileSync(
      cfg,
      JSON.stringify({
        servers: [
          {
            address: `127.0.0.1:${listenPort}`,
            upstreams: [
              { Target: '127.0.0.1', Port: livePort },
              { Target: '127.0.0.1', Port: deadPort },
            ],
            // One failure ejects, for a minute: the state stays put while the test reads it.
            passive: { Failures: 1, Ejection: '1m' },
            routes: [{ name: 'app', filter: { Hosts: ['app.test'] }, upstreams: [{ Target: '127.0.0.1', Port: livePort }] }],
          },
        ],
      }),
    )
    bal = await startBalancer(['--config', cfg])
  })
  afterAll(async () => {
    await bal?.stop()
    live?.close()
  })

  it('shows the live upstream healthy and the dead one ejected after a failed request', async () => {
    const server = `/server/127.0.0.1:${listenPort}`
    const liveKey = `127.0.0.1-${livePort}`
    const deadKey = `127.0.0.1-${deadPort}`
    // The configuration comes back as stored, policy included, with status beside it.
    const first = await api(bal, server)
    expect(first.passive).toEqual({ Failures: 1, Ejection: '1m', MaxEjection: '1m', EjectOn5xx: false })
    expect(first.upstreams.map((u: { Port: number }) => u.Port)).toEqual([livePort, deadPort])
    expect(first.status.upstreams[liveKey].state).toBe('healthy')

    // Requests round-robin over both; the one sent to the dead upstream fails
    // over to the live one, so every client gets 200.
    await until(
      async () => {
        const r = await get(listenPort)
        expect(r).toEqual({ status: 200, body: 'live' })
        const s = await api(bal, server)
        return s.status.upstreams[deadKey].state === 'ejected'
      },
      10_000,
      'the dead upstream to be ejected',
    )

    const after = await api(bal, server)
    const dead = after.status.upstreams[deadKey]
    expect(dead.state).toBe('ejected')
    expect(Date.parse(dead.ejectedUntil)).toBeGreaterThan(Date.now())
    expect(dead.failures).toBeGreaterThanOrEqual(1)
    expect(dead.ejections).toBeGreaterThanOrEqual(1)
    expect(after.status.upstreams[liveKey]).toMatchObject({ state: 'healthy', failures: 0 })
    expect(after.status.upstreams[liveKey].requests).toBeGreaterThanOrEqual(1)
    expect(after.status.fallbacks).toEqual({})
    // The route shows only its own member.
    const route = await api(bal, `${server}/route/app`)
    expect(Object.keys(route.status.upstreams)).toEqual([liveKey])
    // GET /status lists every upstream.
    const status = await api(bal, '/status')
    expect(status.upstreams[deadKey].state).toBe('ejected')
    expect(status.upstreams[liveKey].state).toBe('healthy')
  })

  it('a GET body PUT back is accepted as is and changes nothing', async () => {
    const server = `/server/127.0.0.1:${listenPort}`
    const res = await fetch(`${bal.api}${server}`)
    const text = await res.text()
    const put = await fetch(`${bal.api}${server}`, { method: 'PUT', body: text, headers: { 'content-type': 'application/json', 'if-match': res.headers.get('etag') ?? '' } })
    expect(put.status).toBe(200)
    expect(put.headers.get('etag')).toBe(res.headers.get('etag'))
  })
})
