// The engine's certificates: each CertEntry built once into a SecureContext
// (profile.ts), kept while its id and PEM stay the same, and per TLS
// listener the table a handshake picks its certificate from (sni.ts).

import type { SecureContext } from 'node:tls'
import type { TlsPlan } from '../../compiler/snapshot.ts'
import { BalancerError, ErrorCode } from '../../model/errors.ts'
import type { CertEntry } from '../types.ts'
import { setTicketKey } from './openssl.ts'
import { serverContext } from './profile.ts'
import type { NativeContext } from './profile.ts'

export interface BuiltCert {
  readonly entry: CertEntry
  readonly sc: SecureContext
  readonly native: NativeContext
}

export class CertSet {
  #byId = new Map<string, BuiltCert>()
  /** Handshakes on a listener without any certificate fail on this one. */
  #none: BuiltCert | null = null
  /** The current session ticket key (tickets.ts), asked for when a context is built. */
  readonly #ticketKey: () => Buffer

  constructor(ticketKey: () => Buffer) {
    this.#ticketKey = ticketKey
  }

  /**
   * The set `entries` make, without changing this one: an entry whose id and
   * PEM are unchanged keeps its context, a new one is built. Throws
   * E_TLS_CERT naming the entry OpenSSL refused.
   */
  build(entries: readonly CertEntry[]): Map<string, BuiltCert> {
    const next = new Map<string, BuiltCert>()
    for (const e of entries) {
      const prev = this.#byId.get(e.id)
      if (prev !== undefined && prev.entry.cert === e.cert && prev.entry.key === e.key) {
        next.set(e.id, prev.entry.names === e.names ? prev : { ...prev, entry: e })
        continue
      }
      let sc: SecureContext
      try {
        sc = serverContext(e.cert, e.key, this.#ticketKey())
      } catch (err) {
        throw new BalancerError(ErrorCode.TlsCert, `certificate ${describeId(e.id)}: ${(err as Error).message}`, [{ path: describeId(e.id), message: (err as Error).message }])
      }
      next.set(e.id, { entry: e, sc, native: sc.context as NativeContext })
    }
    return next
  }

  /** Makes a set from build() current. */
  commit(next: Map<string, BuiltCert>): void {
    this.#byId = next
  }

  /** The certificates kept in the store (ids `store:...`) of `set` (default: the current one), latest expiry first. */
  stored(set: ReadonlyMap<string, BuiltCert> = this.#byId): BuiltCert[] {
    return [...set.values()].filter((c) => c.entry.id.startsWith('store:')).sort((a, b) => b.entry.notAfter - a.entry.notAfter)
  }

  /** A context without a certificate (built on first use). */
  none(): BuiltCert {
    if (this.#none === null) {
      const sc = serverContext(null, null, this.#ticketKey())
      this.#none = { entry: { id: 'none', cert: '', key: '', names: [], notAfter: 0 }, sc, native: sc.context as NativeContext }
    }
    return this.#none
  }

  /** Every context takes `key` for the tickets it issues and accepts from now on. */
  setTicketKey(key: Buffer): void {
    for (const c of this.#byId.values()) setTicketKey(c.native, key)
    if (this.#none !== null) setTicketKey(this.#none.native, key)
  }

  /** The certificates of `plan`, in its order, from `set` (default: the current one); throws E_TLS_CERT for one it does not hold. */
  resolve(plan: TlsPlan, listener: string, set: ReadonlyMap<string, BuiltCert> = this.#byId): BuiltCert[] {
    const out: BuiltCert[] = []
    for (const f of plan.files) {
      const c = set.get(f.id)
      if (c === undefined) {
        throw new BalancerError(ErrorCode.TlsCert, `${listener}: certificate ${f.certFile} (key ${f.keyFile}) is not loaded`, [
          { path: `${listener}.tls`, message: `certificate ${f.certFile} is not loaded` },
        ])
      }
      out.push(c)
    }
    return out
  }
}

/** `file:<cert>\0<key>` -> `<cert>`, for messages. */
export function describeId(id: string): string {
  if (id.startsWith('file:')) return id.slice(5).split('\u0000')[0] ?? id
  return id
}
