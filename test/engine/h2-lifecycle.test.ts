// HTTP/2 connections across the engine's life: a reload keeps them (and
// their streams) as it keeps HTTP/1.1 connections; a removed listener and a
// shutdown send GOAWAY with the last stream id and let streams in flight
// finish; an upstream that fails a stream gets the HTTP/1.1 treatment
// (retry before any response byte, a reset of that stream alone after).

import http2 from 'node:http2'
import type { ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { E, F, H2Peer, T, block, frame, goawayCode } from '../support/h2peer.ts'
import { until } from '../support/poll.ts'
import { snapshotWith } from '../support/snapshot.ts'
import type { RouteSpec } from '../support/snapshot.ts'
import { httpUpstream, rawUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const held: ServerResponse[] = []

async function upstream(name: string): Promise<HttpUpstream> {
  const up = await httpUpstream((req, res) => {
    if (req.url === '/hold') held.push(res)
    else res.end(`${name} ${req.url}`)
  })
  cleanup.push(() => up.close())
  return up
}

async function engine(routes: RouteSpec[], extra: Array<{ host: string; routes: RouteSpec[] }> = []): Promise<StartedEngine> {
  const eng = await startEngine(snapshotWith([{ h2c: true, routes }, ...extra.map((l) => ({ ...l, h2c: true }))], 1))
  cleanup.push(() => eng.stop())
  return eng
}

function dataOf(p: H2Peer, stream: number): string {
  return Buffer.concat(p.frames.filter((f) => f.type === T.DATA && f.stream === stream).map((f) => f.payload)).toString()
}

describe('reload', () => {
  it('keeps an HTTP/2 connection and its streams; new streams take the new routes', async () => {
    const a = await upstream('a')
    const b = await upstream('b')
    const eng = await engine([{ upstreams: [{ host: '127.0.0.1', port: a.port }] }])
    const p = await H2Peer.open(eng.port)
    cleanup.push(() => p.close())
    p.write(p.headers(1, '/hold'))
    await until(() => held.length === 1, 5000, 'held request')
    await eng.engine.apply(snapshotWith([{ h2c: true, routes: [{ upstreams: [{ host: '127.0.0.1', port: b.port }] }] }], 2))
    p.write(p.headers(3, '/after'))
    await p.waitFor((f) => f.type === T.DATA && f.stream === 3 && (f.flags & F.END_STREAM) !== 0)
    expect(dataOf(p, 3)).toBe('b /after')
    ;(held.shift() as ServerResponse).end('a held')
    await p.waitFor((f) => f.type === T.DATA && f.stream === 1 && (f.flags & F.END_STREAM) !== 0)
    expect(dataOf(p, 1)).toBe('a held')
    expect(p.goaway()).toBeUndefined()
    expect(p.closed).toBe(false)
  })
})

describe('GOAWAY', () => {
  it('a removed listener sends GOAWAY with the last stream id, finishes the stream in flight, then closes', async () => {
    const a = await upstream('a')
    const eng = await engine([{ upstreams: [{ host: '127.0.0.1', port: a.port }] }], [{ host: '127.0.0.2', routes: [{ upstreams: [{ host: '127.0.0.1', port: a.port }] }] }])
    const p = await H2Peer.open(eng.port)
    cleanup.push(() => p.close())
    p.write(p.headers(1, '/x'))
    await p.waitFor((f) => f.type === T.DATA && f.stream === 1)
    p.write(p.headers(3, '/hold'))
    await until(() => held.length === 1, 5000, 'held request')
    await eng.engine.apply(snapshotWith([{ host: '127.0.0.2', h2c: true, routes: [{ upstreams: [{ host: '127.0.0.1', port: a.port }] }] }], 2))
    const g = await p.waitFor((f) => f.type === T.GOAWAY)
    expect(goawayCode(g)).toBe(E.NO_ERROR)
    expect(g.payload.readUInt32BE(0) & 0x7fffffff).toBe(3)
    expect(p.closed).toBe(false)
    ;(held.shift() as ServerResponse).end('finished')
    await p.waitFor((f) => f.type === T.DATA && f.stream === 3 && (f.flags & F.END_STREAM) !== 0)
    expect(dataOf(p, 3)).toBe('finished')
    await until(() => p.closed, 10_000, 'connection closed after its last stream')
  })

  it('shutdown sends GOAWAY and lets the stream in flight finish within the grace period', async () => {
    const a = await upstream('a')
    const eng = await engine([{ upstreams: [{ host: '127.0.0.1', port: a.port }] }])
    const c = http2.connect(`http://127.0.0.1:${eng.port}`)
    c.on('error', () => {})
    cleanup.push(() => void c.destroy())
    const req = c.request({ ':path': '/hold' }, { endStream: true })
    let body = ''
    req.on('data', (d) => (body += d))
    const ended = new Promise<void>((resolve) => req.on('end', () => resolve()))
    await until(() => held.length === 1, 5000, 'held request')
    const goaway = new Promise<number>((resolve) => c.on('goaway', (code) => resolve(code)))
    const stopped = eng.engine.shutdown(10_000)
    expect(await goaway).toBe(0)
    ;(held.shift() as ServerResponse).end('done in grace')
    await ended
    expect(body).toBe('done in grace')
    await stopped
  })
})

describe('upstream failures', () => {
  it('a reset before any response byte moves an idempotent stream to the next upstream', async () => {
    const bad = await rawUpstream((sock) => sock.resetAndDestroy())
    cleanup.push(() => bad.close())
    const good = await upstream('good')
    const eng = await engine([
      {
        upstreams: [
          { host: '127.0.0.1', port: bad.port },
          { host: '127.0.0.1', port: good.port },
        ],
        passive: { failures: 0 },
      },
    ])
    const c = http2.connect(`http://127.0.0.1:${eng.port}`)
    c.on('error', () => {})
    cleanup.push(() => void c.close())
    for (let i = 0; i < 4; i++) {
      const body = await new Promise<string>((resolve, reject) => {
        const req = c.request({ ':path': `/r${i}` }, { endStream: true })
        let b = ''
        req.on('data', (d) => (b += d))
        req.on('end', () => resolve(b))
        req.on('error', reject)
      })
      expect(body).toBe(`good /r${i}`)
    }
  })

  it('an upstream dying mid-response resets that stream (INTERNAL_ERROR), not the connection', async () => {
    const dying = await rawUpstream((sock) => {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial')
      setImmediate(() => sock.destroy())
    })
    cleanup.push(() => dying.close())
    const good = await upstream('good')
    const eng = await engine([{ hosts: ['dying.test'], upstreams: [{ host: '127.0.0.1', port: dying.port }] }, { upstreams: [{ host: '127.0.0.1', port: good.port }] }])
    const p = await H2Peer.open(eng.port)
    cleanup.push(() => p.close())
    p.write(
      frame(
        T.HEADERS,
        F.END_HEADERS | F.END_STREAM,
        3,
        block([
          [':method', 'GET'],
          [':scheme', 'http'],
          [':authority', 'dying.test'],
          [':path', '/d'],
        ]),
      ),
    )
    const rst = await p.waitFor((f) => f.type === T.RST_STREAM && f.stream === 3)
    expect(rst.payload.readUInt32BE(0)).toBe(2)
    expect(dataOf(p, 3)).toBe('partial')
    p.write(p.headers(5, '/still'))
    await p.waitFor((f) => f.type === T.DATA && f.stream === 5 && (f.flags & F.END_STREAM) !== 0)
    expect(dataOf(p, 5)).toBe('good /still')
  })
})
