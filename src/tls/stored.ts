// Certificates kept in the store (`certs/<name>` in its shared space):
// uploaded through the API (PUT /cert/{name}) or ordered by ACME, and so
// served by every balancer instance sharing the store. Each is checked
// before it is written (E_TLS_CERT naming the field and the problem) and
// again when read: one broken by hand in the store is shown with its error
// and not served; the others keep serving.
//
// Value: {"name", "cert" (PEM chain), "key" (PEM), "origin" ("api" or
// "acme"), "updated" (ISO time)}. The key never leaves this module except
// to the engine: the API shows what status() returns.

import { BalancerError, ErrorCode } from '../model/errors.ts'
import type { CertEntry } from '../engine/types.ts'
import type { SharedItem, SharedSpace } from '../store/shared.ts'
import { sharedKey, sharedName } from '../store/shared.ts'
import type { CertInfo } from './pem.ts'
import { inspectPair } from './pem.ts'

export const CERTS_DIR = 'certs'

/** A certificate name in the store and in /cert/{name}: a host name, a wildcard or a label of one's own choosing. */
export const CERT_NAME = /^(?!.*\.\.)[A-Za-z0-9*][A-Za-z0-9*._-]{0,127}$/

export type CertOrigin = 'api' | 'acme'

export interface StoredValue {
  name: string
  cert: string
  key: string
  origin: CertOrigin
  updated: string
}

export interface StoredStatus {
  name: string
  origin: CertOrigin
  info: CertInfo | null
  /** Why the stored value cannot be served (it is then not served); null when it can. */
  error: string | null
  updated: string | null
}

interface Held {
  value: StoredValue
  info: CertInfo
  version: string
}

export interface StoredLog {
  info(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export function checkCertName(name: string, path: string): void {
  if (!CERT_NAME.test(name)) {
    throw new BalancerError(ErrorCode.Validation, `${path}: a certificate name is 1-128 letters, digits, "*", ".", "_" or "-", got ${JSON.stringify(name)}`, [
      { path, message: `must be 1-128 letters, digits, "*", ".", "_" or "-", got ${JSON.stringify(name)}` },
    ])
  }
}

export class StoredCerts {
  readonly #space: SharedSpace
  readonly #log: StoredLog
  readonly #onChange: () => void
  #held = new Map<string, Held>()
  #broken = new Map<string, { origin: CertOrigin; error: string; updated: string | null }>()
  #signature = ''

  constructor(space: SharedSpace, log: StoredLog, onChange: () => void) {
    this.#space = space
    this.#log = log
    this.#onChange = onChange
  }

  /** Watches the store from now on and reads it once; a failure to read is logged and retried by the watch. */
  async start(signal: AbortSignal): Promise<void> {
    await this.#space.watch(
      CERTS_DIR,
      signal,
      () => void this.refresh().catch((err: unknown) => this.#fail(err)),
      (err) => this.#fail(err),
    )
    await this.refresh().catch((err: unknown) => this.#fail(err))
  }

  #fail(err: unknown): void {
    this.#log.error({ err: err instanceof Error ? err.message : String(err) }, 'stored certificates cannot be read; the last ones read keep serving')
  }

  /** Reads every stored certificate; tells onChange when what is served changed. */
  async refresh(): Promise<void> {
    const items = await this.#space.list(CERTS_DIR)
    const held = new Map<string, Held>()
    const broken = new Map<string, { origin: CertOrigin; error: string; updated: string | null }>()
    for (const item of items) {
      const r = readItem(item)
      if ('error' in r) {
        broken.set(r.name, { origin: r.origin, error: r.error, updated: r.updated })
        if (this.#broken.get(r.name)?.error !== r.error) this.#log.error({ cert: r.name, err: r.error }, 'a stored certificate cannot be served')
      } else held.set(r.value.name, r)
    }
    this.#held = held
    this.#broken = broken
    const sig = [...held.values()].map((h) => `${h.value.name}@${h.version}`).join(',')
    if (sig === this.#signature) return
    this.#signature = sig
    this.#onChange()
  }

  entries(): CertEntry[] {
    return [...this.#held.values()].map((h) => ({ id: `store:${h.value.name}`, cert: h.value.cert, key: h.value.key, names: h.info.names, notAfter: h.info.notAfter }))
  }

  status(): StoredStatus[] {
    const out: StoredStatus[] = []
    for (const h of this.#held.values()) out.push({ name: h.value.name, origin: h.value.origin, info: h.info, error: null, updated: h.value.updated })
    for (const [name, b] of this.#broken) out.push({ name, origin: b.origin, info: null, error: b.error, updated: b.updated })
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  /** The held certificate called `name` (what ACME renews and what the API shows), or undefined. */
  get(name: string): { value: StoredValue; info: CertInfo } | undefined {
    return this.#held.get(name)
  }

  /**
   * Checks and writes a certificate: E_TLS_CERT (paths `certPath`/`keyPath`)
   * when it cannot be served; nothing is written then. Resolves with whether
   * it was created (false: replaced).
   */
  async put(name: string, cert: string, key: string, origin: CertOrigin, paths: { cert: string; key: string }): Promise<{ created: boolean; info: CertInfo }> {
    const info = inspectPair(cert, key, { certPath: paths.cert, keyPath: paths.key, certName: 'the certificate', keyName: 'the key' })
    const value: StoredValue = { name, cert, key, origin, updated: new Date().toISOString() }
    const k = sharedKey(CERTS_DIR, name)
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.#space.get(k)
      const v = await this.#space.put(k, `${JSON.stringify(value, null, 2)}\n`, current?.version ?? null)
      if (v !== null) {
        this.#log.info({ cert: name, origin, names: info.names, notAfter: new Date(info.notAfter).toISOString() }, current === null ? 'certificate stored' : 'certificate replaced')
        await this.refresh()
        return { created: current === null, info }
      }
    }
    throw new BalancerError(ErrorCode.StoreUnavailable, `certificate ${name}: the store kept changing under the write; try again`)
  }

  /** Removes a stored certificate; false when there is none of that name. */
  async delete(name: string): Promise<boolean> {
    const removed = await this.#space.delete(sharedKey(CERTS_DIR, name))
    if (removed) {
      this.#log.info({ cert: name }, 'certificate removed')
      await this.refresh()
    }
    return removed
  }
}

function readItem(item: SharedItem): (Held & { name: string }) | { name: string; origin: CertOrigin; error: string; updated: string | null } {
  const name = sharedName(item.key)
  let v: Partial<StoredValue>
  try {
    v = JSON.parse(item.value) as Partial<StoredValue>
  } catch (err) {
    return { name, origin: 'api', error: `not JSON: ${(err as Error).message}`, updated: null }
  }
  const origin: CertOrigin = v.origin === 'acme' ? 'acme' : 'api'
  const updated = typeof v.updated === 'string' ? v.updated : null
  if (typeof v.cert !== 'string' || typeof v.key !== 'string') return { name, origin, error: 'no "cert" and "key" PEM strings', updated }
  try {
    // Validity dates are shown, not enforced, here: an expired certificate stays listed (and served) until replaced.
    const info = inspectPair(v.cert, v.key, { certPath: 'cert', keyPath: 'key', certName: 'the certificate', keyName: 'the key' }, null)
    return { name, value: { name, cert: v.cert, key: v.key, origin, updated: updated ?? '' }, info, version: item.version }
  } catch (err) {
    return { name, origin, error: (err as Error).message, updated }
  }
}
