// The two kinds of plain upstream connection (src/engine/upstream/pool.ts):
// libuv TCP handles driven directly (raw-socket.ts, the default where the
// bindings are as expected) and net.Socket (the fallback, and every
// upstream named by a host name). The same failures and the same traffic
// must look the same to the client and to passive health on both.

import { createHash, randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { useRawUpstreams } from '../../src/engine/upstream/raw-socket.ts'
import { httpGet, httpRequest, rawRequest, sendAndReadToEnd } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import type { TargetSpec } from '../support/snapshot.ts'
import { httpUpstream, rawUpstream, refusedPort } from '../support/upstream.ts'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const DOWNLOAD = randomBytes(8 * 1024 * 1024)

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

async function engine(upstreams: TargetSpec[], passive: { ejectionMs?: number } = {}): Promise<StartedEngine> {
  const e = await startEngine(snapshotFor({ routes: [{ upstreams, passive: { ejectionMs: 60_000, maxEjectionMs: 60_000, ...passive } }] }, 1))
  cleanup.push(() => e.stop())
  return e
}

async function live() {
  const up = await httpUpstream((req, res, body) => res.end(req.url === '/download' ? DOWNLOAD : `${req.method} ${req.url} ${sha(body)} ${body.length}`))
  cleanup.push(() => up.close())
  return up
}

const at = (port: number, extra: Partial<TargetSpec> = {}): TargetSpec => ({ host: '127.0.0.1', port, ...extra })

describe.each([
  ['raw TCP handles', true],
  ['net.Socket (the fallback)', false],
])('plain upstreams on %s', (_name, raw) => {
  beforeAll(() => useRawUpstreams(raw))
  afterAll(() => useRawUpstreams(true))

  it('a closed port: 503 with Retry-After when it is the only upstream, and it is ejected', async () => {
    const port = await refusedPort()
    const e = await engine([at(port)])
    const r = await httpGet(e.port, '/')
    expect(r.status).toBe(503)
    expect(r.headers['retry-after']).toMatch(/^\d+$/)
    expect(e.engine.stats().upstreams.find((u) => u.key === `127.0.0.1:${port}`)).toMatchObject({ state: 'ejected', failures: 1, ejections: 1 })
  })

  it('a closed port beside a live upstream: every request, POST included, is served by the live one', async () => {
    const ok = await live()
    const port = await refusedPort()
    const e = await engine([at(port, { priority: 1 }), at(ok.port, { priority: 2 })])
    for (let i = 0; i < 5; i++) {
      const r = await httpRequest(e.port, `/p${i}`, {}, { method: 'POST', body: 'x' })
      expect([r.status, r.text]).toEqual([200, `POST /p${i} ${sha(Buffer.from('x'))} 1`])
    }
    expect(e.engine.stats().upstreams.find((u) => u.key === `127.0.0.1:${port}`)).toMatchObject({ state: 'ejected' })
  })

  it('a reset mid-response resets the client, counts against the upstream, and the next request is served', async () => {
    let n = 0
    const up = await rawUpstream((sock, data) => {
      if (!data.includes('\r\n\r\n')) return
      if (n++ === 0) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart', () => setImmediate(() => sock.resetAndDestroy()))
      else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    })
    cleanup.push(() => up.close())
    const e = await engine([at(up.port)], { ejectionMs: 0 })
    const r = await rawRequest(e.port, 'GET /cut HTTP/1.1\r\nHost: a\r\n\r\n', { timeoutMs: 5000 })
    expect(r.timedOut).toBe(false)
    expect(r.text).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\npart$/)
    expect(e.engine.stats().upstreams[0]).toMatchObject({ failures: 1, consecutiveFailures: 1 })
    const next = await httpGet(e.port, '/next')
    expect([next.status, next.text]).toEqual([200, 'ok'])
  })

  it('an upstream that closes every connection after answering: 40 POSTs in a row all succeed (the keep-alive race is retried)', async () => {
    const up = await rawUpstream((sock, data, conn) => {
      conn.pending += data.toString('latin1')
      const end = conn.pending.indexOf('\r\n\r\n')
      if (end < 0 || conn.pending.length < end + 4 + 4) return
      conn.pending = ''
      sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    })
    cleanup.push(() => up.close())
    const e = await engine([at(up.port)])
    for (let i = 0; i < 40; i++) {
      const r = await httpRequest(e.port, '/', { 'content-length': 4 }, { method: 'POST', body: 'body' })
      expect([r.status, r.text]).toEqual([200, 'ok'])
    }
  })

  it('a 4 MiB upload and an 8 MiB download to a client that keeps pausing arrive intact', async () => {
    const ok = await live()
    const e = await engine([at(ok.port)])
    const body = randomBytes(4 * 1024 * 1024)
    const up = await httpRequest(e.port, '/up', { 'content-length': body.length }, { method: 'POST', body, timeoutMs: 20_000 })
    expect(up.text).toBe(`POST /up ${sha(body)} ${body.length}`)
    const down = await sendAndReadToEnd(e.port, 'GET /download HTTP/1.1\r\nHost: x\r\n\r\n', 256 * 1024)
    expect(down.head).toMatch(/^HTTP\/1\.1 200 /)
    expect(sha(down.body)).toBe(sha(DOWNLOAD))
  })

  it("a WebSocket tunnel echoes, and the client's FIN reaches the upstream, whose FIN ends the client", async () => {
    const ws = await rawUpstream((sock, data, conn) => {
      if (conn.pending === 'open') return void sock.write(data)
      conn.pending += data.toString('latin1')
      if (!conn.pending.includes('\r\n\r\n')) return
      conn.pending = 'open'
      sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
      sock.on('end', () => sock.end('last words'))
    })
    cleanup.push(() => ws.close())
    const e = await engine([at(ws.port)])
    const sock = connect({ port: e.port, host: '127.0.0.1', allowHalfOpen: true })
    sock.on('error', () => undefined)
    try {
      let got = Buffer.alloc(0)
      let ended = false
      sock.on('data', (d: Buffer) => (got = Buffer.concat([got, d])))
      sock.on('end', () => (ended = true))
      sock.write('GET /ws HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
      await until(() => got.includes('\r\n\r\n'), 5000, 'the 101')
      const start = got.indexOf('\r\n\r\n') + 4
      const payload = randomBytes(256 * 1024)
      sock.write(payload)
      await until(() => got.length - start >= payload.length, 5000, 'the echo')
      expect(sha(got.subarray(start))).toBe(sha(payload))
      sock.end()
      await until(() => ended, 5000, "the upstream's FIN")
      expect(got.subarray(start + payload.length).toString()).toBe('last words')
    } finally {
      sock.destroy()
    }
  })

  it('an upstream named by a host name (resolved per connection) is served', async () => {
    const ok = await live()
    const e = await engine([{ host: 'localhost', port: ok.port }])
    const r = await httpGet(e.port, '/named')
    expect([r.status, r.text]).toEqual([200, `GET /named ${sha(Buffer.alloc(0))} 0`])
  })
})
