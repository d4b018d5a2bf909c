// The protocol hook: after its handshake, a TLS connection goes to the
// handler of the protocol the client and the listener agreed on by ALPN. A
// client that offers no ALPN speaks HTTP/1.1.
//
// To add a protocol (HTTP/2): put its ALPN name in the listener's offer
// (TlsPlan.alpn, made by the compiler, in preference order) and its handler
// here. A handler owns the connection from then on: it must track it in the
// listener (for drain and shutdown) and close it. The raw socket
// (socket.ts) is a ClientSocket whose start(owner, sink) directs its reads,
// end, drain and close to the handler; where the raw bindings are missing
// (fallback.ts) the handler gets the tls.TLSSocket, a net.Socket.

import type { TLSSocket } from 'node:tls'
import type { EngineCtx } from '../context.ts'
import { acceptSocket, acceptTlsSocket } from '../http1/conn.ts'
import { H2_SINK, startH2, startH2Socket } from '../h2/conn.ts'
import type { Listener } from '../listener.ts'
import type { TlsClientSocket } from './socket.ts'

export interface ProtocolHandler {
  /** A raw TLS socket whose handshake completed; `ip` is the client's address. */
  raw(sock: TlsClientSocket, ip: string, listener: Listener, ctx: EngineCtx): void
  /** A tls.TLSSocket whose handshake completed (fallback.ts). */
  socket(sock: TLSSocket, listener: Listener, ctx: EngineCtx): void
}

export const HTTP1 = 'http/1.1'
export const H2 = 'h2'

const http1: ProtocolHandler = {
  raw: acceptTlsSocket,
  socket: (sock, listener, ctx) => acceptSocket(sock, listener, ctx, true),
}

const h2: ProtocolHandler = {
  raw(sock, ip, listener, ctx) {
    const conn = startH2(sock, ip, listener, ctx, true, null)
    conn.tlsVersion = sock.protocol()
    sock.start(conn, H2_SINK)
  },
  socket: (sock, listener, ctx) => startH2Socket(sock, listener, ctx, true, null),
}

/** RFC 8737: the handshake itself, with the challenge certificate, is the whole validation; the CA sends nothing after it. */
const acmeTls: ProtocolHandler = {
  raw: (sock) => sock.destroySoon(),
  socket: (sock) => sock.end(),
}

/** By ALPN protocol name. */
export const PROTOCOLS: ReadonlyMap<string, ProtocolHandler> = new Map([
  [HTTP1, http1],
  [H2, h2],
  ['acme-tls/1', acmeTls],
])

/** The handler for what ALPN agreed on ('' or false: none offered, HTTP/1.1); undefined for a protocol nobody handles. */
export function handlerFor(protocol: string | false | null): ProtocolHandler | undefined {
  return PROTOCOLS.get(protocol === false || protocol === null || protocol === '' ? HTTP1 : protocol)
}
