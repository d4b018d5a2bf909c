// TLS on tls.TLSSocket, where the raw bindings socket.ts uses differ from
// what it knows (a Node that changed them): correct, only slower. Same
// certificate choice, ALPN offer and handshake deadline as the raw path;
// after the handshake the TLSSocket (a net.Socket) goes to its protocol's
// handler, HTTP/1.1 reading it with 'data' events.

import type { Socket } from 'node:net'
import type { SecureContext } from 'node:tls'
import type { EngineCtx } from '../context.ts'
import type { Listener, PendingConn } from '../listener.ts'
import { handlerFor } from './alpn.ts'
import { selectCert } from './sni.ts'

export function acceptTlsFallback(raw: Socket, listener: Listener, ctx: EngineCtx): void {
  const rt = listener.tls
  if (rt === null) {
    raw.destroy()
    return
  }
  // Loaded with the first TLS connection here (profile.ts says why).
  const { TLSSocket } = process.getBuiltinModule('node:tls')
  const sock = new TLSSocket(raw, {
    isServer: true,
    secureContext: rt.fallback.sc,
    ALPNProtocols: [...rt.plan.alpn],
    ...(rt.exact === null ? {} : { SNICallback: (name: string, cb: (err: Error | null, sc?: SecureContext) => void) => cb(null, selectCert(listener.tls ?? rt, name).sc) }),
  })
  ctx.now = Date.now()
  const pending: PendingConn = { deadline: ctx.now + ctx.opts.headersTimeoutMs, abort: () => sock.destroy() }
  listener.pending.add(pending)
  let handed = false
  sock.on('error', () => sock.destroy())
  sock.once('close', () => {
    if (!handed) listener.removePending(pending)
  })
  sock.once('secure', () => {
    handed = true
    listener.removePending(pending)
    const h = handlerFor(sock.alpnProtocol)
    if (h === undefined) sock.destroy()
    else h.socket(sock, listener, ctx)
  })
}
