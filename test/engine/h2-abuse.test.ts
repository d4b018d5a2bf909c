// HTTP/2 floods and abuse, each from a raw peer (test/support/h2peer.ts),
// each with the bound the balancer holds: rapid reset (CVE-2023-44487),
// CONTINUATION flood (CVE-2024-27316), SETTINGS / PING / empty DATA floods,
// an HPACK bomb and a header list over the limit, a client that never reads
// (window 0), and more streams than MAX_CONCURRENT_STREAMS.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CALM_BURST, MAX_STREAMS, RESET_COST } from '../../src/engine/h2/conn.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { E, F, H2Peer, T, block, frame, goawayCode, indexed, settings, u32 } from '../support/h2peer.ts'
import { until } from '../support/poll.ts'
import { snapshotWith } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import type { ServerResponse } from 'node:http'

let up: HttpUpstream
let eng: StartedEngine
/** Responses held open by /hold until released. */
const held: ServerResponse[] = []
let bigAborted = 0
let bigFinished = 0

const IDLE_MS = 600

beforeAll(async () => {
  up = await httpUpstream((req, res) => {
    if (req.url === '/hold') {
      held.push(res)
      return
    }
    if (req.url === '/big') {
      // 64 MiB, written as fast as the proxy takes it.
      const chunk = Buffer.alloc(64 * 1024, 'x')
      let left = 1024
      res.setHeader('content-length', String(left * chunk.length))
      res.on('close', () => (res.writableFinished ? bigFinished++ : bigAborted++))
      const pump = (): void => {
        while (left > 0) {
          left--
          if (!res.write(chunk)) {
            res.once('drain', pump)
            return
          }
        }
        res.end()
      }
      pump()
      return
    }
    res.end('ok')
  })
  eng = await startEngine(snapshotWith([{ h2c: true, routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }], 1), { idleTimeoutMs: IDLE_MS })
})
afterAll(async () => {
  for (const r of held) r.end()
  await eng?.stop()
  await up?.close()
})

async function open(opts: { settings?: Array<[number, number]> } = {}): Promise<H2Peer> {
  return H2Peer.open(eng.port, opts)
}

describe('rapid reset (CVE-2023-44487)', () => {
  it('streams opened and reset in one burst never reach the upstream; past the budget the connection gets GOAWAY ENHANCE_YOUR_CALM', async () => {
    const p = await open()
    const before = up.requests.length
    const bufs: Buffer[] = []
    for (let i = 0; i < 1000; i++) {
      const id = 1 + 2 * i
      bufs.push(p.headers(id, '/reset'), frame(T.RST_STREAM, 0, id, u32(E.CANCEL)))
    }
    p.write(...bufs)
    const g = await p.waitFor((f) => f.type === T.GOAWAY)
    expect(goawayCode(g)).toBe(E.ENHANCE_YOUR_CALM)
    await until(() => p.closed, 10_000, 'connection closed')
    expect(up.requests.length - before).toBe(0)
  })

  it('streams reset one read at a time cost at most the budget in upstream requests, then GOAWAY', async () => {
    const p = await open()
    const before = up.requests.length
    let sent = 0
    for (let i = 0; i < 400 && !p.closed && p.goaway() === undefined; i++) {
      const id = 1 + 2 * i
      p.write(p.headers(id, '/hold'))
      // Pacing, not waiting: each HEADERS and its RST_STREAM arrive in separate reads, the abuse under test.
      await new Promise((r) => setTimeout(r, 2))
      p.write(frame(T.RST_STREAM, 0, id, u32(E.CANCEL)))
      sent++
    }
    const g = await p.waitFor((f) => f.type === T.GOAWAY)
    expect(goawayCode(g)).toBe(E.ENHANCE_YOUR_CALM)
    const budget = CALM_BURST / RESET_COST
    expect(sent).toBeLessThan(400)
    // The budget in a burst, plus what the refill (10 a second) added while the test ran.
    expect(up.requests.length - before).toBeLessThanOrEqual(budget + 20)
    p.close()
  })
})

describe('CONTINUATION flood (CVE-2024-27316)', () => {
  it('a header block past --max-header-bytes gets GOAWAY ENHANCE_YOUR_CALM before the rest is read', async () => {
    const p = await open()
    p.write(
      frame(
        T.HEADERS,
        0,
        1,
        block([
          [':method', 'GET'],
          [':scheme', 'http'],
          [':path', '/'],
          [':authority', 'a'],
        ]),
      ),
    )
    const junk = block([['x-filler', 'y'.repeat(1000)]])
    const frames: Buffer[] = []
    for (let i = 0; i < 100; i++) frames.push(frame(T.CONTINUATION, 0, 1, junk))
    p.write(...frames)
    const g = await p.waitFor((f) => f.type === T.GOAWAY)
    expect(goawayCode(g)).toBe(E.ENHANCE_YOUR_CALM)
    await until(() => p.closed, 10_000, 'connection closed')
  })

  it('endless empty CONTINUATION frames get GOAWAY too', async () => {
    const p = await open()
    p.write(frame(T.HEADERS, 0, 1, block([[':method', 'GET']])))
    const frames: Buffer[] = []
    for (let i = 0; i < 10_000; i++) frames.push(frame(T.CONTINUATION, 0, 1))
    p.write(...frames)
    const g = await p.waitFor((f) => f.type === T.GOAWAY)
    expect(goawayCode(g)).toBe(E.ENHANCE_YOUR_CALM)
  })
})

describe('control-frame floods', () => {
  for (const [name, make] of [
    ['PING', () => frame(T.PING, 0, 0, Buffer.alloc(8, 7))],
    ['SETTINGS', () => settings([[4, 65535]])],
  ] as const) {
    it(`${name}: at most the calm budget is answered, then GOAWAY ENHANCE_YOUR_CALM`, async () => {
      const p = await open()
      const frames: Buffer[] = []
      for (let i = 0; i < 5000; i++) frames.push(make())
      p.write(...frames)
      const g = await p.waitFor((f) => f.type === T.GOAWAY)
      expect(goawayCode(g)).toBe(E.ENHANCE_YOUR_CALM)
      await until(() => p.closed, 10_000, 'connection closed')
      const acks = p.frames.filter((f) => f.type === (name === 'PING' ? T.PING : T.SETTINGS) && (f.flags & F.ACK) !== 0).length
      expect(acks).toBeLessThanOrEqual(CALM_BURST + 20)
    })
  }

  it('empty DATA frames: GOAWAY ENHANCE_YOUR_CALM', async () => {
    const p = await open()
    p.write(p.headers(1, '/hold', { end: false, method: 'POST' }))
    const frames: Buffer[] = []
    for (let i = 0; i < 5000; i++) frames.push(frame(T.DATA, 0, 1))
    p.write(...frames)
    const g = await p.waitFor((f) => f.type === T.GOAWAY)
    expect(goawayCode(g)).toBe(E.ENHANCE_YOUR_CALM)
  })
})

describe('header lists', () => {
  it('an HPACK bomb (one large table entry named again and again) is answered 431, and the connection carries on', async () => {
    const p = await open()
    const base: Array<[string, string]> = [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/bomb'],
      [':authority', 'a'],
    ]
    // 4,000 bytes into the dynamic table, then named 1,000 times: 4 MB decoded from a 5 KB block.
    const refs = Buffer.concat(Array.from({ length: 1000 }, () => indexed(62)))
    p.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, Buffer.concat([block(base), block([['x-big', 'b'.repeat(4000)]], true), refs])))
    const h = await p.waitFor((f) => f.type === T.HEADERS && f.stream === 1)
    // :status 431 is not in the static table: a literal with name index 8.
    expect(h.payload.subarray(0, 5).toString('latin1')).toBe('\u0008\u0003431')
    p.write(p.headers(3, '/after'))
    const ok = await p.waitFor((f) => f.type === T.HEADERS && f.stream === 3)
    expect(ok.payload[0]).toBe(0x88)
    expect(up.requests.some((r) => r.url === '/bomb')).toBe(false)
    p.close()
  })

  it('a list of many small fields over the limit is answered 431', async () => {
    const p = await open()
    const many: Array<[string, string]> = Array.from({ length: 1100 }, (_, i) => [`x${i}`, 'v'])
    p.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, block([[':method', 'GET'], [':scheme', 'http'], [':path', '/many'], [':authority', 'a'], ...many])))
    const h = await p.waitFor((f) => f.type === T.HEADERS && f.stream === 1)
    expect(h.payload.subarray(0, 5).toString('latin1')).toBe('\u0008\u0003431')
    p.close()
  })
})

describe('a client that never reads', () => {
  it('window 0: the upstream is paused, not read into memory, and the stream is reset after --idle-timeout', async () => {
    const p = await open({ settings: [[4, 0]] })
    const abortedBefore = bigAborted
    p.write(p.headers(1, '/big'))
    await p.waitFor((f) => f.type === T.HEADERS && f.stream === 1)
    const rst = await p.waitFor((f) => f.type === T.RST_STREAM && f.stream === 1, 5000)
    expect(rst.payload.readUInt32BE(0)).toBe(E.CANCEL)
    // The 64 MiB response was cut off at the upstream: the balancer stopped reading it.
    await until(() => bigAborted > abortedBefore, 5000, 'upstream response aborted')
    expect(p.frames.filter((f) => f.type === T.DATA).length).toBe(0)
    // The connection is still usable for a client that reads.
    p.write(frame(T.WINDOW_UPDATE, 0, 0, u32(1 << 20)), settings([[4, 65535]]))
    p.write(p.headers(3, '/fine'))
    const d = await p.waitFor((f) => f.type === T.DATA && f.stream === 3)
    expect(d.payload.toString()).toBe('ok')
    p.close()
  })
})

describe('concurrency', () => {
  it(`streams beyond MAX_CONCURRENT_STREAMS (${MAX_STREAMS}) are refused with RST_STREAM REFUSED_STREAM`, async () => {
    const p = await open()
    const heldBefore = held.length
    const frames: Buffer[] = []
    for (let i = 0; i < MAX_STREAMS + 5; i++) frames.push(p.headers(1 + 2 * i, '/hold'))
    p.write(...frames)
    const refused = await p.waitFor((f) => f.type === T.RST_STREAM)
    expect(refused.stream).toBe(1 + 2 * MAX_STREAMS)
    expect(refused.payload.readUInt32BE(0)).toBe(E.REFUSED_STREAM)
    await until(() => held.length - heldBefore === MAX_STREAMS, 5000, 'held requests upstream')
    for (const r of held.splice(heldBefore)) r.end('released')
    await until(() => p.frames.filter((f) => f.type === T.DATA && (f.flags & F.END_STREAM) !== 0).length === MAX_STREAMS, 5000, 'every stream answered')
    p.close()
  })
})
