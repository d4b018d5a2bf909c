// Client-side timeouts: a head that does not arrive in headersTimeoutMs is cut
// (slowloris), trickling bytes does not extend it, idle keep-alive
// connections are closed after idleTimeoutMs, and neither timeout cuts a
// request that is legitimately slow in its body or its response.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient, statusCodes } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

/** How long the upstream takes over a /paced request. */
const PACE_MS = 200

let up: HttpUpstream
let eng: StartedEngine

beforeAll(async () => {
  up = await httpUpstream((req, res, body) => {
    if (req.url === '/slow') setTimeout(() => res.end('slow'), 700)
    else if (req.url?.startsWith('/paced') === true) setTimeout(() => res.end(`${req.url}:`), PACE_MS)
    else res.end(`${req.url ?? ''}:${body.toString()}`)
  })
  eng = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1), {
    headersTimeoutMs: 300,
    idleTimeoutMs: 300,
  })
})
afterAll(async () => {
  await eng?.stop()
  await up?.close()
})

/** Writes `bytes` one byte per `everyMs` until done or the connection closes; returns how many were written. */
async function trickle(c: RawClient, bytes: string, everyMs: number): Promise<number> {
  for (let i = 0; i < bytes.length; i++) {
    if (c.closed) return i
    c.write(bytes[i] ?? '')
    // Pacing, not waiting: a client this slow is what the timeout under test is for.
    await new Promise((r) => setTimeout(r, everyMs))
  }
  return bytes.length
}

describe('headersTimeoutMs', () => {
  it('a head that stops arriving is cut with 408 (or a bare close), and nothing reaches the upstream', async () => {
    const before = up.requests.length
    const c = await RawClient.connect(eng.port)
    c.write('GET /partial HTTP/1.1\r\nHost: a\r\n')
    expect(await c.whenClosed(5000)).toBe(true)
    expect(statusCodes(c.buffered).filter((s) => s !== 408)).toEqual([])
    expect(up.requests.length).toBe(before)
  })

  it('also bounds how long a new connection may wait for its first request: closed without a byte', async () => {
    const c = await RawClient.connect(eng.port)
    expect(await c.whenClosed(5000)).toBe(true)
    expect(c.buffered.length).toBe(0)
  })

  it('trickling the head a byte at a time does not extend the deadline', async () => {
    const before = up.requests.length
    const c = await RawClient.connect(eng.port)
    // 150 bytes at one per 20 ms would take 3 s; the head deadline is 300 ms.
    const head = `GET /trickle HTTP/1.1\r\nHost: a\r\nX-Pad: ${'p'.repeat(100)}\r\n\r\n`
    const written = await trickle(c, head, 20)
    expect(written).toBeLessThan(head.length)
    expect(await c.whenClosed(3000)).toBe(true)
    expect(up.requests.length).toBe(before)
  })

  it('does not apply to a slowly uploaded body', async () => {
    const c = await RawClient.connect(eng.port)
    try {
      c.write('POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n')
      await trickle(c, 'abcdef', 100)
      const r = await c.read({ timeoutMs: 3000 })
      expect([r.status, r.body.toString()]).toEqual([200, '/body:abcdef'])
    } finally {
      c.destroy()
    }
  })
})

describe('idleTimeoutMs', () => {
  it('closes a keep-alive connection left idle after a response', async () => {
    const c = await RawClient.connect(eng.port)
    c.write('GET /once HTTP/1.1\r\nHost: a\r\n\r\n')
    expect((await c.read()).status).toBe(200)
    expect(await c.whenClosed(5000)).toBe(true)
    expect(c.buffered.length).toBe(0)
  })

  it('does not cut a response that takes longer than the idle timeout', async () => {
    const c = await RawClient.connect(eng.port)
    try {
      c.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n')
      const r = await c.read({ timeoutMs: 5000 })
      expect([r.status, r.body.toString()]).toEqual([200, 'slow'])
    } finally {
      c.destroy()
    }
  })

  it('a connection that keeps sending requests is not closed', async () => {
    // An engine of its own with a longer idle timeout: between a response and
    // the next request written the moment it is read, the connection is idle
    // for one turn of the event loop, and a loaded machine can stall that turn
    // by hundreds of ms (a 100 ms client pause against the 300 ms timeout above
    // was cut that way). The requests still span more than the timeout: the
    // upstream takes PACE_MS over each answer, time the connection waits for a
    // response and is not idle.
    const idleTimeoutMs = 1500
    const own = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1), { headersTimeoutMs: idleTimeoutMs, idleTimeoutMs })
    const c = await RawClient.connect(own.port)
    try {
      const start = Date.now()
      const n = Math.ceil(idleTimeoutMs / PACE_MS) + 2
      for (let i = 0; i < n; i++) {
        c.write(`GET /paced${i} HTTP/1.1\r\nHost: a\r\n\r\n`)
        expect((await c.read()).body.toString()).toBe(`/paced${i}:`)
      }
      expect(Date.now() - start).toBeGreaterThan(idleTimeoutMs)
      expect(c.closed).toBe(false)
    } finally {
      c.destroy()
      await own.stop()
    }
  })
})
