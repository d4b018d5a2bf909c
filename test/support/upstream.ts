// Real upstream servers for engine and end-to-end tests: a node:http server
// that records what reached it, and a raw `net` server for misbehaviour
// (resets, silence, malformed or hand-framed responses).

import { createServer as createHttpServer } from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http'
import { connect as netConnect, createServer as createNetServer } from 'node:net'
import type { AddressInfo, Server as NetServer, Socket } from 'node:net'

export interface RecordedRequest {
  method: string
  url: string
  httpVersion: string
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  /** Filled when the body has ended (empty until then, and always in streaming mode). */
  body: Buffer
  complete: boolean
}

/** Called once the whole request body is in (or at once in streaming mode, with an empty body). */
export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void

export interface HttpUpstreamOptions {
  /** Identifies this upstream; the default handler answers 200 with it as the body. Default `up-<port>`. */
  name?: string
  /** Hand the request to the handler before its body is read (the handler consumes it). */
  streaming?: boolean
  /** node:http keepAliveTimeout in ms (1 makes pooled connections go stale at once). */
  keepAliveTimeout?: number
  /** Listen on this address instead of 127.0.0.1 (a test host's link, test/support/netns.ts). */
  host?: string
}

export interface HttpUpstream {
  name: string
  host: string
  port: number
  /** TargetRef key `127.0.0.1:<port>`. */
  key: string
  server: Server
  requests: RecordedRequest[]
  /** TCP connections accepted so far. */
  connections: number
  /** TCP connections open now. */
  open(): number
  close(): Promise<void>
}

export async function httpUpstream(handler?: Handler, opts: HttpUpstreamOptions = {}): Promise<HttpUpstream> {
  const server = createHttpServer()
  if (opts.keepAliveTimeout !== undefined) server.keepAliveTimeout = opts.keepAliveTimeout
  const sockets = new Set<Socket>()
  const up: HttpUpstream = {
    name: opts.name ?? '',
    host: opts.host ?? '127.0.0.1',
    port: 0,
    key: '',
    server,
    requests: [],
    connections: 0,
    open: () => sockets.size,
    close: () => closeServer(server, sockets),
  }
  server.on('connection', (s: Socket) => {
    up.connections++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  // Sockets handed to an 'upgrade' listener leave the http server's bookkeeping; track them here too.
  server.on('upgrade', (_req: IncomingMessage, s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const rec: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      httpVersion: req.httpVersion,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: Buffer.alloc(0),
      complete: false,
    }
    up.requests.push(rec)
    const h = handler ?? ((_q: IncomingMessage, s: ServerResponse) => void s.end(up.name))
    if (opts.streaming === true) {
      h(req, res, rec.body)
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      rec.body = Buffer.concat(chunks)
      rec.complete = true
      h(req, res, rec.body)
    })
  })
  const port = await listen(server, up.host)
  up.port = port
  up.key = `${up.host}:${port}`
  if (up.name === '') up.name = `up-${port}`
  return up
}

/** One accepted TCP connection of a raw upstream and everything it has received. */
export interface RawConn {
  sock: Socket
  data: Buffer
  /** Bytes received but not yet consumed by a head-answering handler. */
  pending: string
  /** The peer (the proxy) closed or reset this connection. */
  closed: boolean
}

export type RawHandler = (sock: Socket, data: Buffer, conn: RawConn) => void

export interface RawUpstream {
  host: string
  port: number
  key: string
  conns: RawConn[]
  /** Total bytes received over every connection. */
  bytes(): number
  /** Everything received, every connection in accept order, as latin1 text. */
  text(): string
  close(): Promise<void>
}

/** A raw TCP upstream: onData sees every chunk; onConnect runs when a connection is accepted. */
export async function rawUpstream(onData: RawHandler = () => {}, onConnect?: (sock: Socket, conn: RawConn) => void): Promise<RawUpstream> {
  const conns: RawConn[] = []
  const sockets = new Set<Socket>()
  const server = createNetServer((sock) => {
    const conn: RawConn = { sock, data: Buffer.alloc(0), pending: '', closed: false }
    conns.push(conn)
    sockets.add(sock)
    sock.on('data', (d: Buffer) => {
      conn.data = Buffer.concat([conn.data, d])
      onData(sock, d, conn)
    })
    sock.on('error', () => {})
    sock.on('close', () => {
      conn.closed = true
      sockets.delete(sock)
    })
    onConnect?.(sock, conn)
  })
  const port = await listen(server)
  return {
    host: '127.0.0.1',
    port,
    key: `127.0.0.1:${port}`,
    conns,
    bytes: () => conns.reduce((n, c) => n + c.data.length, 0),
    text: () => conns.map((c) => c.data.toString('latin1')).join(''),
    close: () => closeServer(server, sockets),
  }
}

/**
 * A RawHandler that calls `onHead` with every complete request head
 * (requests without a body), in order; `onHead` returning `'stop'` leaves
 * the rest of the chunk unread (the test closed the connection).
 */
export function eachHead(onHead: (sock: Socket, head: string) => 'stop' | undefined): RawHandler {
  return (sock, data, conn) => {
    conn.pending += data.toString('latin1')
    let end: number
    while ((end = conn.pending.indexOf('\r\n\r\n')) >= 0) {
      const head = conn.pending.slice(0, end + 4)
      conn.pending = conn.pending.slice(end + 4)
      if (onHead(sock, head) === 'stop') return
    }
  }
}

/**
 * A RawHandler that answers every complete request head (requests without a
 * body) with `response`, e.g. a hand-framed response the test controls byte
 * for byte. `response` may depend on the head.
 */
export function answerEachHead(response: string | ((head: string) => string)): RawHandler {
  return eachHead((sock, head) => {
    if (!sock.destroyed) sock.write(typeof response === 'string' ? response : response(head), 'latin1')
    return undefined
  })
}

/** A loopback port with nothing listening on it (bound once, then released). */
export async function refusedPort(): Promise<number> {
  const s = createNetServer()
  const port = await listen(s)
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

async function listen(server: Server | NetServer, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((res, rej) => {
    server.once('error', rej)
    server.listen(0, host, () => res())
  })
  return (server.address() as AddressInfo).port
}

async function closeServer(server: Server | NetServer, sockets: Set<Socket>): Promise<void> {
  const closed = new Promise<void>((r) => server.close(() => r()))
  for (const s of sockets) s.destroy()
  await closed
}

/** Resolves true when a TCP connect to host:port is refused, false when it connects. */
export function connectRefused(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ port, host })
    s.on('connect', () => {
      s.destroy()
      resolve(false)
    })
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'))
  })
}
