// Client sockets read into one buffer shared by every connection of the
// process (src/engine/http1/input.ts). These tests make the proxy hold on to
// client bytes past the read that brought them, the cases where reusing that
// buffer would corrupt data: a body write the upstream does not take at once,
// a body kept for a retry while other clients keep sending, a WebSocket
// tunnel to a slow reader.

import { createHash, randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { httpRequest } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until, within } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import type { TargetSpec } from '../support/snapshot.ts'
import { httpUpstream, rawUpstream } from '../support/upstream.ts'

const MiB = 1024 * 1024
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

const cleanup: Array<() => Promise<unknown> | void> = []
afterAll(async () => {
  for (const f of cleanup.reverse()) await f()
})

async function engineTo(upstreams: TargetSpec[], retryBodyBytes?: number): Promise<StartedEngine> {
  const e = await startEngine(snapshotFor({ routes: [{ upstreams, passive: { failures: 0 } }] }, 1), retryBodyBytes === undefined ? {} : { retryBodyBytes })
  cleanup.push(() => e.stop())
  return e
}

/** Writes `data` in pieces (default 4 KiB), one per event-loop turn, so the proxy reads many small pieces. */
function trickle(sock: Socket, data: Buffer, piece = 4096): Promise<void> {
  return new Promise((resolve, reject) => {
    let i = 0
    const next = (): void => {
      if (sock.destroyed) return reject(new Error('socket closed while writing'))
      if (i >= data.length) return resolve()
      const ok = sock.write(data.subarray(i, i + piece))
      i += piece
      if (ok) setImmediate(next)
      else sock.once('drain', next)
    }
    next()
  })
}

/** A client that keeps sending requests with bodies until stopped, so reads of the shared buffer are soon overwritten. */
function noise(port: number, bytes = 4096): () => void {
  const sock = connect({ port, host: '127.0.0.1' })
  sock.on('error', () => undefined)
  sock.on('data', () => undefined)
  let on = true
  const pump = (): void => {
    if (!on || sock.destroyed) return
    sock.write(`POST /noise HTTP/1.1\r\nHost: noise\r\nContent-Length: ${bytes}\r\n\r\n${'N'.repeat(bytes)}`)
    // Pacing, not waiting: one request every few ms, interleaved with the other client's reads.
    setTimeout(pump, 2)
  }
  pump()
  return () => {
    on = false
    sock.destroy()
  }
}

describe('client bytes the proxy still needs after the read that brought them', () => {
  it('a 16 MiB upload in 4 KiB pieces to an upstream that keeps pausing arrives intact', async () => {
    const body = randomBytes(16 * MiB)
    // Reads the body with pauses, so the proxy's writes to it often stay pending.
    const up = await httpUpstream(
      (req, res) => {
        const h = createHash('sha256')
        let n = 0
        req.on('data', (c: Buffer) => {
          h.update(c)
          n += c.length
          if (n % 8 === 0) {
            req.pause()
            setTimeout(() => req.resume(), 1)
          }
        })
        req.on('end', () => res.end(`${h.digest('hex')} ${n}`))
      },
      { streaming: true },
    )
    cleanup.push(() => up.close())
    const e = await engineTo([{ host: '127.0.0.1', port: up.port }])
    // A second client keeps sending other bytes meanwhile.
    const stopNoise = noise(e.port)
    const sock = connect({ port: e.port, host: '127.0.0.1' })
    try {
      const answer = within(
        new Promise<string>((resolve, reject) => {
          let got = ''
          sock.on('data', (d: Buffer) => {
            got += d.toString('latin1')
            const m = /\r\n\r\n([0-9a-f]{64} \d+)$/.exec(got)
            if (m !== null) resolve(m[1] as string)
          })
          sock.on('error', reject)
        }),
        60_000,
        'the upload answer',
      )
      await new Promise<void>((r) => sock.once('connect', () => r()))
      sock.write(`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`)
      await trickle(sock, body)
      expect(await answer).toBe(`${sha(body)} ${body.length}`)
    } finally {
      stopNoise()
      sock.destroy()
    }
  })

  it('a body kept for a retry is sent again as the client sent it, though other clients sent bodies since', async () => {
    // The first upstream answers GETs at once; it takes each whole POST, waits
    // until the test says so, then answers 503: the proxy sends the POST again
    // to the second upstream, from the body it kept.
    let release: () => void = () => undefined
    const released = new Promise<void>((r) => (release = r))
    let whole = 0
    let posted = false
    const LEN = 30_000
    const bad = await rawUpstream((sock, data, conn) => {
      conn.pending += data.toString('latin1')
      for (;;) {
        const end = conn.pending.indexOf('\r\n\r\n')
        if (end < 0) return
        if (conn.pending.startsWith('GET')) {
          conn.pending = conn.pending.slice(end + 4)
          sock.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nwarm')
          continue
        }
        posted = true
        if (conn.pending.length - end - 4 < LEN) return
        conn.pending = conn.pending.slice(end + 4 + LEN)
        whole++
        void released.then(() => sock.write('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\n\r\nbad'))
      }
    })
    cleanup.push(() => bad.close())
    const good = await httpUpstream((_q, res, body) => res.end(`${sha(body)} ${body.length}`))
    cleanup.push(() => good.close())
    const e = await engineTo([
      { host: '127.0.0.1', port: bad.port, priority: 1 },
      { host: '127.0.0.1', port: good.port, priority: 2 },
    ])
    // An idle pooled connection to the first upstream: the POST's head goes out
    // at once and its body is forwarded read by read, straight from the reads.
    expect((await httpRequest(e.port, '/warm')).text).toBe('warm')
    const body = Buffer.alloc(LEN, 'A')
    const first = connect({ port: e.port, host: '127.0.0.1' })
    first.on('error', () => undefined)
    const answer = within(
      new Promise<string>((resolve) => {
        let got = ''
        first.on('data', (d: Buffer) => {
          got += d.toString('latin1')
          const m = /^HTTP\/1\.1 (\d+)[^]*\r\n\r\n([0-9a-f]{64} \d+)$/.exec(got)
          if (m !== null) resolve(`${m[1]} ${m[2]}`)
        })
      }),
      10_000,
      'the answer to the first POST',
    )
    const others: Socket[] = []
    try {
      first.write(`POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: ${LEN}\r\n\r\n`)
      await until(() => posted, 5000, 'the head of the POST at the first upstream')
      await trickle(first, body)
      await until(() => whole === 1, 5000, 'the first upstream to receive the body')
      // Other bytes, read into the same places the first body was read into.
      const other = Buffer.alloc(4096, 'B')
      for (let i = 0; i < 5; i++) {
        const s = connect({ port: e.port, host: '127.0.0.1' })
        s.on('error', () => undefined)
        others.push(s)
        s.write(`POST /other HTTP/1.1\r\nHost: a\r\nContent-Length: ${LEN}\r\n\r\n`)
        await trickle(s, Buffer.concat(Array.from({ length: Math.ceil(LEN / other.length) }, () => other)).subarray(0, LEN))
      }
      await until(() => whole === 6, 5000, 'the other bodies to reach the first upstream')
      release()
      expect(await answer).toBe(`200 ${sha(body)} ${LEN}`)
    } finally {
      first.destroy()
      for (const s of others) s.destroy()
    }
  })

  it('a WebSocket tunnel whose upstream stops reading, while another client sends, carries every byte intact', async () => {
    const h = createHash('sha256')
    let n = 0
    let upSock: Socket | null = null
    // Answers the upgrade, then does not read until told to, then hashes what comes.
    const up = await rawUpstream((sock, chunk, conn) => {
      if (conn.pending !== 'open') {
        conn.pending += chunk.toString('latin1')
        const end = conn.pending.indexOf('\r\n\r\n')
        if (end < 0) return
        chunk = Buffer.from(conn.pending.slice(end + 4), 'latin1')
        conn.pending = 'open'
        sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
        sock.pause()
        upSock = sock
      }
      h.update(chunk)
      n += chunk.length
    })
    cleanup.push(() => up.close())
    let sunk = 0
    const sink = await httpUpstream((_q, res) => {
      sunk++
      res.end('ok')
    })
    cleanup.push(() => sink.close())
    const e = await startEngine(snapshotFor({ routes: [{ hosts: ['noise'], upstreams: [{ host: '127.0.0.1', port: sink.port }] }, { upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1))
    cleanup.push(() => e.stop())
    const sock = connect({ port: e.port, host: '127.0.0.1' })
    sock.on('error', () => undefined)
    let stopNoise = (): void => undefined
    try {
      const switched = within(
        new Promise<void>((resolve) => {
          let got = ''
          const onData = (d: Buffer): void => {
            got += d.toString('latin1')
            if (got.includes('\r\n\r\n')) {
              sock.off('data', onData)
              resolve()
            }
          }
          sock.on('data', onData)
        }),
        5000,
        'the 101',
      )
      sock.write('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
      await switched
      // Write until everything on the way is full: the proxy then holds a write to the upstream it could not finish.
      const sent = createHash('sha256')
      let total = 0
      let blocked = false
      let drained = false
      let still = 0
      sock.on('drain', () => (drained = true))
      await until(
        () => {
          if (blocked && !drained) return ++still >= 5
          still = 0
          drained = false
          blocked = false
          for (let i = 0; i < 64 && !blocked; i++) {
            const piece = randomBytes(64 * 1024)
            sent.update(piece)
            total += piece.length
            blocked = !sock.write(piece)
          }
          if (total > 512 * MiB) throw new Error('the tunnel never filled up')
          return false
        },
        30_000,
        'the tunnel to fill up',
      )
      // Meanwhile other client input is read, into the same buffer, all of it.
      const sunkBefore = sunk
      stopNoise = noise(e.port, 60 * 1024)
      await until(() => sunk >= sunkBefore + 20, 10_000, 'twenty other requests read and forwarded')
      ;(upSock as Socket | null)?.resume()
      await until(() => n >= total, 30_000, 'the upstream to receive everything')
      expect(n).toBe(total)
      expect(h.digest('hex')).toBe(sent.digest('hex'))
    } finally {
      stopNoise()
      sock.destroy()
    }
  })
})
