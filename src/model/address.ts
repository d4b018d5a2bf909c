// Listen addresses as the seed writes them (`:8080`) and what they bind.
//
// Accepted: `:PORT` or a bare `PORT` (every interface, dual stack: host '',
// key `*:PORT`), `IPv4:PORT`, `[IPv6]:PORT`, `localhost:PORT`. `0.0.0.0` and
// `::` are kept as written (they bind one address family) but count as
// wildcards when checking conflicts. Other host names are refused: what they
// bind changes with DNS, and two of them cannot be checked for a conflict
// before the engine tries to bind.

/** Same shape as the compiler's ListenAddress; key is canonical (IPv6 compressed and lower-cased). */
export interface ParsedListenAddress {
  host: string
  port: number
  key: string
}

const PORT = /^[1-9][0-9]{0,4}$/

export function parseListenAddress(addr: string): ParsedListenAddress | { error: string } {
  const a = addr.trim()
  if (a === '') return { error: 'listen address is empty; write ":PORT", e.g. ":8080"' }
  if (/\s/.test(a)) return { error: `listen address ${JSON.stringify(addr)} contains whitespace` }
  if (PORT.test(a)) return withPort('', a, addr)
  if (a.includes('://')) return { error: `listen address ${JSON.stringify(addr)} must not include a scheme; write ":PORT" or "HOST:PORT"` }

  let host: string
  let portText: string
  if (a.startsWith('[')) {
    const close = a.indexOf(']')
    if (close === -1 || a[close + 1] !== ':') {
      return { error: `listen address ${JSON.stringify(addr)}: expected "[IPv6]:PORT", e.g. "[::1]:8080"` }
    }
    const v6 = a.slice(1, close)
    if (!isIPv6(v6)) {
      return { error: `listen address ${JSON.stringify(addr)}: ${JSON.stringify(v6)} is not an IPv6 address` }
    }
    host = canonicalIPv6(v6)
    portText = a.slice(close + 2)
  } else {
    const colon = a.lastIndexOf(':')
    if (colon === -1) {
      return { error: `listen address ${JSON.stringify(addr)} has no port; write "HOST:PORT" or ":PORT"` }
    }
    host = a.slice(0, colon).toLowerCase()
    portText = a.slice(colon + 1)
    if (host.includes(':')) {
      return { error: `listen address ${JSON.stringify(addr)}: put an IPv6 address in brackets, e.g. "[::1]:8080"` }
    }
    if (host !== '' && host !== 'localhost' && !isIPv4(host)) {
      return {
        error: `listen address ${JSON.stringify(addr)}: host must be an IPv4 address, [IPv6], localhost, or empty for every interface`,
      }
    }
  }
  return withPort(host, portText, addr)
}

function withPort(host: string, portText: string, addr: string): ParsedListenAddress | { error: string } {
  const port = PORT.test(portText) ? Number(portText) : 0
  if (port < 1 || port > 65535) {
    return { error: `listen address ${JSON.stringify(addr)}: port must be an integer 1-65535, got ${JSON.stringify(portText)}` }
  }
  const key = host === '' ? `*:${port}` : host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  return { host, port, key }
}

// IP literals are checked here rather than with node:net so the model stays
// free of I/O modules (test/architecture.test.ts enforces it).

const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
const IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`)

/** Dotted quad, no leading zeros (`010` would be octal to some resolvers). */
export function isIPv4(s: string): boolean {
  return IPV4.test(s)
}

/** Without brackets; no zone (`%eth0`). The WHATWG URL host parser does the RFC 4291 grammar. */
export function isIPv6(s: string): boolean {
  // The URL parser drops tabs and newlines anywhere: refuse every character it could skip.
  return /^[0-9a-fA-F:.]+$/.test(s) && s.includes(':') && URL.canParse(`http://[${s}]/`)
}

/** `0:0::1` -> `::1`; the WHATWG URL parser is the compressing, lower-casing serializer we need. */
export function canonicalIPv6(v6: string): string {
  return new URL(`http://[${v6}]/`).hostname.slice(1, -1)
}

/** Every interface: `:80`, `0.0.0.0:80`, `[::]:80`. */
export function isWildcard(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::'
}

/** Loopback addresses `localhost` may resolve to; they clash with it. */
function overlaps(a: string, b: string): boolean {
  if (a === b) return true
  if (a === 'localhost') return b === '127.0.0.1' || b === '::1'
  if (b === 'localhost') return a === '127.0.0.1' || a === '::1'
  return false
}

/**
 * True when both cannot be bound at once: same port and the same host, or
 * either one is a wildcard (every interface, `0.0.0.0`, `::`). Conservative on
 * purpose: `0.0.0.0:80` next to `[::1]:80` could bind on Linux, but only by
 * relying on per-family socket options the operator cannot see.
 */
export function listenConflict(a: ParsedListenAddress, b: ParsedListenAddress): boolean {
  if (a.port !== b.port) return false
  return isWildcard(a.host) || isWildcard(b.host) || overlaps(a.host, b.host)
}

/** An upstream's key, `target:port` with the target lower-cased; IPv6 in brackets so the port stays unambiguous. */
export function targetKey(target: string, port: number): string {
  const host = target.toLowerCase()
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** An upstream's key in the snapshot and the engine: targetKey, prefixed `https://` when the balancer speaks TLS to it. */
export function upstreamRefKey(u: { Target: string; Port: number; Scheme?: string }): string {
  return u.Scheme === 'https' ? `https://${targetKey(u.Target, u.Port)}` : targetKey(u.Target, u.Port)
}
