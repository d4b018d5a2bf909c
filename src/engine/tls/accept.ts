// Accepting on a TLS listener: the TCP handle is wrapped in TLS with the
// listener's default certificate and ALPN offer, tracked as pending (the
// sweep aborts a handshake still unfinished after --header-timeout), and
// handed to its protocol's handler (alpn.ts) once the handshake completes.
// Per handshake: one callback into JavaScript when it completes, one more
// to choose the certificate only when the listener has several.

import type { EngineCtx } from '../context.ts'
import type { Handle } from '../http1/client-socket.ts'
import type { Listener } from '../listener.ts'
import { handlerFor } from './alpn.ts'
import { selectCert } from './sni.ts'
import type { HandshakeSink } from './socket.ts'
import type { tlsBindings } from './bindings.ts'
import { TlsClientSocket } from './socket.ts'
import type { NativeContext } from './profile.ts'

type Bindings = NonNullable<ReturnType<typeof tlsBindings>>

/** The handshake callbacks of one listener's connections (made once per listening socket). */
export function handshakeSink(listener: Listener, ctx: EngineCtx): HandshakeSink {
  return {
    established(sock) {
      listener.removePending(sock)
      const h = handlerFor(sock.alpnProtocol())
      if (h === undefined) {
        sock.destroy()
        return
      }
      h.raw(sock, sock.remoteAddress(), listener, ctx)
    },
    certFor(sock, servername) {
      // ALPN is agreed before the certificate is chosen: a CA validating tls-alpn-01 gets the challenge certificate.
      if (ctx.acmeAlpn.size !== 0 && sock.alpnProtocol() === 'acme-tls/1') {
        const c = ctx.acmeAlpn.get(servername.toLowerCase())
        if (c !== undefined) return c as NativeContext
      }
      const rt = listener.tls
      if (rt === null) return sock.defaultContext
      return selectCert(rt, servername).native
    },
    plainHttp() {
      // Answered by the socket itself (400 in clear text); nothing to count yet.
    },
    closed(sock) {
      listener.removePending(sock)
    },
  }
}

/** A connection accepted on a TLS listener (listener.tls is set). */
export function acceptTlsHandle(handle: Handle, listener: Listener, ctx: EngineCtx, b: Bindings, sink: HandshakeSink): void {
  const rt = listener.tls
  if (rt === null) return
  const wrap = b.tls.wrap(handle, rt.fallback.native, true, false)
  const sock = new TlsClientSocket(b.stream, handle, wrap, sink, rt.fallback.native)
  if (rt.exact !== null || ctx.acmeAlpn.size !== 0) sock.enableSni()
  sock.setAlpn(rt.alpn)
  ctx.now = Date.now()
  sock.deadline = ctx.now + ctx.opts.headersTimeoutMs
  listener.pending.add(sock)
  sock.begin()
}
