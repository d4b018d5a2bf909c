// Which HTTP versions an address speaks. A plain address: the server's
// `Protocols`, `http/1.1` and optionally `h2c` (HTTP/2 with prior knowledge:
// the client opens with the HTTP/2 preface); absent, `http/1.1` only. A TLS
// address: its tls group's `Alpn`, the protocols offered in the handshake
// in preference order, `h2` and `http/1.1`; absent, both, h2 first.
// Names are read in any letter case and written lower-case, duplicates
// refused; HTTP/1.1 cannot be left out of a plain address (it is what every
// client can fall back to, and h2c has no negotiation to fall back by).

import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { describeValue, isMissing } from './fields.ts'

export const PLAIN_PROTOCOLS = ['http/1.1', 'h2c'] as const
export const ALPN_PROTOCOLS = ['h2', 'http/1.1'] as const

/** A list of protocol names from `allowed`; undefined when absent (or null). */
function readList(found: Found | undefined, allowed: readonly string[], problems: Problem[]): string[] | undefined {
  if (found === undefined || isMissing(found)) return undefined
  const raw: unknown = typeof found.value === 'string' ? found.value.split(',') : found.value
  if (!Array.isArray(raw)) {
    problems.push({ path: found.path, message: `must be a list of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describeValue(found.value)}` })
    return undefined
  }
  const out: string[] = []
  let ok = true
  raw.forEach((v: unknown, i) => {
    const at = typeof found.value === 'string' ? found.path : `${found.path}[${i}]`
    const name = typeof v === 'string' ? v.trim().toLowerCase() : null
    if (name === null || !allowed.includes(name)) {
      problems.push({ path: at, message: `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describeValue(v)}` })
      ok = false
    } else if (out.includes(name)) {
      problems.push({ path: at, message: `${JSON.stringify(name)} is listed twice` })
      ok = false
    } else out.push(name)
  })
  if (!ok) return undefined
  if (out.length === 0) {
    problems.push({ path: found.path, message: `must name at least one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}` })
    return undefined
  }
  return out
}

/** A server's `Protocols`; `tls`: the server has a tls group (then only `http/1.1` makes sense here). */
export function readProtocols(found: Found | undefined, tls: boolean, problems: Problem[]): string[] | undefined {
  const list = readList(found, PLAIN_PROTOCOLS, problems)
  if (list === undefined || found === undefined) return undefined
  if (!list.includes('http/1.1')) {
    problems.push({ path: found.path, message: 'must include "http/1.1"' })
    return undefined
  }
  if (tls && list.includes('h2c')) {
    problems.push({ path: found.path, message: '"h2c" is for plain addresses; a TLS address offers HTTP/2 by ALPN (tls.Alpn, "h2" by default)' })
    return undefined
  }
  return list
}

/** A tls group's `Alpn`. */
export function readAlpn(found: Found | undefined, problems: Problem[]): string[] | undefined {
  return readList(found, ALPN_PROTOCOLS, problems)
}
