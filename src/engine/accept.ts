// Where an accepted connection goes: plain HTTP/1.1, or a TLS handshake
// (tls/accept.ts) whose protocol is chosen by ALPN afterwards. Decided per
// connection by the listener's current plan, so a listener turned to TLS
// keeps its socket. A listener has TLS only in a snapshot whose apply loaded
// the TLS part (parts.ts).

import type { Server, Socket } from 'node:net'
import type { EngineCtx } from './context.ts'
import { acceptHandles } from './http1/client-socket.ts'
import { acceptRawHandle, acceptSocket } from './http1/layer.ts'
import type { Listener } from './listener.ts'
import { PARTS } from './parts.ts'
import type { TlsPart } from './parts.ts'
import type { HandshakeSink } from './tls/socket.ts'
import { tlsBindings } from './tls/bindings.ts'

/** Serves the clients `server` accepts on `listener`: on raw handles where this Node allows it, else on net.Sockets. */
export function serve(server: Server, listener: Listener, ctx: EngineCtx): void {
  const b = tlsBindings()
  if (b !== null) {
    let sink: HandshakeSink | null = null
    const raw = acceptHandles(server, (h) => {
      if (listener.tls === null) return acceptRawHandle(h, listener, ctx)
      const tls = PARTS.tls as TlsPart
      sink ??= tls.handshakeSink(listener, ctx)
      tls.acceptTlsHandle(h, listener, ctx, b, sink)
    })
    if (raw) return
  }
  server.on('connection', (sock: Socket) => {
    if (listener.tls === null) acceptSocket(sock, listener, ctx)
    else (PARTS.tls as TlsPart).acceptTlsFallback(sock, listener, ctx)
  })
}
