// How the clients in this folder are told where their server is and with
// which TLS material. Plain data: store-url.ts and the registry URLs produce it.

export interface HostPort {
  host: string
  port: number
}

/** TLS material (PEM) for a connection; any field may be missing. */
export interface TlsFiles {
  ca: Buffer | null
  cert: Buffer | null
  key: Buffer | null
}

/** `host:port`, with brackets around an IPv6 host. */
export function hostPortText(h: HostPort): string {
  return h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`
}
