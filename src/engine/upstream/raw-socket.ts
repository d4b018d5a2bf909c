// Plain upstream connections on libuv's TCP handles, without net.Socket.
//
// What client connections gained by leaving net.Socket
// (http1/client-socket.ts), upstream connections pay the same way: per
// connection a Duplex stream with its readable and writable state and an
// event emitter, five listeners bound to it, and its destroy sequence; per
// write a pass through the Writable machinery; per read net's read-path
// bookkeeping. The relay needs little of it, so here a TCP handle is
// connected with its own connect (a TCPConnectWrap, to an IP address:
// upstreams named by a host name stay on net.connect, which resolves the
// name per connection as it always did), reads go to one callback into the
// connection's buffer, and writes are handed to the handle.
//
// Semantics kept from net.Socket (what pool.ts and the relays rely on):
// write() returns false past HIGH_WATER bytes not yet taken by the kernel
// and 'drain' follows once they are; cork()/uncork() send what was written
// in between as one writev; a latin1 string (a request head) is written
// without a Buffer made of it; pause()/resume() stop and start reading, and
// isPaused() tells whether pause() was the last of the two; end() sends FIN
// after pending writes; the connection is closed once both sides have ended
// (allowHalfOpen); an error (refused connect, reset, failed write) is
// reported with its code (ECONNREFUSED, ECONNRESET, ...) before the close.
//
// The read buffer contract is pool.ts's: each read lands in the buffer the
// sink handed back after the previous one (the same one unless the bytes it
// received are still referenced), which the native side is told by the
// read callback's return value.
//
// The bindings are the ones net is built on (`process.binding('tcp_wrap')`,
// `'stream_wrap'`); their shape is checked at start-up, and where it
// differs upstream connections stay on net.connect (pool.ts).

import type { Bindings, Handle, Req } from '../http1/client-socket.ts'
import { afterClose, afterShutdown, afterWrite, own, ownerOf } from '../handle-owner.ts'
import { loadedStreamBindings } from '../http1/client-socket.ts'

// Taken from the module object, not by an ES import: that builds node:util's
// namespace, whose getters load a dozen modules the engine never uses (1 MiB).
const { getSystemErrorName } = process.getBuiltinModule('node:util')

/** The calls the relays make on an upstream socket; net.Socket has them too (TLS upstreams, host names, the fallback). */
export interface UpSocket {
  write(data: Buffer): boolean
  write(data: string, encoding: 'latin1'): boolean
  cork(): void
  uncork(): void
  pause(): void
  resume(): void
  isPaused(): boolean
  end(): void
  destroy(): void
  /** Closed once the pending writes are out (the kernel sends the FIN after them). */
  destroySoon(): void
  setKeepAlive(enable: boolean, initialDelayMs: number): void
  readonly destroyed: boolean
}

/** What a RawUpSocket tells its owner; the owner's fields say what it is attached to. */
export interface UpSink<O> {
  connected(owner: O): void
  /** `n` bytes arrived at the start of `buf`; returns the buffer the next read goes into. */
  read(owner: O, buf: Buffer, n: number): Buffer
  drain(owner: O): void
  /** The upstream's FIN. */
  end(owner: O): void
  /** The socket failed (connect, read or write): `code` as net gives it; the close follows. */
  error(owner: O, code: string): void
  close(owner: O): void
}

interface TcpHandle extends Handle {
  connect(req: ConnectReq, address: string, port: number): number
  connect6(req: ConnectReq, address: string, port: number): number
  writeLatin1String(req: Req, s: string): number
}

interface ConnectReq {
  oncomplete: (status: number, handle: TcpHandle) => void
}

interface TcpBindings {
  TCP: new (type: number) => TcpHandle
  TCPConnectWrap: new () => ConnectReq
  socketType: number
  stream: Bindings
}

function load(): TcpBindings | null {
  try {
    const stream = loadedStreamBindings()
    const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding
    if (stream === null || typeof binding !== 'function') return null
    const tcp = binding('tcp_wrap')
    const TCP = tcp.TCP as { prototype: Record<string, unknown> } | undefined
    const constants = tcp.constants as { SOCKET?: unknown } | undefined
    if (TCP === undefined || typeof tcp.TCPConnectWrap !== 'function' || typeof constants?.SOCKET !== 'number') return null
    if (['connect', 'connect6', 'writeLatin1String'].some((m) => typeof TCP.prototype[m] !== 'function')) return null
    return { TCP: tcp.TCP as TcpBindings['TCP'], TCPConnectWrap: tcp.TCPConnectWrap as TcpBindings['TCPConnectWrap'], socketType: constants.SOCKET, stream }
  } catch {
    return null
  }
}

const T = load()
let enabled = T !== null

/** Turns raw upstream sockets off (or back on, where available) for connections opened from now on: the fallback's tests. */
export function useRawUpstreams(on: boolean): void {
  enabled = on && T !== null
}

/** New plain connections to IP addresses go on raw handles. */
export function rawUpstreams(): boolean {
  return enabled
}

/** net.Socket's default writable high-water mark: write() returns false from here on. */
const HIGH_WATER = 64 * 1024

/** A write request not bound to the native side (its write finished at once) serves the next write. */
let spare: Req | null = null

function writeReq(handle: Handle): Req {
  const req = spare ?? new (T as TcpBindings).stream.WriteWrap()
  req.handle = handle
  req.oncomplete = afterWrite
  return req
}

function afterConnect(status: number, handle: TcpHandle): void {
  const s = ownerOf<RawUpSocket<unknown>>(handle)
  if (s !== null) s.afterConnect(status)
}

/** The return value becomes the handle's read buffer (undefined: the same one). */
function onRead(this: Handle): Buffer | undefined {
  const s = ownerOf<RawUpSocket<unknown>>(this)
  if (s === null) return undefined
  const b = (T as TcpBindings).stream
  return s.onRead(b.state[b.kRead] as number)
}

function failSoon(s: RawUpSocket<unknown>, status: number): void {
  s.fail(status)
}

function drainSoon(s: RawUpSocket<unknown>): void {
  s.drained()
}

export class RawUpSocket<O> implements UpSocket {
  readonly #handle: TcpHandle
  readonly #sink: UpSink<O>
  #owner: O | null = null
  /** Where the next read lands (the handle's user buffer). */
  #buf: Buffer | null = null
  #connecting = true
  /** pause() was called after the last resume(). */
  #paused = false
  #reading = false
  /** Bytes handed to the handle that the kernel has not taken yet. */
  #queued = 0
  #needDrain = false
  /** Writes held by cork(), sent as one writev by uncork(). */
  #corked: Buffer[] | null = null
  #corkedBytes = 0
  /** The upstream's FIN arrived. */
  #readEnded = false
  /** end() was called: no more writes. */
  #ending = false
  /** Our FIN is out. */
  #shutDown = false
  /** destroySoon() was called: destroy once nothing is queued. */
  #destroyWhenFlushed = false
  #closing = false
  #failed = false

  constructor(sink: UpSink<O>) {
    const t = T as TcpBindings
    this.#sink = sink
    this.#handle = new t.TCP(t.socketType)
    own(this.#handle, this)
  }

  /**
   * Connects to `address` (an IP address of `family` 4 or 6), `owner`
   * hearing about everything from now on; reads land in `buf` first.
   * A failure is reported asynchronously, as every other event.
   */
  connect(owner: O, address: string, family: number, port: number, buf: Buffer): void {
    const t = T as TcpBindings
    const h = this.#handle
    this.#owner = owner
    this.#buf = buf
    // Kept by libuv until the socket exists, then set on it with the connect.
    h.setNoDelay(true)
    h.onread = onRead as (this: Handle) => void
    h.useUserBuffer(buf)
    const req = new t.TCPConnectWrap()
    req.oncomplete = afterConnect
    const err = family === 6 ? h.connect6(req, address, port) : h.connect(req, address, port)
    if (err !== 0) process.nextTick(failSoon, this, err)
  }

  get destroyed(): boolean {
    return this.#closing
  }

  afterConnect(status: number): void {
    if (this.#closing) return // destroyed while connecting (a connect timeout): the close reports it
    if (status < 0) return this.fail(status)
    this.#connecting = false
    this.#startReading()
    if (this.#owner !== null) this.#sink.connected(this.#owner)
  }

  write(data: Buffer | string, _encoding?: 'latin1'): boolean {
    if (this.#ending || this.#closing) return false
    const corked = this.#corked
    if (corked !== null) {
      const b = typeof data === 'string' ? Buffer.from(data, 'latin1') : data
      corked.push(b)
      this.#corkedBytes += b.length
      if (this.#queued + this.#corkedBytes < HIGH_WATER) return true
      this.#needDrain = true
      return false
    }
    const req = writeReq(this.#handle)
    if (typeof data === 'string') {
      // The native side copies what the kernel does not take at once: nothing to keep referenced.
      return this.#dispatched(req, this.#handle.writeLatin1String(req, data), null, data.length)
    }
    return this.#dispatched(req, this.#handle.writeBuffer(req, data), data, data.length)
  }

  #dispatched(req: Req, err: number, data: Buffer | Buffer[] | null, bytes: number): boolean {
    const b = (T as TcpBindings).stream
    if (err !== 0) {
      spare = null // it may have been bound to the native side before the write failed
      this.fail(err)
      return false
    }
    if (b.state[b.kAsync] === 0) {
      spare = req
    } else {
      // Pending: the native write points into `data` until it completes.
      spare = null
      req.buffer = data
      req.bytes = bytes
      this.#queued += bytes
    }
    if (this.#queued < HIGH_WATER) return true
    this.#needDrain = true
    return false
  }

  afterWrite(bytes: number, status: number): void {
    this.#queued -= bytes
    if (this.#closing) return // a write cancelled by destroy(): not an error of the connection
    if (status < 0) return this.fail(status)
    if (this.#destroyWhenFlushed && this.#queued === 0) this.destroy()
    else this.drained()
  }

  /** Tells the owner the writes it was refused may go on, if it was refused and they may. */
  drained(): void {
    if (this.#needDrain && this.#queued === 0 && !this.#closing) {
      this.#needDrain = false
      if (this.#owner !== null) this.#sink.drain(this.#owner)
    }
  }

  cork(): void {
    this.#corked ??= []
  }

  uncork(): void {
    const chunks = this.#corked
    if (chunks === null) return
    this.#corked = null
    const bytes = this.#corkedBytes
    this.#corkedBytes = 0
    if (chunks.length === 0 || this.#closing) return
    if (chunks.length === 1) {
      this.write(chunks[0] as Buffer)
    } else {
      const req = writeReq(this.#handle)
      this.#dispatched(req, this.#handle.writev(req, chunks, true), chunks, bytes)
    }
    // A write refused while corked may have gone out at once: 'drain' is still owed.
    if (this.#needDrain && this.#queued === 0) process.nextTick(drainSoon, this)
  }

  pause(): void {
    this.#paused = true
    if (!this.#reading) return
    this.#reading = false
    this.#handle.readStop()
  }

  resume(): void {
    this.#paused = false
    if (!this.#connecting) this.#startReading()
  }

  isPaused(): boolean {
    return this.#paused
  }

  #startReading(): void {
    if (this.#reading || this.#paused || this.#readEnded || this.#closing) return
    this.#reading = true
    const err = this.#handle.readStart()
    if (err !== 0) this.fail(err)
  }

  end(): void {
    if (this.#ending || this.#closing) return
    this.uncork()
    this.#ending = true
    const req = new (T as TcpBindings).stream.ShutdownWrap()
    req.handle = this.#handle
    req.oncomplete = afterShutdown
    const err = this.#handle.shutdown(req)
    if (err === 1)
      this.afterShutdown(0) // done at once
    else if (err !== 0) this.fail(err)
  }

  afterShutdown(status: number): void {
    if (this.#closing) return
    if (status < 0) return this.fail(status)
    this.#shutDown = true
    if (this.#readEnded) this.destroy()
  }

  // Without a shutdown first: close() alone makes the kernel send what it
  // holds and then the FIN.
  destroySoon(): void {
    if (this.#closing) return
    this.uncork()
    this.#ending = true
    this.#destroyWhenFlushed = true
    if (this.#queued === 0) this.destroy()
  }

  setKeepAlive(enable: boolean, initialDelayMs: number): void {
    if (!this.#closing) this.#handle.setKeepAlive(enable, Math.floor(initialDelayMs / 1000))
  }

  onRead(n: number): Buffer | undefined {
    if (this.#closing) return undefined
    const owner = this.#owner
    if (n > 0) {
      if (owner === null) return undefined
      const buf = this.#buf as Buffer
      const next = this.#sink.read(owner, buf, n)
      if (next === buf) return undefined
      this.#buf = next
      return next
    }
    if (n === 0) return undefined
    if (n !== (T as TcpBindings).stream.eof) {
      this.fail(n)
      return undefined
    }
    // libuv stops reading at end of stream.
    this.#reading = false
    this.#readEnded = true
    if (owner !== null) this.#sink.end(owner)
    if (this.#shutDown && !this.#closing) this.destroy()
    return undefined
  }

  /** A libuv error (negative errno): reported once with its code, then closed. */
  fail(status: number): void {
    if (this.#closing) return
    if (!this.#failed && this.#owner !== null) {
      this.#failed = true
      this.#sink.error(this.#owner, getSystemErrorName(status))
    }
    this.destroy()
  }

  destroy(): void {
    if (this.#closing) return
    this.#closing = true
    this.#corked = null
    this.#corkedBytes = 0
    if (this.#reading) {
      this.#reading = false
      this.#handle.readStop()
    }
    this.#handle.close(afterClose)
  }

  afterClose(): void {
    const owner = this.#owner
    this.#owner = null
    this.#buf = null
    if (owner !== null) this.#sink.close(owner)
  }
}
