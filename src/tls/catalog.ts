// Every certificate the balancer knows, as the API shows it (GET /cert):
// the store's (uploaded, ACME) and the files servers name. Never a private
// key: a view carries names, issuer, dates and state only.

import type { FileCertStatus } from './files.ts'
import type { CertInfo } from './pem.ts'
import type { StoredCerts } from './stored.ts'
import type { AcmeView } from './acme/manager.ts'

/** A certificate expiring within this is shown `expiring`. */
export const EXPIRING_MS = 14 * 86_400_000

export interface CertView {
  /** The store's name; for a file, its CertFile path. */
  name: string
  origin: 'api' | 'acme' | 'file'
  /** `valid`, `expiring` (within 14 days), `expired`, `not yet valid`, or `error` (not served; see `error`). */
  state: string
  /** DNS names (subjectAltName) it is served for. */
  names: string[]
  ips: string[]
  subject: string | null
  issuer: string | null
  notBefore: string | null
  notAfter: string | null
  fingerprint: string | null
  /** What is wrong, when state is `error` (or, for a file, why its last change was refused while the pair before it serves). */
  error: string | null
  /** When it was stored (uploaded or issued); null for files. */
  updated: string | null
  /** Files only. */
  keyFile?: string
  /**
   * Certificates the configuration asks ACME for: its hosts, phase
   * (`pending`, `ordering`, `ordering elsewhere`, `valid`, `covered` by an
   * uploaded certificate, `waiting` after a failure), next renewal, last
   * error and next attempt.
   */
  acme?: AcmeView
}

export interface CertCatalog {
  stored: StoredCerts
  files(): FileCertStatus[]
  acme?(): AcmeView[]
}

function stateOf(info: CertInfo | null, now: number): string {
  if (info === null) return 'error'
  if (now > info.notAfter) return 'expired'
  if (now < info.notBefore) return 'not yet valid'
  return info.notAfter - now < EXPIRING_MS ? 'expiring' : 'valid'
}

function view(name: string, origin: CertView['origin'], info: CertInfo | null, error: string | null, updated: string | null, now: number): CertView {
  return {
    name,
    origin,
    state: stateOf(info, now),
    names: info?.names ?? [],
    ips: info?.ips ?? [],
    subject: info?.subject ?? null,
    issuer: info?.issuer ?? null,
    notBefore: info === null ? null : new Date(info.notBefore).toISOString(),
    notAfter: info === null ? null : new Date(info.notAfter).toISOString(),
    fingerprint: info?.fingerprint ?? null,
    error,
    updated,
  }
}

export function listCerts(c: CertCatalog, now = Date.now()): CertView[] {
  const acme = new Map((c.acme?.() ?? []).map((a) => [a.name, a]))
  const stored = c.stored.status().map((s) => {
    const v = view(s.name, s.origin, s.info, s.error, s.updated, now)
    const a = acme.get(s.name)
    acme.delete(s.name)
    return a === undefined ? v : { ...v, acme: a }
  })
  // Wanted from ACME and not stored yet.
  const waiting = [...acme.values()].map((a) => ({ ...view(a.name, 'acme', null, a.lastError, null, now), state: a.phase, names: [...a.hosts], acme: a }))
  const files = c.files().map((f) => ({ ...view(f.certFile, 'file', f.info, f.error?.message ?? null, null, now), keyFile: f.keyFile }))
  return [...stored, ...waiting, ...files]
}
