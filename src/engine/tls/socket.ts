// TLS client connections on raw handles: the accepted TCP handle wrapped in
// Node's TLSWrap (`process.binding('tls_wrap')`, what tls.TLSSocket is built
// on), without a net.Socket under it nor a TLSSocket over it. tls.Server
// makes both for every connection: two Duplex streams, their state machines
// and event emitters, a closure per callback, and every write through the
// Writable machinery; the connection code needs none of it, the same case
// as plain connections (http1/client-socket.ts).
//
// TLSWrap is itself a stream handle (read into the shared buffer, write,
// shutdown), with three differences this class absorbs:
//  - it takes one write at a time (a second one while the first is pending
//    aborts the process), and completes every write asynchronously: writes
//    made meanwhile are queued here and go out as one writev;
//  - a close goes to the TCP handle, then the TLS state is freed
//    (destroySSL), as TLSSocket does;
//  - our end is a close_notify alert before the FIN (TLSWrap's shutdown).
// Its handshake callbacks (onhandshakedone, onerror, oncertcb) are module
// functions that find the socket through a field on the handle.
//
// The shape of these bindings is checked at start-up (`tlsBindings`, bindings.ts); where
// it differs, TLS listeners fall back to tls.TLSSocket (fallback.ts).

import type { Bindings, ClientSink, ClientSocket, Handle, Req } from '../http1/client-socket.ts'
import { shared } from '../http1/input.ts'
import type { NativeContext } from './profile.ts'

/** TLSWrap's calls, beyond the stream ones Handle has. */
export interface TlsHandle extends Handle {
  setALPNProtocols(wire: Buffer): void
  enableCertCb(): void
  certCbDone(): void
  getALPNNegotiatedProtocol(): string | false
  getServername(): string | false
  /** The negotiated version (`TLSv1.3`); null before the handshake. */
  getProtocol(): string | null
  destroySSL(): void
  /** Read by certCbDone: the context whose certificate the handshake uses. */
  sni_context: NativeContext | undefined
  onhandshakedone: ((this: TlsHandle) => void) | null
  onerror: ((this: TlsHandle, err: Error & { code?: string }) => void) | null
  oncertcb: ((this: TlsHandle, info: { servername: string }) => void) | null
}

/** net.Socket's default writable high-water mark: write() returns false from here on. */
const HIGH_WATER = 64 * 1024

const OWNER = Symbol('balancer.tls-socket')

function socketOf(handle: Handle): TlsClientSocket | null {
  return (handle as unknown as Record<symbol, TlsClientSocket | null>)[OWNER] ?? null
}

function setOwner(handle: Handle, s: TlsClientSocket | null): void {
  ;(handle as unknown as Record<symbol, TlsClientSocket | null>)[OWNER] = s
}

/** What the TLS socket tells the code that accepted it until a protocol takes it over. */
export interface HandshakeSink {
  /** The handshake completed: hand the socket to a protocol (or destroy it). */
  established(sock: TlsClientSocket): void
  /** Which certificate for this server name ('' without SNI); only asked when enableSni() was called. */
  certFor(sock: TlsClientSocket, servername: string): NativeContext
  /** A plain-text HTTP request arrived instead of a ClientHello. */
  plainHttp(sock: TlsClientSocket): void
  /** Closed before a protocol took it over. */
  closed(sock: TlsClientSocket): void
}

function onRead(this: Handle): void {
  const s = socketOf(this)
  if (s !== null) s.onRead(s.b.state[s.b.kRead] as number)
}

function afterWrite(this: Req, status: number): void {
  const s = socketOf(this.handle)
  this.buffer = null
  if (s !== null) s.afterWrite(status)
}

function afterShutdown(this: Req, status: number): void {
  const s = socketOf(this.handle)
  if (s !== null) s.afterShutdown(status)
}

function afterClose(this: Handle): void {
  const s = socketOf(this)
  setOwner(this, null)
  if (s !== null) s.afterClose()
}

function onHandshakeDone(this: TlsHandle): void {
  socketOf(this)?.onHandshakeDone()
}

function onTlsError(this: TlsHandle, err: Error & { code?: string }): void {
  socketOf(this)?.onTlsError(err)
}

function onCertCb(this: TlsHandle, info: { servername: string }): void {
  const s = socketOf(this)
  if (s === null) return
  this.sni_context = s.handshake?.certFor(s, info.servername)
  this.certCbDone()
}

/** The TCP handle under TLS never reads to JavaScript itself; a read reaching it (after destroySSL) is dropped, not an abort. */
function ignoreRead(): void {}

function drainSoon(s: TlsClientSocket): void {
  s.drained()
}

function answerPlain(s: TlsClientSocket): void {
  s.answerPlainNow()
}

function uvError(op: string, code: number): Error {
  const err = new Error(`${op} failed (${code})`) as NodeJS.ErrnoException
  err.errno = code
  return err
}

/** Written in clear text to a plain HTTP request on a TLS port, then the connection closes. */
const PLAIN_400 = Buffer.from(
  'HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 55\r\nconnection: close\r\n\r\nThis port speaks HTTPS: send the request with https://\n',
  'latin1',
)

export class TlsClientSocket implements ClientSocket {
  readonly b: Bindings
  readonly #tcp: Handle
  readonly #tls: TlsHandle
  handshake: HandshakeSink | null
  #sink: ClientSink<unknown> | null = null
  #owner: unknown = null
  errored: Error | null = null
  /** The handshake completed. */
  established = false
  /** Epoch ms by which the handshake must complete (the engine's sweep destroys it after). */
  deadline = 0
  /** Bytes of the one write TLSWrap holds; 0 when none is pending. */
  #inFlight = 0
  /** Writes waiting for the pending one, or held by cork(). */
  #queue: Buffer[] = []
  #spareQueue: Buffer[] = []
  #queuedBytes = 0
  #corked = false
  #needDrain = false
  #reading = false
  #readEnded = false
  /** end() or destroySoon(): no more writes. */
  #ending = false
  /** close_notify and FIN wait for the queued writes. */
  #shutdownQueued = false
  #shutDown = false
  /** destroySoon(): close once our close_notify and FIN are out, without waiting for the client's. */
  #closeWhenShut = false
  /** A plain HTTP request is being answered in clear text: close when that write completes. */
  #plainAnswer = false
  #closing = false

  /** The context the handle was created with (the listener's default certificate). */
  readonly defaultContext: NativeContext

  /** The negotiated TLS version (`TLSv1.3`), for the access log. */
  protocol(): string | null {
    return this.#tls.getProtocol()
  }

  constructor(b: Bindings, tcp: Handle, tls: TlsHandle, handshake: HandshakeSink, defaultContext: NativeContext) {
    this.b = b
    this.defaultContext = defaultContext
    this.#tcp = tcp
    this.#tls = tls
    this.handshake = handshake
    setOwner(tcp, this)
    setOwner(tls, this)
    tcp.onread = ignoreRead
    tls.onhandshakedone = onHandshakeDone
    tls.onerror = onTlsError
    tls.onread = onRead
    tls.useUserBuffer(shared)
  }

  /** Asks handshake.certFor for each handshake's certificate (more than one to choose from). */
  enableSni(): void {
    this.#tls.oncertcb = onCertCb
    this.#tls.enableCertCb()
  }

  setAlpn(wire: Buffer): void {
    this.#tls.setALPNProtocols(wire)
  }

  /** Starts reading: the handshake runs, then `handshake.established`. */
  begin(): void {
    this.#resumeReading()
  }

  /** The protocol the handshake agreed on ('' when the client offered none). */
  alpnProtocol(): string {
    const p = this.#tls.getALPNNegotiatedProtocol()
    return p === false ? '' : p
  }

  servername(): string {
    const n = this.#tls.getServername()
    return n === false ? '' : n
  }

  /** The peer's address ('' when the socket is already gone). */
  remoteAddress(): string {
    const out: { address?: string } = {}
    return this.#tcp.getpeername(out) === 0 ? (out.address ?? '') : ''
  }

  /** A protocol takes the connection over: `owner` hears about everything from now on through `sink`. */
  start<O>(owner: O, sink: ClientSink<O>): void {
    this.handshake = null
    this.#owner = owner
    this.#sink = sink as ClientSink<unknown>
    this.resume()
  }

  /**
   * Bytes of writes this socket still holds (queued behind the pending one,
   * or corked). Not the pending write: TLSWrap encrypts (or copies) what it
   * is given before writeBuffer returns, so a caller's buffer is free again
   * at once, such as the upstream read buffer a response was relayed from.
   */
  get writableLength(): number {
    return this.#queuedBytes
  }

  write(data: Buffer): boolean {
    if (this.#ending || this.#closing) return false
    if (this.#inFlight === 0 && !this.#corked) this.#send(data)
    else {
      this.#queue.push(data)
      this.#queuedBytes += data.length
    }
    if (this.#inFlight + this.#queuedBytes < HIGH_WATER) return true
    this.#needDrain = true
    return false
  }

  #send(data: Buffer): void {
    const req = new this.b.WriteWrap()
    req.handle = this.#tls
    req.oncomplete = afterWrite
    req.buffer = data
    const err = this.#tls.writeBuffer(req, data)
    if (err !== 0) this.#fail(uvError('write', err))
    else this.#inFlight = data.length
  }

  /** Sends what is queued (one write, or one writev), when nothing is pending. */
  #flush(): void {
    const q = this.#queue
    if (q.length === 0 || this.#closing) return
    if (q.length === 1) {
      const one = q[0] as Buffer
      q.length = 0
      this.#queuedBytes = 0
      this.#send(one)
      return
    }
    const bytes = this.#queuedBytes
    this.#queue = this.#spareQueue
    this.#spareQueue = q
    this.#queuedBytes = 0
    const req = new this.b.WriteWrap()
    req.handle = this.#tls
    req.oncomplete = afterWrite
    req.buffer = q
    const err = this.#tls.writev(req, q, true)
    if (err !== 0) this.#fail(uvError('write', err))
    else this.#inFlight = bytes
  }

  afterWrite(status: number): void {
    this.#inFlight = 0
    if (this.#spareQueue.length !== 0) this.#spareQueue.length = 0 // a runtime call even on an empty array
    if (this.#closing) return // cancelled by destroy(): not an error of the connection
    if (this.#plainAnswer) {
      this.destroy()
      return
    }
    if (status < 0) {
      this.#fail(uvError('write', status))
      return
    }
    if (!this.#corked) this.#flush()
    if (this.#inFlight !== 0) return
    if (this.#shutdownQueued) this.#shutdown()
    else this.drained()
  }

  /** Tells the owner the writes it was refused may go on, if it was refused and they may. */
  drained(): void {
    if (this.#needDrain && this.#inFlight === 0 && this.#queuedBytes === 0 && !this.#closing) {
      this.#needDrain = false
      if (this.#sink !== null) this.#sink.drain(this.#owner)
    }
  }

  cork(): void {
    this.#corked = true
  }

  uncork(): void {
    if (!this.#corked) return
    this.#corked = false
    if (this.#inFlight === 0) this.#flush()
    // A write refused while corked may be out at once: 'drain' is still owed.
    if (this.#needDrain && this.#inFlight === 0) process.nextTick(drainSoon, this)
  }

  pause(): void {
    if (!this.#reading) return
    this.#reading = false
    this.#tls.readStop()
  }

  resume(): void {
    if (!this.established) return
    this.#resumeReading()
  }

  #resumeReading(): void {
    if (this.#reading || this.#readEnded || this.#closing) return
    this.#reading = true
    const err = this.#tls.readStart()
    if (err !== 0) this.#fail(uvError('read', err))
  }

  /** close_notify, then FIN, after the queued writes; the socket closes when the client has ended too. */
  end(): void {
    if (this.#ending || this.#closing) return
    this.#ending = true
    this.#closeAfterWrites()
  }

  /** No more writes; closed once they, our close_notify and our FIN are out. */
  destroySoon(): void {
    if (this.#closing) return
    this.#ending = true
    this.#closeWhenShut = true
    this.#closeAfterWrites()
  }

  #closeAfterWrites(): void {
    if (!this.established) {
      this.destroy()
      return
    }
    this.#corked = false
    this.#shutdownQueued = true
    if (this.#inFlight === 0) this.#flush()
    if (this.#inFlight === 0) this.#shutdown()
  }

  #shutdown(): void {
    this.#shutdownQueued = false
    const req = new this.b.ShutdownWrap()
    req.handle = this.#tls
    req.oncomplete = afterShutdown
    const err = this.#tls.shutdown(req)
    if (err === 1)
      this.afterShutdown(0) // done at once
    else if (err !== 0) this.destroy()
  }

  afterShutdown(status: number): void {
    if (this.#closing) return
    // An error here is the client having gone already: nothing left to send to it.
    this.#shutDown = true
    if (status < 0 || this.#closeWhenShut || this.#readEnded) this.destroy()
  }

  setKeepAlive(enable: boolean, initialDelayMs: number): void {
    if (!this.#closing) this.#tcp.setKeepAlive(enable, Math.floor(initialDelayMs / 1000))
  }

  onRead(n: number): void {
    if (this.#closing) return
    if (n > 0) {
      if (this.#sink !== null) this.#sink.read(this.#owner, shared.subarray(0, n))
      return
    }
    if (n === 0) return
    if (n !== this.b.eof) {
      this.#fail(uvError('read', n))
      return
    }
    // The client's close_notify, or its FIN. libuv (or TLSWrap) stops reading.
    this.#reading = false
    this.#readEnded = true
    if (!this.established) {
      this.destroy()
      return
    }
    if (this.#sink !== null) this.#sink.end(this.#owner)
    if (this.#shutDown && !this.#closing) this.destroy()
  }

  onHandshakeDone(): void {
    if (this.established || this.#closing) return
    this.established = true
    this.handshake?.established(this)
  }

  /**
   * OpenSSL gave up: a bad handshake (destroyed at once), a plain HTTP
   * request (answered in clear text, outside OpenSSL's stack), or a broken
   * record later.
   */
  onTlsError(err: Error & { code?: string }): void {
    if (this.#closing) return
    this.errored ??= err
    if (!this.established && err.code === 'ERR_SSL_HTTP_REQUEST') {
      this.pause()
      setImmediate(answerPlain, this)
      return
    }
    this.destroy()
  }

  /** Tells handshake.plainHttp, then answers 400 in clear text on the TCP handle and closes. */
  answerPlainNow(): void {
    if (this.#closing) return
    this.handshake?.plainHttp(this)
    // Off the TLS layer first, so the TCP handle's write completes to us, not to it.
    this.#tls.destroySSL()
    const b = this.b
    const req = new b.WriteWrap()
    req.handle = this.#tcp
    req.oncomplete = afterWrite
    req.buffer = PLAIN_400
    this.#ending = true
    this.#plainAnswer = true
    const err = this.#tcp.writeBuffer(req, PLAIN_400)
    // Taken by the kernel at once (the usual case): close now; else when afterWrite says so.
    if (err !== 0 || b.state[b.kAsync] === 0) this.destroy()
  }

  #fail(err: Error): void {
    this.errored ??= err
    this.destroy()
  }

  /** Aborts a handshake that did not finish in time (the engine's sweep). */
  abort(): void {
    this.destroy()
  }

  destroy(): void {
    this.#close(false)
  }

  resetAndDestroy(): void {
    this.#close(true)
  }

  #close(reset: boolean): void {
    if (this.#closing) return
    this.#closing = true
    this.#queue.length = 0
    this.#queuedBytes = 0
    if (this.#reading) {
      this.#reading = false
      this.#tls.readStop()
    }
    if (!reset || this.#tcp.reset(afterClose) !== 0) this.#tcp.close(afterClose)
  }

  afterClose(): void {
    // Not on OpenSSL's stack here (a handle's close callback): free the TLS state now.
    this.#tls.destroySSL()
    setOwner(this.#tls, null)
    const owner = this.#owner
    const sink = this.#sink
    this.#owner = null
    this.#sink = null
    if (sink !== null) sink.close(owner)
    else this.handshake?.closed(this)
    this.handshake = null
  }
}
