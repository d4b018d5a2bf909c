// A bound listening address, its current plan and its client connections.
// `plan` is replaced by apply() with one assignment; a request reads it once
// when its head is parsed and keeps that plan to its end.
//
// One listening socket per address and process (one descriptor): a burst
// of new clients is taken several connections per readiness event
// (accept-batch.ts), so the socket farm that once made up for libuv's one
// accept per turn (32 SO_REUSEPORT sockets per address) is not needed.

import { createServer } from 'node:net'
import type { AddressInfo, Server } from 'node:net'
import type { ListenAddress } from '../compiler/snapshot.ts'
import type { H2Conn } from './h2/conn.ts'
import type { ClientConn } from './http1/conn.ts'
import type { ListenerRuntime } from './lb/runtimes.ts'
import { CODE_CLASSES } from './meter.ts'
import type { TlsRuntime } from './tls/sni.ts'

/**
 * A connection not yet handed to a protocol: a TLS handshake in progress.
 * The engine's sweep aborts it past its deadline; drain and shutdown abort it.
 */
export interface PendingConn {
  deadline: number
  abort(): void
}

/**
 * SO_REUSEPORT lets several balancer processes (or workers) accept on one
 * port, the kernel spreading connections. Linux only: elsewhere Node refuses
 * the option or it means something else.
 */
const REUSE_PORT = process.platform === 'linux'

export class Listener {
  readonly key: string
  /** The listening socket of this address. */
  readonly server: Server
  /** The bound port (the one the OS chose when 0 was asked). */
  readonly port: number
  plan: ListenerRuntime
  /**
   * The certificates and protocols of the current plan; null: plain HTTP.
   * Read once per accepted connection, so a listener turned to TLS (or back)
   * keeps its socket and its existing connections, and serves new ones the
   * new way.
   */
  tls: TlsRuntime | null = null
  /** Client connections: HTTP/1.1 ones, and HTTP/2 ones (each carrying many requests). */
  readonly conns = new Set<ClientConn | H2Conn>()
  readonly pending = new Set<PendingConn>()
  /** Removed by a snapshot or shutting down: no longer accepting, connections close after their response. */
  draining = false
  /** Settles when the server has stopped accepting and every connection is gone. */
  closed: Promise<void> | null = null
  /** Heads refused before routing (400, 408, 414, 431, 501, 505) and requests no route took (404), by code class (meter.ts). */
  readonly refused = new Float64Array(CODE_CLASSES.length)
  #emptyWaiters: Array<() => void> = []

  constructor(key: string, server: Server, plan: ListenerRuntime) {
    this.key = key
    this.server = server
    this.plan = plan
    const a = server.address() as AddressInfo | null
    this.port = a === null ? 0 : a.port
  }

  /** Stops accepting (idempotent). Existing connections are the caller's to drain. */
  stopAccepting(): Promise<void> {
    this.draining = true
    this.closed ??= new Promise<void>((resolve) => this.server.close(() => resolve()))
    return this.closed
  }

  add(conn: ClientConn | H2Conn): void {
    this.conns.add(conn)
  }

  remove(conn: ClientConn | H2Conn): void {
    this.conns.delete(conn)
    this.#checkEmpty()
  }

  removePending(p: PendingConn): void {
    this.pending.delete(p)
    this.#checkEmpty()
  }

  #checkEmpty(): void {
    if (this.conns.size === 0 && this.pending.size === 0 && this.#emptyWaiters.length > 0) {
      const ws = this.#emptyWaiters
      this.#emptyWaiters = []
      for (const w of ws) w()
    }
  }

  /** Resolves once no client connection is left. */
  whenEmpty(): Promise<void> {
    if (this.conns.size === 0 && this.pending.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.#emptyWaiters.push(resolve))
  }
}

/**
 * Connections the kernel completes and holds until accepted (capped by
 * net.core.somaxconn, 4096 by default since Linux 5.4). One socket per
 * address has to hold a whole burst: 1,000 clients connecting at once
 * overflowed Node's 511, and an overflowed queue drops the handshake's last
 * ACK, so those clients waited a retransmission (1 s and more).
 */
const BACKLOG = 4096

function listenOn(port: number, host: string): Promise<Server> {
  const server = createServer({ allowHalfOpen: true, noDelay: true })
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.close()
      reject(err)
    }
    server.once('error', onError)
    server.listen({ port, host, ipv6Only: false, reusePort: REUSE_PORT, backlog: BACKLOG }, () => {
      server.off('error', onError)
      resolve(server)
    })
  })
}

/** Binds `addr`; host '' is every interface: dual-stack '::', or '0.0.0.0' where IPv6 is unavailable. */
export async function bindServer(addr: ListenAddress): Promise<Server> {
  if (addr.host !== '') return listenOn(addr.port, addr.host)
  try {
    return await listenOn(addr.port, '::')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err
    return listenOn(addr.port, '0.0.0.0')
  }
}
