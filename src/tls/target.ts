// Where the control plane's desired states go when TLS listeners need
// certificates: before a configuration is applied, the certificate files it
// names are read and checked (a bad one refuses the whole change with
// E_TLS_CERT, and the last good configuration keeps serving), and the engine
// (or every worker) is given the certificates first, so a new listener has
// them from its first connection. A certificate file that changes later is
// pushed on its own, without an apply.

import type { CertFileRef } from '../compiler/snapshot.ts'
import { certFileId } from '../compiler/compile.ts'
import type { ApplyTarget } from '../control/reloader.ts'
import type { CertEntry } from '../engine/types.ts'
import type { ValidConfig } from '../model/types.ts'
import { CertFiles } from './files.ts'
import type { CertFilesLog } from './files.ts'

/** The engine, or the worker group: takes certificates. */
export interface CertPlane {
  setCertificates(entries: readonly CertEntry[]): void | Promise<void>
}

/** Every certificate file pair the configuration's TLS servers name (what their compiled TlsPlans hold). */
export function fileRefs(config: ValidConfig): CertFileRef[] {
  const out: CertFileRef[] = []
  for (const s of config.servers) for (const c of s.tls?.Certificates ?? []) out.push({ id: certFileId(c.CertFile, c.KeyFile), certFile: c.CertFile, keyFile: c.KeyFile })
  return out
}

/** Other certificates every TLS listener may serve (the store's): their entries, and a way to hear they changed. */
export interface CertSource {
  entries(): CertEntry[]
}

export class TlsTarget implements ApplyTarget {
  readonly #next: ApplyTarget
  readonly #plane: CertPlane
  readonly #log: CertFilesLog
  readonly files: CertFiles
  #sources: CertSource[] = []
  #applied: CertFileRef[] = []
  #onApplied: Array<(config: ValidConfig) => void> = []

  /** next: where the configuration goes once its certificates are in place (engineTarget(engine), or the worker group). */
  constructor(next: ApplyTarget, plane: CertPlane, log: CertFilesLog, pollMs?: number) {
    this.#next = next
    this.#plane = plane
    this.#log = log
    this.files = new CertFiles({ log, onChange: () => void this.push(), ...(pollMs === undefined ? {} : { pollMs }) })
  }

  /** Hears every configuration applied (ACME learns which certificates are wanted). */
  onApplied(fn: (config: ValidConfig) => void): void {
    this.#onApplied.push(fn)
  }

  /** Adds a source of certificates (stored, ACME challenges); call push() when it changes. */
  addSource(s: CertSource): void {
    this.#sources.push(s)
  }

  #entries(): CertEntry[] {
    return [...this.files.entries(), ...this.#sources.flatMap((s) => s.entries())]
  }

  async apply(config: ValidConfig, version: number): Promise<void> {
    const refs = fileRefs(config)
    try {
      await this.files.ensure(refs)
      await this.#plane.setCertificates(this.#entries())
      await this.#next.apply(config, version)
    } catch (err) {
      this.files.retain(this.#applied)
      throw err
    }
    this.#applied = refs
    this.files.retain(refs)
    for (const fn of this.#onApplied) fn(config)
  }

  /** Hands the current certificates to the engine (a file or the store changed). */
  async push(): Promise<void> {
    try {
      await this.#plane.setCertificates(this.#entries())
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'the engine refused the reloaded certificates; the last good ones keep serving')
    }
  }

  close(): void {
    this.files.close()
  }
}
