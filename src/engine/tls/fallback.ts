// TLS on tls.TLSSocket, where the raw bindings socket.ts uses differ from
// what it knows (a Node that changed them): correct, only slower. Same
// certificate choice, ALPN offer and handshake deadline as the raw path;
// after the handshake the TLSSocket (a net.Socket) goes to its protocol's
// handler, HTTP/1.1 reading it with 'data' events.

import type { Socket } from 'node:net'
import type { SecureContext, TLSSocket } from 'node:tls'
import type { EngineCtx } from '../context.ts'
import type { Listener, PendingConn } from '../listener.ts'
import type { TlsRuntime } from './sni.ts'
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
  const sock: TLSSocket = new TLSSocket(raw, {
    isServer: true,
    secureContext: rt.fallback.sc,
    ALPNProtocols: [...rt.plan.alpn],
    ...(rt.exact === null && ctx.acmeAlpn.size === 0 ? {} : { SNICallback: (name: string, cb: (err: Error | null, sc?: SecureContext) => void) => cb(null, certFor(sock, name, listener, rt, ctx)) }),
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

/**
 * The certificate for a handshake: as on the raw path (accept.ts), ALPN is
 * agreed before the certificate is chosen (the SNI callback runs in
 * OpenSSL's certificate callback), so a CA validating tls-alpn-01 (ALPN
 * acme-tls/1) gets the challenge certificate for the name.
 */
function certFor(sock: TLSSocket, name: string, listener: Listener, rt: TlsRuntime, ctx: EngineCtx): SecureContext {
  if (ctx.acmeAlpn.size !== 0 && alpnOf(sock) === 'acme-tls/1') {
    const c = ctx.acmeAlpnSc.get(name.toLowerCase())
    if (c !== undefined) return c
  }
  return selectCert(listener.tls ?? rt, name).sc
}

/** The protocol ALPN agreed on so far ('secure' has not set alpnProtocol yet). */
function alpnOf(sock: TLSSocket): string | false {
  const h = (sock as unknown as { _handle: { getALPNNegotiatedProtocol?(): string | false } | null })._handle
  return h?.getALPNNegotiatedProtocol?.() ?? false
}
