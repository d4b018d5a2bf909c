// Which Host header values the admin API answers (DNS rebinding defence).
//
// A web page at http://evil.test:9123 whose name the attacker re-points at
// 127.0.0.1 talks to the API as a *same-origin* page: its Origin and Host both
// say evil.test:9123, so the cross-origin check alone passes it, and a
// token does not help either (tokens end up pasted into browsers, and a
// rebound page runs in the user's browser with whatever it holds). What the
// attacker cannot choose is that the Host names *their* domain. So a
// request is served only when its Host is a name the API is really reached
// by:
//   - `localhost`, `127.0.0.1`, `[::1]`;
//   - any IP literal (dotted IPv4, bracketed IPv6): rebinding needs a name the
//     attacker controls; a Host that is an IP literal means the page's origin
//     is that address, i.e. a page the balancer itself serves. This keeps
//     `curl 10.0.0.5:9123` and the container case (`--api 0.0.0.0:9123`,
//     reached through a published port as localhost or the host's address)
//     working with no flag;
//   - the `--api` host when it is a name, and every `--api-host NAME`
//     (a DNS name or reverse proxy in front of the API).
// Any port: the port is not what the attacker controls (they pick the name),
// and a published port (`-p 8000:9123`) or a reverse proxy changes it.
// Names compare case-insensitively, with no trailing dot: `localhost.` is a
// name that goes to DNS, and so is `foo.localhost` for some resolvers.
// A request without a Host header is served: every browser sends one (page
// scripts cannot remove it), so its absence proves it is not a browser; only
// HTTP/1.0 tools omit it. A Host that is present but not a host[:port] is
// refused.

import { isIPv4, isIPv6 } from '../model/address.ts'

/** Always allowed, whatever the bind address. */
export const LOOPBACK_HOST_NAMES: readonly string[] = ['localhost', '127.0.0.1', '[::1]']

export interface HostCheck {
  /** Null when the Host is allowed; else why not, for the error message. */
  refusal(host: string | undefined): string | null
}

/** `names`: extra DNS names (the --api host when it is a name, --api-host values). */
export function hostCheck(names: readonly string[]): HostCheck {
  const allowed = new Set([...LOOPBACK_HOST_NAMES, ...names.map((n) => n.toLowerCase())])
  return {
    refusal(host) {
      if (host === undefined) return null
      const name = hostPart(host)
      if (name === null) return `Host ${JSON.stringify(host)} is not HOST[:PORT]`
      if (allowed.has(name) || isIpLiteral(name)) return null
      return `Host ${JSON.stringify(host)} is not a name this API is reached by; add it with --api-host if it is yours`
    },
  }
}

/** The lower-cased host of a Host header value (brackets kept for IPv6), or null when malformed. */
export function hostPart(header: string): string | null {
  const h = header.trim().toLowerCase()
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::[0-9]{1,5})?$/.exec(h)
  return m === null ? null : (m[1] ?? null)
}

function isIpLiteral(name: string): boolean {
  if (name.startsWith('[')) return isIPv6(name.slice(1, -1))
  return isIPv4(name)
}
