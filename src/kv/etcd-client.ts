// The etcd3 client as the balancer sets it up, for the store and for the
// registry source alike (they may not import each other): the library's own
// retries and circuit breaker off, so the caller's watch loop owns
// reconnection; a deadline on every unary call; TLS and credentials as given.

import { Etcd3, isRecoverableError } from 'etcd3'
import type { IOptions } from 'etcd3'
import { handleWhen, noop, retry } from 'cockatiel'
import type { HostPort, TlsFiles } from './endpoint.ts'
import { hostPortText } from './endpoint.ts'

export interface EtcdClientOptions {
  hosts: HostPort[]
  user?: string | null
  password?: string | null
  /** TLS when non-null; empty fields use the system's CAs / no client certificate. */
  tls?: TlsFiles | null
}

export function createEtcdClient(o: EtcdClientOptions, timeoutMs: number): Etcd3 {
  return new Etcd3(etcdClientOptions(o, timeoutMs))
}

export function etcdClientOptions(o: EtcdClientOptions, timeoutMs: number): IOptions {
  const tls = o.tls ?? null
  const hosts = o.hosts.map((h) => `${tls === null ? 'http' : 'https'}://${hostPortText(h)}`)
  const opts: IOptions = {
    hosts,
    dialTimeout: timeoutMs,
    // Unary calls get a deadline; the watch stream lives until cancelled.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    // No circuit breaker (it would hide a recovered server for seconds): one
    // try per host, then the watch loop's backoff takes over.
    faultHandling: {
      host: () => noop,
      global: retry(handleWhen(isRecoverableError), { maxAttempts: Math.max(0, hosts.length - 1) }),
    },
  }
  if (tls !== null && (tls.ca !== null || tls.cert !== null || tls.key !== null)) {
    const credentials: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer } = {
      // grpc-js takes null for "the system's CAs"; etcd3's type insists on a Buffer.
      rootCertificate: tls.ca as Buffer,
    }
    if (tls.key !== null) credentials.privateKey = tls.key
    if (tls.cert !== null) credentials.certChain = tls.cert
    opts.credentials = credentials
  }
  if (o.user != null) {
    opts.auth = { username: o.user, password: o.password ?? '', callOptions: () => ({ deadline: Date.now() + timeoutMs }) }
  }
  return opts
}
