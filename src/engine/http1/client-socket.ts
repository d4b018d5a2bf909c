// Client connections on libuv's TCP handles, without net.Socket.
//
// Accepting a connection through `net` builds a net.Socket: a Duplex stream
// with its readable and writable state, an event emitter and, per write, a
// pass through the Writable machinery. Measured on a bare server that reads
// a request head and answers, that is about half the process's user CPU per
// connection (close: 28 → 14 µs per connection; keep-alive: 6.2 → 2.7 µs per
// request). The proxy needs little of it: reads go to one callback, writes
// are Buffers, and the connection keeps its own state and timers.
//
// So a listener takes the accepted handle straight from the listening
// socket (net.Server still binds, listens and closes; only its accept
// callback is replaced) and wraps it in a ClientSocket: reads into the
// shared buffer (input.ts), writes handed to the handle, with the few
// semantics the connection code relies on kept: write() returns false past
// HIGH_WATER bytes not yet taken by the kernel and 'drain' follows; end()
// sends FIN after pending writes; the socket is destroyed once both sides
// have ended (allowHalfOpen); errored tells an error close from a clean one.
//
// The handles come from `process.binding('tcp_wrap')` and
// `process.binding('stream_wrap')`, the bindings net itself is built on.
// They are not a public API: `load` checks their shape at start-up, and
// where it differs (a Node that changed them) listeners fall back to
// net.Socket with 'data' events (conn.ts): correct, only slower.

import type { Server } from 'node:net'
import { acceptMore, exhausted } from '../accept-batch.ts'
import { afterClose, afterShutdown, afterWrite, own, ownerOf } from '../handle-owner.ts'
import { shared } from './input.ts'

/** The calls the connection code makes on its client socket; net.Socket has them too (the fallback). */
export interface ClientSocket {
  write(data: Buffer): boolean
  cork(): void
  uncork(): void
  pause(): void
  resume(): void
  end(): void
  destroy(): void
  /** No more writes; closed once the pending ones are done (the kernel sends the FIN after them). */
  destroySoon(): void
  /** Closed at once with a TCP reset, not a FIN: the peer cannot take what it got for a complete response (body.MaxResponseBytes). */
  resetAndDestroy(): void
  setKeepAlive(enable: boolean, initialDelayMs: number): void
  /** Non-null once the socket failed (reset, write error). */
  readonly errored: Error | null
  /**
   * Bytes written whose buffers are still referenced: not yet taken by the
   * kernel (a TLS socket: not yet taken by the TLS layer, which encrypts on
   * write).
   */
  readonly writableLength: number
}

/** What a ClientSocket tells its owner; `read` gets the shared buffer and must consume it before returning. */
export interface ClientSink<O> {
  read(owner: O, data: Buffer): void
  end(owner: O): void
  drain(owner: O): void
  close(owner: O): void
}

/** A native write or shutdown request (WriteWrap, ShutdownWrap). */
export interface Req {
  handle: Handle
  oncomplete: (this: Req, status: number) => void
  buffer: Buffer | Buffer[] | null
  bytes: number
}

/** A libuv stream handle as the bindings expose it (TCPWrap; TLSWrap has the same stream calls). */
export interface Handle {
  onread: ((this: Handle) => void) | null
  readStart(): number
  readStop(): number
  writeBuffer(req: Req, data: Buffer): number
  writev(req: Req, chunks: Buffer[], allBuffers: boolean): number
  shutdown(req: Req): number
  close(cb: (this: Handle) => void): void
  /** Closes with a TCP reset (uv_tcp_close_reset); non-zero when it could not (then close()). */
  reset(cb: (this: Handle) => void): number
  useUserBuffer(buf: Uint8Array): void
  getpeername(out: { address?: string }): number
  setNoDelay(on: boolean): number
  setKeepAlive(on: boolean, delaySecs: number): number
}

export interface Bindings {
  WriteWrap: new () => Req
  ShutdownWrap: new () => Req
  state: Int32Array
  kRead: number
  kAsync: number
  eof: number
}

const HANDLE_METHODS = ['readStart', 'readStop', 'writeBuffer', 'writev', 'shutdown', 'close', 'reset', 'useUserBuffer', 'getpeername', 'setNoDelay', 'setKeepAlive']

function load(): Bindings | null {
  try {
    const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding
    if (typeof binding !== 'function') return null
    const sw = binding('stream_wrap')
    const tcp = binding('tcp_wrap')
    const uv = binding('uv')
    const TCP = tcp.TCP as { prototype: Record<string, unknown> } | undefined
    if (TCP === undefined || HANDLE_METHODS.some((m) => typeof TCP.prototype[m] !== 'function')) return null
    const state = sw.streamBaseState
    if (!(state instanceof Int32Array) || typeof sw.WriteWrap !== 'function' || typeof sw.ShutdownWrap !== 'function') return null
    if (typeof sw.kReadBytesOrError !== 'number' || typeof sw.kLastWriteWasAsync !== 'number' || typeof uv.UV_EOF !== 'number') return null
    return {
      WriteWrap: sw.WriteWrap as Bindings['WriteWrap'],
      ShutdownWrap: sw.ShutdownWrap as Bindings['ShutdownWrap'],
      state,
      kRead: sw.kReadBytesOrError,
      kAsync: sw.kLastWriteWasAsync,
      eof: uv.UV_EOF,
    }
  } catch {
    return null
  }
}

const B = load()
let enabled = B !== null

/** Turns raw handles off (or back on, where available) for listeners bound from now on: the fallback's tests. */
export function useRawSockets(on: boolean): void {
  enabled = on && B !== null
}

/** net.Socket's default writable high-water mark: write() returns false from here on. */
const HIGH_WATER = 64 * 1024

/**
 * A write request object is bound to the native side only when the write
 * goes asynchronous (the kernel did not take everything at once); until
 * then the same object serves the next write.
 */
let spare: Req | null = null

/** A write request for `handle`: the spare one if no pending write holds it. */
function writeReq(handle: Handle): Req {
  const req = spare ?? new (B as Bindings).WriteWrap()
  req.handle = handle
  req.oncomplete = afterWrite
  return req
}

function onRead(this: Handle): void {
  const s = ownerOf<RawClientSocket<unknown>>(this)
  if (s !== null) s.onRead((B as Bindings).state[(B as Bindings).kRead] as number)
}

function drainSoon(s: RawClientSocket<unknown>): void {
  s.drained()
}

function uvError(op: string, code: number): Error {
  const err = new Error(`${op} failed (${code})`) as NodeJS.ErrnoException
  err.errno = code
  return err
}

/** RawClientSocket's flags. */
const F = {
  NeedDrain: 1,
  Reading: 2,
  /** The client's FIN arrived. */
  ReadEnded: 4,
  /** end() was called: no more writes. */
  Ending: 8,
  /** Our FIN is out. */
  ShutDown: 16,
  /** destroySoon() was called: destroy once nothing is queued. */
  DestroyWhenFlushed: 32,
  Closing: 64,
} as const

export class RawClientSocket<O> implements ClientSocket {
  readonly #handle: Handle
  #sink: ClientSink<O>
  #owner: O | null = null
  errored: Error | null = null
  /** Bytes handed to the handle that the kernel has not taken yet. */
  #queued = 0
  /** Writes held by cork(), sent as one writev by uncork(). */
  #corked: Buffer[] | null = null
  #corkedBytes = 0
  /** F bits: one field for seven flags, 48 bytes less per connection than seven fields. */
  #flags = 0

  constructor(handle: Handle, sink: ClientSink<O>) {
    this.#handle = handle
    this.#sink = sink
    own(handle, this)
  }

  /** The peer's address ('' when the socket is already gone). */
  remoteAddress(): string {
    const out: { address?: string } = {}
    return this.#handle.getpeername(out) === 0 ? (out.address ?? '') : ''
  }

  /** Starts reading into the shared buffer, `owner` hearing about everything from now on. */
  start(owner: O): void {
    this.#owner = owner
    const h = this.#handle
    h.onread = onRead
    h.useUserBuffer(shared)
    this.resume()
  }

  get writableLength(): number {
    return this.#queued + this.#corkedBytes
  }

  /** Another protocol takes the connection over (h2c after its preface): `owner` and `sink` hear everything from now on. */
  retarget<P>(owner: P, sink: ClientSink<P>): void {
    this.#owner = owner as unknown as O
    this.#sink = sink as unknown as ClientSink<O>
  }

  write(data: Buffer): boolean {
    if ((this.#flags & (F.Ending | F.Closing)) !== 0) return false
    const corked = this.#corked
    if (corked !== null) {
      corked.push(data)
      this.#corkedBytes += data.length
      if (this.#queued + this.#corkedBytes < HIGH_WATER) return true
      this.#flags |= F.NeedDrain
      return false
    }
    const req = writeReq(this.#handle)
    const err = this.#handle.writeBuffer(req, data)
    return this.#dispatched(req, err, data, data.length)
  }

  #dispatched(req: Req, err: number, data: Buffer | Buffer[], bytes: number): boolean {
    const b = B as Bindings
    if (err !== 0) {
      spare = null // it may have been bound to the native side before the write failed
      this.#fail(uvError('write', err))
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
    this.#flags |= F.NeedDrain
    return false
  }

  afterWrite(bytes: number, status: number): void {
    this.#queued -= bytes
    if ((this.#flags & F.Closing) !== 0) return // a write cancelled by destroy(): not an error of the connection
    if (status < 0) {
      this.#fail(uvError('write', status))
      return
    }
    if ((this.#flags & F.DestroyWhenFlushed) !== 0 && this.#queued === 0) this.destroy()
    else this.drained()
  }

  /** Tells the owner the writes it was refused may go on, if it was refused and they may. */
  drained(): void {
    if ((this.#flags & (F.NeedDrain | F.Closing)) === F.NeedDrain && this.#queued === 0) {
      this.#flags &= ~F.NeedDrain
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
    if (chunks.length === 0 || (this.#flags & F.Closing) !== 0) return
    if (chunks.length === 1) {
      this.write(chunks[0] as Buffer)
    } else {
      const req = writeReq(this.#handle)
      const err = this.#handle.writev(req, chunks, true)
      this.#dispatched(req, err, chunks, bytes)
    }
    // A write refused while corked may have gone out at once: 'drain' is still owed.
    if ((this.#flags & F.NeedDrain) !== 0 && this.#queued === 0) process.nextTick(drainSoon, this)
  }

  pause(): void {
    if ((this.#flags & F.Reading) === 0) return
    this.#flags &= ~F.Reading
    this.#handle.readStop()
  }

  resume(): void {
    if ((this.#flags & (F.Reading | F.ReadEnded | F.Closing)) !== 0) return
    this.#flags |= F.Reading
    const err = this.#handle.readStart()
    if (err !== 0) this.#fail(uvError('read', err))
  }

  end(): void {
    if ((this.#flags & (F.Ending | F.Closing)) !== 0) return
    this.uncork()
    this.#flags |= F.Ending
    const req = new (B as Bindings).ShutdownWrap()
    req.handle = this.#handle
    req.oncomplete = afterShutdown
    const err = this.#handle.shutdown(req)
    if (err === 1)
      this.afterShutdown(0) // done at once
    else if (err !== 0) this.#fail(uvError('shutdown', err))
  }

  afterShutdown(status: number): void {
    if ((this.#flags & F.Closing) !== 0) return
    if (status < 0) {
      this.#fail(uvError('shutdown', status))
      return
    }
    this.#flags |= F.ShutDown
    if ((this.#flags & F.ReadEnded) !== 0) this.destroy()
  }

  // Without a shutdown first: close() alone makes the kernel send what it
  // holds and then the FIN, one syscall and one wakeup fewer per connection.
  destroySoon(): void {
    if ((this.#flags & F.Closing) !== 0) return
    this.uncork()
    this.#flags |= F.Ending | F.DestroyWhenFlushed
    if (this.#queued === 0) this.destroy()
  }

  setKeepAlive(enable: boolean, initialDelayMs: number): void {
    if ((this.#flags & F.Closing) === 0) this.#handle.setKeepAlive(enable, Math.floor(initialDelayMs / 1000))
  }

  onRead(n: number): void {
    if ((this.#flags & F.Closing) !== 0) return
    const owner = this.#owner
    if (n > 0) {
      if (owner !== null) this.#sink.read(owner, shared.subarray(0, n))
      return
    }
    if (n === 0) return
    if (n !== (B as Bindings).eof) {
      this.#fail(uvError('read', n))
      return
    }
    // libuv stops reading at end of stream.
    this.#flags = (this.#flags & ~F.Reading) | F.ReadEnded
    if (owner !== null) this.#sink.end(owner)
    if ((this.#flags & (F.ShutDown | F.Closing)) === F.ShutDown) this.destroy()
  }

  #fail(err: Error): void {
    this.errored ??= err
    this.destroy()
  }

  destroy(): void {
    this.#close(false)
  }

  resetAndDestroy(): void {
    this.#close(true)
  }

  #close(reset: boolean): void {
    if ((this.#flags & F.Closing) !== 0) return
    this.#flags |= F.Closing
    this.#corked = null
    this.#corkedBytes = 0
    if ((this.#flags & F.Reading) !== 0) {
      this.#flags &= ~F.Reading
      this.#handle.readStop()
    }
    if (!reset || this.#handle.reset(afterClose) !== 0) this.#handle.close(afterClose)
  }

  afterClose(): void {
    const owner = this.#owner
    this.#owner = null
    if (owner !== null) this.#sink.close(owner)
  }
}

/**
 * Makes `server` (listening) hand each accepted TCP handle to `onHandle`
 * instead of building a net.Socket, with the rest of a burst taken in the
 * same turn (accept-batch.ts). False when raw handles are off or the
 * server's handle is not what this module knows.
 */
export function acceptHandles(server: Server, onHandle: (handle: Handle) => void): boolean {
  if (!enabled) return false
  const listening = (server as unknown as { _handle: { onconnection?: unknown; setNoDelay?: unknown; readonly fd: number } | null })._handle
  if (listening === null || typeof listening.onconnection !== 'function') return false
  // Linux gives accepted sockets the listening socket's TCP_NODELAY: set
  // once here, not with a setsockopt per connection.
  const inherited = process.platform === 'linux' && typeof listening.setNoDelay === 'function' && listening.setNoDelay(true) === 0
  const take = inherited
    ? onHandle
    : (handle: Handle): void => {
        handle.setNoDelay(true)
        onHandle(handle)
      }
  listening.onconnection = (err: number, handle: Handle | undefined): void => {
    if (err !== 0 || handle === undefined) {
      // Out of descriptors: libuv has already closed the waiting
      // connections; reported through the counters, not once per turn.
      if (!exhausted(err)) server.emit('error', uvError('accept', err))
      return
    }
    take(handle)
    acceptMore(listening, take)
  }
  return true
}

/**
 * Makes `server` (listening) hand each accepted connection to `onSocket`
 * as a RawClientSocket instead of building a net.Socket. False when raw
 * handles are off or the server's handle is not what this module knows.
 */
export function acceptRaw<O>(server: Server, sink: ClientSink<O>, onSocket: (sock: RawClientSocket<O>) => void): boolean {
  return acceptHandles(server, (handle) => onSocket(new RawClientSocket(handle, sink)))
}

/** The stream bindings the raw sockets use, or null where this Node's differ (then nothing here is used). */
export function streamBindings(): Bindings | null {
  return enabled ? B : null
}

/** The stream bindings whether or not client sockets use them (upstream sockets have their own switch), or null where this Node's differ. */
export function loadedStreamBindings(): Bindings | null {
  return B
}
