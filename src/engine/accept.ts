// Where an accepted connection goes: plain HTTP/1.1, or a TLS handshake
// (tls/accept.ts) whose protocol is chosen by ALPN afterwards. Decided per
// connection by the listener's current plan, so a listener turned to TLS
// keeps its socket.

import type { Server, Socket } from 'node:net'
import type { EngineCtx } from './context.ts'
import { acceptHandles } from './http1/client-socket.ts'
import { acceptRawHandle, acceptSocket } from './http1/layer.ts'
import type { Listener } from './listener.ts'
import { acceptTlsHandle, handshakeSink } from './tls/accept.ts'
import { acceptTlsFallback } from './tls/fallback.ts'
import { tlsBindings } from './tls/socket.ts'

/** Serves the clients `server` accepts on `listener`: on raw handles where this Node allows it, else on net.Sockets. */
export function serve(server: Server, listener: Listener, ctx: EngineCtx): void {
  const b = tlsBindings()
  if (b !== null) {
    const sink = handshakeSink(listener, ctx)
    const raw = acceptHandles(server, (h) => {
      if (listener.tls === null) acceptRawHandle(h, listener, ctx)
      else acceptTlsHandle(h, listener, ctx, b, sink)
    })
    if (raw) return
  }
  server.on('connection', (sock: Socket) => {
    if (listener.tls === null) acceptSocket(sock, listener, ctx)
    else acceptTlsFallback(sock, listener, ctx)
  })
}
