// How the URL names things.
//
// - `{address}` is the server's address exactly as stored (`:8080`,
//   `127.0.0.1:8080`, `[::1]:8080`), written literally or percent-encoded
//   (`%3A8080`); the router decodes it and the match is an exact string
//   comparison, so `/server/0.0.0.0:8080` does not name `:8080`.
// - `{target}-{port}` is split at the LAST dash, because host names contain
//   dashes and ports do not: `my-app-8080` is target `my-app`, port 8080.
// - `{name}` is a route name; `default` names the server's own filter,
//   upstreams and fallbacks.

import { BalancerError, ErrorCode } from '../model/errors.ts'

export interface MemberRef {
  target: string
  port: number
}

/** Parses `{target}-{port}`; throws E_VALIDATION naming the path parameter. */
export function parseMemberKey(key: string): MemberRef {
  const dash = key.lastIndexOf('-')
  const target = dash > 0 ? key.slice(0, dash) : ''
  const portText = dash > 0 ? key.slice(dash + 1) : ''
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN
  if (target === '' || !(port >= 1 && port <= 65535)) {
    throw new BalancerError(ErrorCode.Validation, `"${key}" is not {target}-{port}`, [{ path: 'path.member', message: `expected {target}-{port} with a port 1-65535, got "${key}"` }])
  }
  return { target, port }
}

/** Percent-encodes one path segment but keeps `:` readable, as the seed writes it (`/server/:8080`). */
export function pathSegment(s: string): string {
  return encodeURIComponent(s).replaceAll('%3A', ':')
}

export function serverUrl(address: string): string {
  return `/server/${pathSegment(address)}`
}

/** URL of a route, or of the server itself for the default route's nested resources. */
export function routeBase(address: string, name: string | undefined): string {
  return name === undefined ? serverUrl(address) : `${serverUrl(address)}/route/${pathSegment(name)}`
}
