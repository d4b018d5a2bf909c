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

/** `host`, `host:port`, `[v6]`, `[v6]:port`; null when malformed or the port is out of range. */
export function parseHostPort(s: string, defaultPort: number): HostPort | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(s)
  if (m === null) return null
  const port = m[3] === undefined ? defaultPort : Number(m[3])
  if (port < 1 || port > 65535) return null
  return { host: m[1] ?? m[2] ?? '', port }
}
