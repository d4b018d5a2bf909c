// Upstream connections on raw TCP handles (src/engine/upstream/raw-socket.ts),
// against real TCP peers: what pool.ts and the relays rely on from a socket
// (connect, the read-buffer contract, writes with backpressure, half-close,
// and failures reported with net's codes before the close).

import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { RawUpSocket, rawUpstreams } from '../../src/engine/upstream/raw-socket.ts'
import type { UpSink } from '../../src/engine/upstream/raw-socket.ts'
import { until } from '../support/poll.ts'
import { refusedPort } from '../support/upstream.ts'

/** Everything a socket reported, in order. */
interface Seen {
  events: string[]
  data: Buffer[]
  /** The buffers reads landed in. */
  bufs: Buffer[]
  /** When set, each read answers with a fresh buffer (the bytes are kept), as pool.ts does when a client write still holds them. */
  swap: boolean
  closed: boolean
}

const SINK: UpSink<Seen> = {
  connected: (s) => void s.events.push('connected'),
  read(s, buf, n) {
    s.bufs.push(buf)
    s.data.push(Buffer.from(buf.subarray(0, n)))
    return s.swap ? Buffer.allocUnsafe(64 * 1024) : buf
  },
  drain: (s) => void s.events.push('drain'),
  end: (s) => void s.events.push('end'),
  error: (s, code) => void s.events.push(`error ${code}`),
  close(s) {
    s.events.push('close')
    s.closed = true
  },
}

const cleanup: Array<() => void> = []
afterEach(() => {
  for (const f of cleanup.splice(0)) f()
})

/** A TCP peer on loopback; `onConn` gets each accepted socket. */
async function peer(onConn: (sock: Socket) => void): Promise<number> {
  const socks = new Set<Socket>()
  const server: Server = createServer({ allowHalfOpen: true }, (sock) => {
    socks.add(sock)
    sock.on('error', () => {})
    sock.on('close', () => socks.delete(sock))
    onConn(sock)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanup.push(() => {
    for (const s of socks) s.destroy()
    server.close()
  })
  return (server.address() as AddressInfo).port
}

function open(port: number, swap = false): { sock: RawUpSocket<Seen>; seen: Seen } {
  const seen: Seen = { events: [], data: [], bufs: [], swap, closed: false }
  const sock = new RawUpSocket(SINK)
  sock.connect(seen, '127.0.0.1', 4, port, Buffer.allocUnsafe(64 * 1024))
  cleanup.push(() => sock.destroy())
  return { sock, seen }
}

const received = (seen: Seen): string => Buffer.concat(seen.data).toString('latin1')

describe('raw upstream sockets', () => {
  it('are available on this Node (the engine uses them for plain upstreams)', () => {
    expect(rawUpstreams()).toBe(true)
  })

  it('connect, write a latin1 head and corked buffers, and read the answer', async () => {
    const port = await peer((s) => s.on('data', (d: Buffer) => s.write(d.toString('latin1').toUpperCase(), 'latin1')))
    const { sock, seen } = open(port)
    await until(() => seen.events.includes('connected'), 5000, 'the connect')
    expect(sock.write('get /é\r\n', 'latin1')).toBe(true)
    await until(() => received(seen) === 'GET /É\r\n', 5000, 'the echo of the head')
    sock.cork()
    sock.write(Buffer.from('ab'))
    sock.write('cd', 'latin1')
    sock.write(Buffer.from('ef'))
    sock.uncork()
    await until(() => received(seen).endsWith('ABCDEF'), 5000, 'the echo of the corked writes')
  })

  it('read into the buffer the sink hands back: the same one, or a new one when the bytes are kept', async () => {
    let peerSock: Socket | null = null
    const port = await peer((s) => (peerSock = s))
    const same = open(port)
    await until(() => peerSock !== null && same.seen.events.includes('connected'), 5000, 'the connect')
    for (const part of ['one', 'two']) {
      ;(peerSock as unknown as Socket).write(part)
      await until(() => received(same.seen).endsWith(part), 5000, part)
    }
    expect(same.seen.bufs[0]).toBe(same.seen.bufs[1])

    peerSock = null
    const swapping = open(port, true)
    await until(() => peerSock !== null && swapping.seen.events.includes('connected'), 5000, 'the connect')
    for (const part of ['one', 'two']) {
      ;(peerSock as unknown as Socket).write(part)
      await until(() => received(swapping.seen).endsWith(part), 5000, part)
    }
    expect(swapping.seen.bufs[0]).not.toBe(swapping.seen.bufs[1])
    // The first buffer was left alone by the second read.
    expect((swapping.seen.bufs[0] as Buffer).subarray(0, 3).toString()).toBe('one')
  })

  it('a refused connect reports ECONNREFUSED, then the close, and never connects', async () => {
    const { seen } = open(await refusedPort())
    await until(() => seen.closed, 5000, 'the close')
    expect(seen.events).toEqual(['error ECONNREFUSED', 'close'])
  })

  it('destroyed while connecting: closed without an error', async () => {
    const { sock, seen } = open(await peer(() => {}))
    sock.destroy()
    expect(sock.destroyed).toBe(true)
    await until(() => seen.closed, 5000, 'the close')
    expect(seen.events).toEqual(['close'])
  })

  it('a reset by the peer mid-response reports ECONNRESET after the bytes that came first', async () => {
    const port = await peer((s) =>
      s.once('data', () => {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart', () => setImmediate(() => s.resetAndDestroy()))
      }),
    )
    const { sock, seen } = open(port)
    await until(() => seen.events.includes('connected'), 5000, 'the connect')
    sock.write('GET / HTTP/1.1\r\n\r\n', 'latin1')
    await until(() => seen.closed, 5000, 'the close')
    expect(received(seen)).toMatch(/part$/)
    expect(seen.events).toEqual(['connected', 'error ECONNRESET', 'close'])
  })

  it("the peer's FIN leaves the socket writable; our end() then closes it", async () => {
    const got: Buffer[] = []
    let peerEnded = false
    const port = await peer((s) => {
      s.on('data', (d: Buffer) => got.push(d))
      s.on('end', () => (peerEnded = true))
      s.end('bye')
    })
    const { sock, seen } = open(port)
    await until(() => seen.events.includes('end'), 5000, "the peer's FIN")
    expect(received(seen)).toBe('bye')
    expect(sock.write(Buffer.from('after the FIN'))).toBe(true)
    await until(() => Buffer.concat(got).toString() === 'after the FIN', 5000, 'the write after the FIN')
    expect(seen.closed).toBe(false)
    sock.end()
    await until(() => seen.closed && peerEnded, 5000, 'the close')
    expect(seen.events).toEqual(['connected', 'end', 'close'])
  })

  it('backpressure: write() refuses past 64 KiB pending, drain follows, every byte arrives in order', async () => {
    const payload = randomBytes(8 * 1024 * 1024)
    const got: Buffer[] = []
    let peerSock: Socket | null = null
    const port = await peer((s) => {
      peerSock = s
      s.pause()
      s.on('data', (d: Buffer) => got.push(d))
    })
    const { sock, seen } = open(port)
    await until(() => seen.events.includes('connected') && peerSock !== null, 5000, 'the connect')
    let off = 0
    let refused = 0
    const pump = (): void => {
      while (off < payload.length) {
        const part = payload.subarray(off, off + 16 * 1024)
        off += part.length
        if (!sock.write(part)) {
          refused++
          return
        }
      }
    }
    pump()
    expect(refused).toBe(1)
    // Nothing drains while the peer reads nothing.
    expect(seen.events).toEqual(['connected'])
    ;(peerSock as unknown as Socket).resume()
    while (off < payload.length) {
      const drains = seen.events.filter((e) => e === 'drain').length
      await until(() => seen.events.filter((e) => e === 'drain').length > drains, 10_000, 'a drain')
      pump()
    }
    await until(() => Buffer.concat(got).length === payload.length, 10_000, 'every byte')
    expect(Buffer.concat(got).equals(payload)).toBe(true)
  })

  it('destroySoon() sends what is pending, then the FIN', async () => {
    const payload = randomBytes(2 * 1024 * 1024)
    const got: Buffer[] = []
    let ended = false
    const port = await peer((s) => {
      s.on('data', (d: Buffer) => got.push(d))
      s.on('end', () => (ended = true))
    })
    const { sock, seen } = open(port)
    await until(() => seen.events.includes('connected'), 5000, 'the connect')
    sock.write(payload)
    sock.destroySoon()
    await until(() => ended && seen.closed, 10_000, 'the FIN after the payload')
    expect(Buffer.concat(got).equals(payload)).toBe(true)
    expect(seen.events).toEqual(['connected', 'close'])
  })

  it('pause() stops reading until resume(); isPaused() tells which was last', async () => {
    let peerSock: Socket | null = null
    const port = await peer((s) => (peerSock = s))
    const { sock, seen } = open(port)
    sock.pause()
    expect(sock.isPaused()).toBe(true)
    await until(() => seen.events.includes('connected') && peerSock !== null, 5000, 'the connect')
    let written = false
    ;(peerSock as unknown as Socket).write('held', () => (written = true))
    await until(() => written, 5000, 'the peer to write')
    // On loopback a write taken by the kernel is in the receiver's queue; a round trip on another connection lets a read happen if one would.
    const other = open(port)
    await until(() => other.seen.events.includes('connected'), 5000, 'a second connect')
    expect(received(seen)).toBe('')
    sock.resume()
    expect(sock.isPaused()).toBe(false)
    await until(() => received(seen) === 'held', 5000, 'the held bytes')
  })
})
