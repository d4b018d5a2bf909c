// Which certificate a handshake gets: the one naming the SNI server name
// exactly, else the wildcard one label up (`*.example.com` for
// `www.example.com`: the only wildcard a client accepts for that name, and
// so the longest that can match), else the listener's default. No SNI: the
// default. The listener's own certificates (files) come first, in order;
// then the ones kept in the store (uploaded, ACME), the latest to expire
// first, for names its own do not cover.
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

/**
 * The runtime of a listener: its own certificates (files, in order) first,
 * then the certificates kept in the store (latest expiry first) for names
 * its own do not cover. The default is its first certificate; without
 * files, the stored one covering plan.defaultHost, else the first stored.
 */
export function tlsRuntime(plan: TlsPlan, own: readonly BuiltCert[], stored: readonly BuiltCert[], none: () => BuiltCert): TlsRuntime {
  const alpn = Buffer.concat(plan.alpn.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])))
  const all = [...own, ...stored]
  const exact = new Map<string, BuiltCert>()
  const wild = new Map<string, BuiltCert>()
  for (const c of all) {
    for (const name of c.entry.names) {
      if (name.startsWith('*.')) {
        if (!wild.has(name.slice(2))) wild.set(name.slice(2), c)
      } else if (!exact.has(name)) exact.set(name, c)
    }
  }
  let fallback = own[0]
  if (fallback === undefined && plan.defaultHost !== null) fallback = pick(exact, wild, plan.defaultHost)
  fallback ??= stored[0] ?? none()
  if (all.length <= 1) return { plan, fallback, exact: null, wild: new Map(), alpn }
  return { plan, fallback, exact, wild, alpn }
}

function pick(exact: ReadonlyMap<string, BuiltCert>, wild: ReadonlyMap<string, BuiltCert>, name: string): BuiltCert | undefined {
  const hit = exact.get(name)
  if (hit !== undefined) return hit
  const dot = name.indexOf('.')
  return dot > 0 ? wild.get(name.slice(dot + 1)) : undefined
}

/** The certificate for `servername` as the client sent it (any case, maybe a trailing dot); '' for no SNI. */
export function selectCert(rt: TlsRuntime, servername: string): BuiltCert {
  const exact = rt.exact
  if (exact === null || servername === '') return rt.fallback
  let name = servername.toLowerCase()
  if (name.endsWith('.')) name = name.slice(0, -1)
  return pick(exact, rt.wild, name) ?? rt.fallback
}
