// Which certificate a handshake gets: the one naming the SNI server name
// exactly, else the wildcard one label up (`*.example.com` for
// `www.example.com`: the only wildcard a client accepts for that name, and
// so the longest that can match), else the listener's default (its first
// certificate). No SNI: the default. Among certificates naming the same
// name, the first in the listener's order wins.
//
// Built when a snapshot or the certificates change, never per handshake.
// With one certificate there is nothing to choose: no callback runs during
// its handshakes at all.

import type { TlsPlan } from '../../compiler/snapshot.ts'
import type { BuiltCert } from './certs.ts'

export interface TlsRuntime {
  readonly plan: TlsPlan
  /** The default certificate's context (or one without a certificate when the listener has none). */
  readonly fallback: BuiltCert
  /** null: one certificate serves every name. */
  readonly exact: ReadonlyMap<string, BuiltCert> | null
  /** Wildcard certificates by the domain they cover one label below: `example.com` for `*.example.com`. */
  readonly wild: ReadonlyMap<string, BuiltCert>
  /** The ALPN offer, in wire form (length-prefixed protocol names). */
  readonly alpn: Buffer
}

export function tlsRuntime(plan: TlsPlan, certs: readonly BuiltCert[], none: () => BuiltCert): TlsRuntime {
  const alpn = Buffer.concat(plan.alpn.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])))
  const first = certs[0]
  if (first === undefined) return { plan, fallback: none(), exact: null, wild: new Map(), alpn }
  if (certs.length === 1) return { plan, fallback: first, exact: null, wild: new Map(), alpn }
  const exact = new Map<string, BuiltCert>()
  const wild = new Map<string, BuiltCert>()
  for (const c of certs) {
    for (const name of c.entry.names) {
      if (name.startsWith('*.')) {
        if (!wild.has(name.slice(2))) wild.set(name.slice(2), c)
      } else if (!exact.has(name)) exact.set(name, c)
    }
  }
  return { plan, fallback: first, exact, wild, alpn }
}

/** The certificate for `servername` as the client sent it (any case, maybe a trailing dot); '' for no SNI. */
export function selectCert(rt: TlsRuntime, servername: string): BuiltCert {
  const exact = rt.exact
  if (exact === null || servername === '') return rt.fallback
  let name = servername.toLowerCase()
  if (name.endsWith('.')) name = name.slice(0, -1)
  const hit = exact.get(name)
  if (hit !== undefined) return hit
  const dot = name.indexOf('.')
  if (dot > 0) {
    const w = rt.wild.get(name.slice(dot + 1))
    if (w !== undefined) return w
  }
  return rt.fallback
}
