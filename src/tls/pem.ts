// What a certificate chain and key are, checked before anything serves
// them: every PEM block parses, the key is a private key and belongs to
// the first certificate, the certificate is valid now, and OpenSSL builds a
// server context from the pair with the engine's TLS profile. Each refusal
// is an E_TLS_CERT naming the file (or upload) and saying what is wrong.

import { X509Certificate, createPrivateKey } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { serverContext } from '../engine/tls/profile.ts'

export interface CertInfo {
  /** DNS names (lower-case; `*.x` wildcards) from subjectAltName, or the CN when it has none: what SNI selects by. */
  names: string[]
  /** IP addresses the certificate names. */
  ips: string[]
  subject: string
  issuer: string
  /** Epoch ms. */
  notBefore: number
  notAfter: number
  /** SHA-256 of the leaf, hex with colons. */
  fingerprint: string
  serial: string
}

/** Where the PEM came from, for messages: a path (`servers[0].tls.Certificates[0].CertFile`) and what it is (`/etc/certs/site.pem`). */
export interface PemSource {
  certPath: string
  keyPath: string
  certName: string
  keyName: string
}

const BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

function refuse(path: string, message: string): BalancerError {
  return new BalancerError(ErrorCode.TlsCert, `${path}: ${message}`, [{ path, message }])
}

/**
 * Checks a chain and key; returns what the leaf says. `now`: epoch ms the
 * validity is checked at; null: the dates are not checked (a stored
 * certificate that expired is still listed). Throws E_TLS_CERT.
 */
export function inspectPair(certPem: string, keyPem: string, src: PemSource, now: number | null = Date.now()): CertInfo {
  const blocks = certPem.match(BLOCK) ?? []
  if (blocks.length === 0) throw refuse(src.certPath, `${src.certName} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`)
  const chain: X509Certificate[] = []
  for (const [i, b] of blocks.entries()) {
    try {
      chain.push(new X509Certificate(b))
    } catch (err) {
      throw refuse(src.certPath, `${src.certName}: certificate ${i + 1} of the chain does not parse (${(err as Error).message})`)
    }
  }
  let key: KeyObject
  try {
    key = createPrivateKey(keyPem)
  } catch (err) {
    throw refuse(src.keyPath, `${src.keyName} is not a PEM private key (${(err as Error).message})`)
  }
  const leaf = chain[0] as X509Certificate
  if (!leaf.checkPrivateKey(key)) throw refuse(src.keyPath, `${src.keyName} is not the key of the certificate in ${src.certName} (${leaf.subject.replaceAll('\n', ', ')})`)
  const notBefore = Date.parse(leaf.validFrom)
  const notAfter = Date.parse(leaf.validTo)
  if (now !== null && now > notAfter) throw refuse(src.certPath, `${src.certName}: the certificate expired on ${new Date(notAfter).toISOString()}`)
  if (now !== null && now < notBefore) throw refuse(src.certPath, `${src.certName}: the certificate is not valid before ${new Date(notBefore).toISOString()}`)
  try {
    serverContext(certPem, keyPem, Buffer.alloc(48))
  } catch (err) {
    throw refuse(src.certPath, `${src.certName} with ${src.keyName}: ${(err as Error).message}`)
  }
  const { dns, ips } = altNames(leaf)
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(leaf.subject)?.[1]
  return {
    names: dns.length > 0 ? dns : cn !== undefined ? [cn.toLowerCase()] : [],
    ips,
    subject: leaf.subject.replaceAll('\n', ', '),
    issuer: leaf.issuer.replaceAll('\n', ', '),
    notBefore,
    notAfter,
    fingerprint: leaf.fingerprint256,
    serial: leaf.serialNumber,
  }
}

function altNames(c: X509Certificate): { dns: string[]; ips: string[] } {
  const dns: string[] = []
  const ips: string[] = []
  for (const part of (c.subjectAltName ?? '').split(', ')) {
    if (part.startsWith('DNS:')) {
      const n = part.slice(4).toLowerCase()
      if (!dns.includes(n)) dns.push(n)
    } else if (part.startsWith('IP Address:')) ips.push(part.slice(11))
  }
  return { dns, ips }
}
