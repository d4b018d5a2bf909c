// The `tls` group of a server, as read from loose input with every problem
// and its path. Present (even `{}`, or `true`), the server's address speaks
// HTTPS; absent (or `null`, `false`), plain HTTP. Whether a file exists and
// holds a usable certificate is checked where files are read
// (src/tls/files.ts), not here: the model does no I/O.
//
//   Certificates  a list of {CertFile, KeyFile}; a single object is taken as
//                 a list of one. Paths are non-empty, without control
//                 characters; the same pair twice is a problem.
//   Alpn          the protocols offered by ALPN, in preference order
//                 (protocols.ts); absent: h2, then http/1.1.

import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { describeValue, isMissing, isPlainObject, joinPath, readFields, readString } from './fields.ts'
import { readAlpn } from './protocols.ts'
import type { CertFiles, Tls } from './types.ts'

const TLS_FIELDS = ['Certificates', 'Alpn'] as const
const CERT_FIELDS = ['CertFile', 'KeyFile'] as const

/** The server's `tls` field: undefined when absent, null or false. */
export function readTls(found: Found | undefined, problems: Problem[]): Tls | undefined {
  if (found === undefined || isMissing(found) || found.value === false) return undefined
  if (found.value === true) return { Certificates: [] }
  const f = readFields(found.value, found.path, TLS_FIELDS, problems)
  if (f === null) return undefined
  const alpn = readAlpn(f.Alpn, problems)
  return { Certificates: readCertificates(f.Certificates, problems), ...(alpn === undefined ? {} : { Alpn: alpn }) }
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
