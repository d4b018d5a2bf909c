// Request bodies under HTTP/2 flow control tied to the upstream: while the
// upstream does not read, the balancer gives the client no more window than
// the upstream's socket took, so a client cannot push a whole upload into
// the balancer; once the upstream reads, the upload completes byte for
// byte. A raw HTTP/2 peer that sends exactly what the windows allow, a
// node:http upstream that holds the body back.

import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { F, H2Peer, T, frame } from '../support/h2peer.ts'
import { until } from '../support/poll.ts'
import { snapshotWith } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

const TOTAL = 32 * 1024 * 1024

let up: HttpUpstream
let eng: StartedEngine
/** Requests whose body the upstream holds back until release(). */
const held: Array<{ req: IncomingMessage; release: () => void }> = []

beforeAll(async () => {
  up = await httpUpstream(
    (req: IncomingMessage, res: ServerResponse) => {
      req.pause()
      held.push({
        req,
        release: () => {
          const h = createHash('sha256')
          let n = 0
          req.on('data', (d: Buffer) => {
            h.update(d)
            n += d.length
          })
          req.on('end', () => res.end(JSON.stringify({ n, sha: h.digest('hex') })))
          req.resume()
        },
      })
    },
    { streaming: true },
  )
  eng = await startEngine(snapshotWith([{ h2c: true, routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }], 1))
})

afterAll(async () => {
  await eng?.stop()
  await up?.close()
})

/** The windows the balancer gives a raw peer for stream 1, kept up to date from the frames it sends. */
class Windows {
  readonly #p: H2Peer
  #seen = 0
  stream = 65_535
  conn = 65_535
  constructor(p: H2Peer) {
    this.#p = p
  }
  /** How much the peer may have sent on stream 1 in all. */
  allowed(): number {
    const fs = this.#p.frames
    for (; this.#seen < fs.length; this.#seen++) {
      const f = fs[this.#seen] as (typeof fs)[number]
      if (f.type === T.WINDOW_UPDATE && f.stream === 1) this.stream += f.payload.readUInt32BE(0) & 0x7fffffff
      else if (f.type === T.WINDOW_UPDATE && f.stream === 0) this.conn += f.payload.readUInt32BE(0) & 0x7fffffff
      else if (f.type === T.SETTINGS && (f.flags & F.ACK) === 0)
        for (let o = 0; o + 6 <= f.payload.length; o += 6) if (f.payload.readUInt16BE(o) === 4) this.stream += f.payload.readUInt32BE(o + 2) - 65_535
    }
    return Math.min(this.stream, this.conn)
  }
}

describe('uploads to a slow upstream', () => {
  it('the client can send no more than the upstream takes; the whole upload arrives once it reads', async () => {
    const p = await H2Peer.open(eng.port)
    try {
      p.write(p.headers(1, '/upload', { method: 'POST', end: false, extra: [['content-length', String(TOTAL)]] }))
      const piece = Buffer.alloc(16_384)
      for (let i = 0; i < piece.length; i++) piece[i] = (i * 7) & 0xff
      const expected = createHash('sha256')
      for (let off = 0; off < TOTAL; off += piece.length) expected.update(piece)
      let sent = 0
      const w = new Windows(p)
      /** Sends DATA as far as both windows allow; true when it sent anything. */
      const pump = (): boolean => {
        const room = w.allowed() - sent
        let n = Math.floor(Math.min(room, TOTAL - sent) / piece.length)
        const frames: Buffer[] = []
        while (n-- > 0) {
          sent += piece.length
          frames.push(frame(T.DATA, sent === TOTAL ? F.END_STREAM : 0, 1, piece))
        }
        if (frames.length > 0) p.write(...frames)
        return frames.length > 0
      }
      await until(() => (pump(), held.length === 1), 10_000, 'the request at the upstream')
      // Send whatever the balancer allows until it allows no more: the upload stalls.
      let still = 0
      await until(() => (pump() ? (still = 0) : still++, still >= 20), 20_000, 'the upload to stall')
      // What got past flow control: the upstream socket's buffers and one stream window, nowhere near all of it.
      expect(sent).toBeLessThan(TOTAL / 4)
      ;(held.shift() as { release: () => void }).release()
      // From here on, every window update is answered at once.
      p.sock.on('data', () => setImmediate(pump))
      await until(() => (pump(), sent === TOTAL), 60_000, 'the whole upload sent')
      const reply = await p.waitFor((f) => f.type === T.DATA && f.stream === 1 && f.payload.length > 0, 30_000)
      expect(JSON.parse(reply.payload.toString())).toEqual({ n: TOTAL, sha: expected.digest('hex') })
    } finally {
      p.close()
    }
  })
})
