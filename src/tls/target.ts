// Where the reloader's snapshots go when TLS listeners need certificates:
// before a snapshot is applied, the certificate files it names are read
// and checked (a bad one refuses the whole snapshot with E_TLS_CERT, and
// the last good configuration keeps serving), and the engine (or every
// worker) is given the certificates first, so a new listener has them from
// its first connection. A certificate file that changes later is pushed on
// its own, without a snapshot.

import type { CertFileRef, RoutingSnapshot } from '../compiler/snapshot.ts'
import type { CertEntry } from '../engine/types.ts'
import type { Config } from '../model/types.ts'
import { CertFiles } from './files.ts'
import type { CertFilesLog } from './files.ts'

/** The engine, or the worker group: takes snapshots and certificates. */
export interface CertPlane {
  apply(snap: RoutingSnapshot, config: Config): Promise<void>
  setCertificates(entries: readonly CertEntry[]): void | Promise<void>
}

/** Every certificate file pair the snapshot's TLS listeners name. */
export function fileRefs(snap: RoutingSnapshot): CertFileRef[] {
  const out: CertFileRef[] = []
  for (const l of snap.listeners.values()) if (l.tls !== null) out.push(...l.tls.files)
  return out
}

export class TlsTarget {
  readonly #plane: CertPlane
  readonly #log: CertFilesLog
  readonly files: CertFiles
  #applied: CertFileRef[] = []

  constructor(plane: CertPlane, log: CertFilesLog, pollMs?: number) {
    this.#plane = plane
    this.#log = log
    this.files = new CertFiles({ log, onChange: () => void this.#push(), ...(pollMs === undefined ? {} : { pollMs }) })
  }

  async apply(snap: RoutingSnapshot, config: Config): Promise<void> {
    const refs = fileRefs(snap)
    try {
      await this.files.ensure(refs)
      await this.#plane.setCertificates(this.files.entries())
      await this.#plane.apply(snap, config)
    } catch (err) {
      this.files.retain(this.#applied)
      throw err
    }
    this.#applied = refs
    this.files.retain(refs)
  }

  async #push(): Promise<void> {
    try {
      await this.#plane.setCertificates(this.files.entries())
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'the engine refused the reloaded certificates; the last good ones keep serving')
    }
  }

  close(): void {
    this.files.close()
  }
}
