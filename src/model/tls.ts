// The `tls` group of a server, as read from loose input with every problem
// and its path. Present (even `{}`, or `true`), the server's address speaks
// HTTPS; absent (or `null`, `false`), plain HTTP. Whether a file exists and
// holds a usable certificate is checked where files are read
// (src/tls/files.ts), not here: the model does no I/O.
//
//   Certificates  a list of {CertFile, KeyFile}; a single object is taken as
//                 a list of one. Paths are non-empty, without control
//                 characters; the same pair twice is a problem.
//   Acme          {Hosts, Email, Challenge}: a certificate for Hosts ordered
//                 from the ACME CA (src/tls/acme/); see readAcme.
//   Alpn          the protocols offered by ALPN, in preference order
//                 (protocols.ts); absent: h2, then http/1.1.

import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { describeValue, isMissing, isPlainObject, joinPath, readFields, readString } from './fields.ts'
import { readAlpn } from './protocols.ts'
import type { Acme, CertFiles, Tls } from './types.ts'
import { checkFilterHost } from './hostnames.ts'

const TLS_FIELDS = ['Certificates', 'Acme', 'Alpn'] as const
const ACME_FIELDS = ['Hosts', 'Email', 'Challenge'] as const
const CERT_FIELDS = ['CertFile', 'KeyFile'] as const

/** The server's `tls` field: undefined when absent, null or false. */
export function readTls(found: Found | undefined, problems: Problem[]): Tls | undefined {
  if (found === undefined || isMissing(found) || found.value === false) return undefined
  if (found.value === true) return { Certificates: [] }
  const f = readFields(found.value, found.path, TLS_FIELDS, problems)
  if (f === null) return undefined
  const alpn = readAlpn(f.Alpn, problems)
  const acme = readAcme(f.Acme, problems)
  return { Certificates: readCertificates(f.Certificates, problems), ...(acme === undefined ? {} : { Acme: acme }), ...(alpn === undefined ? {} : { Alpn: alpn }) }
}

/**
 * `Acme`: Hosts (required, at least one DNS name; no wildcard, which
 * neither challenge can prove; no IP address), Email (optional, with an
 * `@`), Challenge (`http-01`, the default, or `tls-alpn-01`).
 */
function readAcme(found: Found | undefined, problems: Problem[]): Acme | undefined {
  if (found === undefined || isMissing(found)) return undefined
  const before = problems.length
  const f = readFields(found.value, found.path, ACME_FIELDS, problems)
  if (f === null) return undefined
  const hosts: string[] = []
  const hf = f.Hosts
  if (hf === undefined || isMissing(hf)) problems.push({ path: joinPath(found.path, 'Hosts'), message: 'required: the host names to order a certificate for' })
  else if (!Array.isArray(hf.value)) problems.push({ path: hf.path, message: `must be a list of host names, got ${describeValue(hf.value)}` })
  else {
    hf.value.forEach((v: unknown, i) => {
      const at = `${hf.path}[${i}]`
      const c = typeof v === 'string' ? checkFilterHost(v) : { error: `must be a host name, got ${describeValue(v)}` }
      if ('error' in c) problems.push({ path: at, message: c.error })
      else if (c.value.startsWith('*.'))
        problems.push({ path: at, message: `a wildcard cannot be proved by http-01 or tls-alpn-01, got ${JSON.stringify(v)}; list the names, or upload a wildcard certificate` })
      else if (/^[0-9.]+$/.test(c.value) || c.value.startsWith('[')) problems.push({ path: at, message: `must be a DNS name, not an IP address, got ${JSON.stringify(v)}` })
      else if (!hosts.includes(c.value)) hosts.push(c.value)
    })
    if (hf.value.length === 0) problems.push({ path: hf.path, message: 'must list at least one host name' })
  }
  const email = (readString(f.Email, joinPath(found.path, 'Email'), '', problems) ?? '').trim()
  if (email !== '' && !/^[^\s@]+@[^\s@]+$/.test(email)) problems.push({ path: f.Email?.path ?? joinPath(found.path, 'Email'), message: `must be an e-mail address, got ${JSON.stringify(email)}` })
  const ch = (readString(f.Challenge, joinPath(found.path, 'Challenge'), 'http-01', problems) ?? 'http-01').trim().toLowerCase()
  if (ch !== 'http-01' && ch !== 'tls-alpn-01')
    problems.push({ path: f.Challenge?.path ?? joinPath(found.path, 'Challenge'), message: `must be "http-01" or "tls-alpn-01", got ${JSON.stringify(ch)}` })
  if (problems.length > before) return undefined
  return { Hosts: hosts, Email: email, Challenge: ch as Acme['Challenge'] }
}

function readCertificates(found: Found | undefined, problems: Problem[]): CertFiles[] {
  if (found === undefined || isMissing(found)) return []
  const items = Array.isArray(found.value) ? found.value.map((v: unknown, i) => ({ v, path: `${found.path}[${i}]` })) : isPlainObject(found.value) ? [{ v: found.value, path: found.path }] : null
  if (items === null) {
    problems.push({ path: found.path, message: `must be a list of {"CertFile", "KeyFile"}, got ${describeValue(found.value)}` })
    return []
  }
  const out: CertFiles[] = []
  const seen = new Map<string, string>()
  for (const { v, path } of items) {
    const f = readFields(v, path, CERT_FIELDS, problems)
    if (f === null) continue
    const cert = readPath(f.CertFile, joinPath(path, 'CertFile'), problems)
    const key = readPath(f.KeyFile, joinPath(path, 'KeyFile'), problems)
    if (cert === null || key === null) continue
    const id = `${cert}\n${key}`
    const first = seen.get(id)
    if (first !== undefined) {
      problems.push({ path, message: `same CertFile and KeyFile as ${first}` })
      continue
    }
    seen.set(id, path)
    out.push({ CertFile: cert, KeyFile: key })
  }
  return out
}

function readPath(f: Found | undefined, missingPath: string, problems: Problem[]): string | null {
  const s = readString(f, missingPath, null, problems)
  if (s === null) return null
  const p = s.trim()
  const at = f?.path ?? missingPath
  if (p === '') {
    problems.push({ path: at, message: 'must be a file path, got ""' })
    return null
  }
  if (/[\u0000-\u001f\u007f]/.test(p)) {
    problems.push({ path: at, message: `must be a file path without control characters, got ${JSON.stringify(s)}` })
    return null
  }
  return p
}
