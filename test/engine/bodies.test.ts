// Large bodies stream through intact in both directions, and a slow reader
// pushes back on the upstream instead of the proxy buffering the response.

import { createHash, randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { httpGet, httpRequest } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until, within } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { httpUpstream, rawUpstream } from '../support/upstream.ts'
import type { HttpUpstream, RawUpstream } from '../support/upstream.ts'

const MiB = 1024 * 1024
const BIG = randomBytes(20 * MiB)
const BIG_SHA = createHash('sha256').update(BIG).digest('hex')
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Streams the request body into a hash and answers `<sha256> <bytes>`; GET /cl and /chunked send BIG back. */
async function bigUpstream(): Promise<HttpUpstream> {
  return httpUpstream(
    (req, res) => {
      if (req.method === 'GET' && req.url === '/cl') {
        res.writeHead(200, { 'content-length': BIG.length })
        res.end(BIG)
        return
      }
      if (req.method === 'GET' && req.url === '/trickle') {
        // 4 KiB at a time, so the proxy reads small pieces: a write to a full
        // client then stays pending below the socket's high-water mark.
        res.writeHead(200, { 'content-length': BIG.length })
        let i = 0
        const next = (): void => {
          while (i < BIG.length) {
            const ok = res.write(BIG.subarray(i, i + 4096))
            i += 4096
            if (!ok) return void res.once('drain', next)
            return void setImmediate(next)
          }
          res.end()
        }
        next()
        return
      }
      if (req.method === 'GET' && req.url === '/chunked') {
        for (let i = 0; i < BIG.length; i += MiB) res.write(BIG.subarray(i, i + MiB))
        res.end()
        return
      }
      const h = createHash('sha256')
      let n = 0
      req.on('data', (c: Buffer) => {
        h.update(c)
        n += c.length
      })
      req.on('end', () => res.end(`${h.digest('hex')} ${n}`))
    },
    { streaming: true },
  )
}

let up: HttpUpstream
let closer: RawUpstream
let eng: StartedEngine
let closerEng: StartedEngine

beforeAll(async () => {
  up = await bigUpstream()
  // HTTP/1.1 response without Content-Length or chunking: the body ends when the upstream closes.
  closer = await rawUpstream((sock, data, conn) => {
    conn.pending += data.toString('latin1')
    if (!conn.pending.includes('\r\n\r\n')) return
    conn.pending = ''
    sock.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n')
    sock.end(BIG)
  })
  eng = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1))
  closerEng = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: closer.port }] }] }, 1))
})
afterAll(async () => {
  await eng?.stop()
  await closerEng?.stop()
  await up?.close()
  await closer?.close()
})

describe('20 MiB request bodies arrive intact', () => {
  it('with Content-Length', async () => {
    const r = await httpRequest(eng.port, '/upload', { 'content-length': BIG.length }, { method: 'POST', body: BIG, timeoutMs: 20_000 })
    expect(r.status).toBe(200)
    expect(r.text).toBe(`${BIG_SHA} ${BIG.length}`)
  })

  it('chunked', async () => {
    const text = await within(
      new Promise<string>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: eng.port, path: '/upload', method: 'POST', headers: { 'transfer-encoding': 'chunked' } })
        req.on('error', reject)
        req.on('response', (res) => {
          let s = ''
          res.setEncoding('utf8')
          res.on('data', (c: string) => (s += c))
          res.on('end', () => resolve(`${res.statusCode} ${s}`))
        })
        for (let i = 0; i < BIG.length; i += 3 * MiB + 17) req.write(BIG.subarray(i, i + 3 * MiB + 17))
        req.end()
      }),
      20_000,
      'chunked upload',
    )
    expect(text).toBe(`200 ${BIG_SHA} ${BIG.length}`)
  })
})

describe('20 MiB response bodies arrive intact', () => {
  it('with Content-Length', async () => {
    const r = await httpGet(eng.port, '/cl', {}, { timeoutMs: 20_000 })
    expect(r.status).toBe(200)
    expect(r.headers['content-length']).toBe(String(BIG.length))
    expect(sha(r.body)).toBe(BIG_SHA)
  })

  it('chunked', async () => {
    const r = await httpGet(eng.port, '/chunked', {}, { timeoutMs: 20_000 })
    expect(r.status).toBe(200)
    expect(sha(r.body)).toBe(BIG_SHA)
  })

  it('to a client that keeps pausing, so the proxy often cannot write at once, with Content-Length and chunked', async () => {
    // Every few chunks the reader stops for a moment: the proxy's writes to it
    // queue up while it keeps reading from the upstream, which must not
    // overwrite bytes still waiting to be sent.
    const slowRead = (path: string): Promise<Buffer> =>
      within(
        new Promise<Buffer>((resolve, reject) => {
          const sock = connect({ port: eng.port, host: '127.0.0.1' })
          const parts: Buffer[] = []
          let n = 0
          sock.on('error', reject)
          sock.on('data', (d: Buffer) => {
            parts.push(d)
            if (++n % 32 === 0) {
              sock.pause()
              setTimeout(() => sock.resume(), 20)
            }
          })
          sock.on('end', () => resolve(Buffer.concat(parts)))
          sock.write(`GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`)
        }),
        30_000,
        `slow download of ${path}`,
      )
    const tr = await slowRead('/trickle')
    const trBody = tr.subarray(tr.indexOf('\r\n\r\n') + 4)
    expect(trBody.length).toBe(BIG.length)
    expect(sha(trBody)).toBe(BIG_SHA)

    const cl = await slowRead('/cl')
    const clBody = cl.subarray(cl.indexOf('\r\n\r\n') + 4)
    expect(clBody.length).toBe(BIG.length)
    expect(sha(clBody)).toBe(BIG_SHA)

    const ch = await slowRead('/chunked')
    let p = ch.indexOf('\r\n\r\n') + 4
    const pieces: Buffer[] = []
    for (;;) {
      const eol = ch.indexOf('\r\n', p)
      const size = Number.parseInt(ch.toString('latin1', p, eol), 16)
      if (size === 0) break
      pieces.push(ch.subarray(eol + 2, eol + 2 + size))
      p = eol + 2 + size + 2
    }
    expect(sha(Buffer.concat(pieces))).toBe(BIG_SHA)
  })

  it('delimited by the upstream closing the connection', async () => {
    const r = await httpGet(closerEng.port, '/', {}, { timeoutMs: 20_000 })
    expect(r.status).toBe(200)
    expect(r.body.length).toBe(BIG.length)
    expect(sha(r.body)).toBe(BIG_SHA)
  })
})

describe('backpressure', () => {
  it('a client that does not read stalls the upstream instead of the proxy buffering 64 MiB', async () => {
    const TOTAL = 64 * MiB
    const piece = Buffer.alloc(64 * 1024, 0x61)
    const w = { written: 0, waitingForDrain: false, finished: false }
    const slow = await httpUpstream(
      (_req, res) => {
        res.writeHead(200, { 'content-length': TOTAL })
        const pump = (): void => {
          w.waitingForDrain = false
          while (w.written < TOTAL) {
            w.written += piece.length
            if (!res.write(piece)) {
              w.waitingForDrain = true
              res.once('drain', pump)
              return
            }
          }
          res.end(() => (w.finished = true))
        }
        pump()
      },
      { streaming: true },
    )
    const e = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: slow.port }] }] }, 1))
    const sock = connect({ port: e.port, host: '127.0.0.1' })
    try {
      let received = 0
      sock.on('data', (d: Buffer) => (received += d.length))
      sock.pause()
      sock.on('error', () => {})
      sock.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n')

      // The upstream must end up blocked on 'drain' with its count no longer moving.
      let last = -1
      let still = 0
      await until(
        () => {
          if (w.finished) throw new Error(`the upstream wrote all ${TOTAL} bytes while the client read ${received}`)
          still = w.waitingForDrain && w.written === last ? still + 1 : 0
          last = w.written
          return still >= 30
        },
        15_000,
        'the upstream to stall on backpressure',
      )
      expect(w.finished).toBe(false)
      expect(w.written).toBeLessThan(TOTAL)

      // Once the client reads, everything flows.
      sock.resume()
      await until(() => w.finished && received >= TOTAL, 20_000, 'the rest of the body after the client resumes')
      expect(received).toBeGreaterThan(TOTAL)
    } finally {
      sock.destroy()
      await e.stop()
      await slow.close()
    }
  })
})
