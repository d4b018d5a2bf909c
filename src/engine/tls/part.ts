// TLS termination (engine/parts.ts loads it with the first TLS listener):
// the handshake on a raw handle (accept.ts) or on a net.Socket where the
// bindings differ (fallback.ts), then the protocol ALPN chose (alpn.ts).

export { acceptTlsHandle, handshakeSink } from './accept.ts'
export { acceptTlsFallback } from './fallback.ts'
