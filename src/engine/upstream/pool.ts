// Upstream TCP connections: opening, the per-upstream idle pool (LIFO, so
// the warmest socket is reused and the cold ones age out) and release.
// Protocol-agnostic: socket events go to the owner's UpEvents, bound once
// per socket. A connection is in exactly one place: attached to one owner
// (state Connecting/Busy, counted in Upstream.active), in Upstream.idle
// (state Idle), or closed.
//
// Reads go into the connection's own buffer (net's `onread`), not a fresh
// buffer per read: the response bytes are relayed and forgotten within the
// read callback. Only when the owner could not hand them all to the kernel
// (its data handler returns true: a client write is still pending and
// references them) does the next read get a new buffer, the old one staying
// with the pending write. This keeps large bodies from churning external
// memory, which otherwise forces frequent full garbage collections.
//
// Two kinds of socket behind one interface (UpSocket): plain connections
// to an IP address are libuv TCP handles driven directly (raw-socket.ts),
// which report to RAW_SINK; TLS upstreams, upstreams named by a host name
// (net resolves the name per connection) and Nodes whose bindings differ
// use net.Socket / tls.TLSSocket, whose events are bound per socket.

import { connect, isIP } from 'node:net'
import type { Socket } from 'node:net'
import type { ConnectionOptions, SecureContext } from 'node:tls'
import type { UpSink, UpSocket } from './raw-socket.ts'
import { RawUpSocket, rawUpstreams } from './raw-socket.ts'
import type { Upstream } from './registry.ts'

export const UpState = { Connecting: 0, Busy: 1, Idle: 2, Closed: 3 } as const

/** What the owner of an attached connection hears. Not called while idle or after detach. */
export interface UpEvents {
  connected(uc: UpConn): void
  /** `chunk` is only valid during the call; return true if it is still referenced afterwards (a pending write). */
  data(uc: UpConn, chunk: Buffer): boolean
  drain(uc: UpConn): void
  /** The upstream sent FIN (sockets are half-open capable: the owner decides). */
  ended(uc: UpConn): void
  /** The socket is gone (error, reset, or both sides closed). */
  closed(uc: UpConn): void
}

/**
 * Called whenever an upstream's busy count drops while requests wait for one
 * of its connections (Limits.MaxPending). Set once by the exchange module.
 */
let freed: (up: Upstream) => void = () => {}

export function onFreed(fn: (up: Upstream) => void): void {
  freed = fn
}

/** Bytes per upstream read: a 16 KiB body with its head fits one read; untouched pages cost no RSS. */
const READ_BYTES = 64 * 1024

export class UpConn {
  readonly sock: UpSocket
  /** `sock` is a RawUpSocket (else a net.Socket or tls.TLSSocket). */
  readonly raw: boolean
  readonly up: Upstream
  readonly events: UpEvents
  state: number = UpState.Connecting
  /** The request this connection serves; null while idle or once detached. */
  owner: object | null = null
  /** It already carried a complete exchange: a failure before any response byte may be the keep-alive race. */
  reused = false
  /** Any response byte arrived for the current exchange. */
  gotBytes = false
  /** May go back to the pool after the current exchange. */
  reusable = true
  idleDeadline = 0
  /** Last socket error code (ECONNREFUSED, ...), '' if none. */
  error = ''
  /** This connection's read buffer; null after a read whose bytes are still referenced (a new one is made). */
  rbuf: Buffer | null = null

  constructor(sock: UpSocket, raw: boolean, up: Upstream, events: UpEvents) {
    this.sock = sock
    this.raw = raw
    this.up = up
    this.events = events
  }
}

function onConnect(uc: UpConn): void {
  if (uc.state !== UpState.Connecting) return
  uc.state = UpState.Busy
  if (uc.owner !== null) uc.events.connected(uc)
}

function readBuffer(uc: UpConn): Buffer {
  let b = uc.rbuf
  if (b === null) {
    b = Buffer.allocUnsafeSlow(READ_BYTES)
    uc.rbuf = b
  }
  return b
}

/** Always true: pausing is the owner's (sock.pause()), never implied by a read. */
function onRead(uc: UpConn, n: number, buf: Buffer): true {
  if (uc.owner === null)
    uc.sock.destroy() // bytes nobody asked for (idle, or after detach): the connection is out of sync
  else if (uc.events.data(uc, buf.subarray(0, n))) uc.rbuf = null
  return true
}

function onDrain(uc: UpConn): void {
  if (uc.owner !== null) uc.events.drain(uc)
}

function onEnd(uc: UpConn): void {
  if (uc.owner !== null) uc.events.ended(uc)
  else uc.sock.destroy()
}

function onError(uc: UpConn, err: NodeJS.ErrnoException): void {
  uc.error = err.code ?? 'ERROR'
}

/** What raw sockets report; the same handlers as net's events, no binding per socket. */
const RAW_SINK: UpSink<UpConn> = {
  connected: onConnect,
  read(uc, buf, n) {
    onRead(uc, n, buf)
    return uc.sock.destroyed ? buf : readBuffer(uc)
  },
  drain: onDrain,
  end: onEnd,
  error(uc, code) {
    uc.error = code
  },
  close: onClose,
}

function onClose(uc: UpConn): void {
  const wasIdle = uc.state === UpState.Idle
  if (wasIdle) {
    const i = uc.up.idle.indexOf(uc)
    if (i >= 0) uc.up.idle.splice(i, 1)
  }
  if (uc.owner !== null) {
    uc.events.closed(uc) // the owner detaches (and fixes the counts) in there
    return
  }
  uc.state = UpState.Closed
}

/**
 * Opens a new connection for `owner`. Connect timeouts are the owner's (it
 * destroys the socket). An upstream with Scheme `https` is reached over TLS
 * with `tls` (its certificate verified against those CAs, SNI its host
 * name): the connection counts as connected once the handshake is done.
 */
export function open(up: Upstream, events: UpEvents, owner: object, tls: () => SecureContext): UpConn {
  if (!up.tls && up.family !== 0 && rawUpstreams()) {
    const raw = new RawUpSocket(RAW_SINK)
    const uc = new UpConn(raw, true, up, events)
    uc.owner = owner
    up.active++
    raw.connect(uc, up.host, up.family, up.port, readBuffer(uc))
    return uc
  }
  // net asks for the first buffer while connect() runs, before uc exists.
  let uc: UpConn | null = null
  let first: Buffer | null = null
  const onread = {
    buffer: () => (uc !== null ? readBuffer(uc) : (first = Buffer.allocUnsafeSlow(READ_BYTES))),
    callback: (n: number, buf: Uint8Array) => onRead(uc as UpConn, n, buf as Buffer),
  }
  const sock: Socket = up.tls
    ? process.getBuiltinModule('node:tls').connect({
        host: up.host,
        port: up.port,
        ...(isIP(up.host) === 0 ? { servername: up.host } : {}),
        secureContext: tls(),
        ALPNProtocols: ['http/1.1'],
        allowHalfOpen: true,
        noDelay: true,
        // tls.connect passes onread on to its net.Socket; its option types do not say so.
        onread,
      } as ConnectionOptions)
    : connect({ host: up.host, port: up.port, allowHalfOpen: true, noDelay: true, onread })
  uc = new UpConn(sock, false, up, events)
  uc.rbuf = first
  uc.owner = owner
  up.active++
  sock.once(up.tls ? 'secureConnect' : 'connect', onConnect.bind(null, uc))
  sock.on('drain', onDrain.bind(null, uc))
  sock.on('end', onEnd.bind(null, uc))
  sock.on('error', onError.bind(null, uc))
  sock.on('close', onClose.bind(null, uc))
  return uc
}

/** The most recently used idle connection, attached to `owner`; null if none. */
export function take(up: Upstream, owner: object): UpConn | null {
  const uc = up.idle.pop()
  if (uc === undefined) return null
  uc.state = UpState.Busy
  uc.owner = owner
  uc.reused = true
  uc.gotBytes = false
  uc.reusable = true
  up.active++
  return uc
}

/** Detaches a connection after a complete exchange: pooled if allowed and there is room, closed otherwise. */
export function release(uc: UpConn, now: number, idleMs: number, maxIdle: number, closing: boolean): void {
  uc.owner = null
  uc.up.active--
  const up = uc.up
  if (!uc.reusable || up.retired || closing || up.idle.length >= maxIdle || uc.sock.destroyed) {
    uc.state = UpState.Closed
    uc.sock.destroy()
  } else {
    uc.state = UpState.Idle
    uc.idleDeadline = now + idleMs
    if (uc.sock.isPaused()) uc.sock.resume() // an idle socket must read, or its FIN goes unnoticed
    up.idle.push(uc)
  }
  if (up.waiters.length !== 0) freed(up)
}

/** Detaches and closes a connection whose exchange failed or was abandoned. */
export function discard(uc: UpConn): void {
  if (uc.owner === null) return
  uc.owner = null
  uc.up.active--
  uc.state = UpState.Closed
  uc.sock.destroy()
  if (uc.up.waiters.length !== 0) freed(uc.up)
}

/** Detaches and closes once the bytes already written have been flushed (a tunnel's clean end). */
export function closeSoon(uc: UpConn): void {
  if (uc.owner === null) return
  uc.owner = null
  uc.up.active--
  uc.state = UpState.Closed
  uc.sock.destroySoon()
  if (uc.up.waiters.length !== 0) freed(uc.up)
}
