// The TLS settings every listener gets: Mozilla's "intermediate" server
// profile (TLS 1.2 and 1.3; ECDHE key exchange with AES-GCM and
// ChaCha20-Poly1305; X25519, P-256, P-384), with renegotiation refused.
//
// The suite is chosen in the profile's order (AES-128-GCM first), not the
// client's, except that a client whose first choice is ChaCha20-Poly1305
// (one without AES instructions) gets it: the choice Go's TLS, and so
// Caddy, makes. Most clients list AES-256-GCM first; AES-128-GCM is as
// safe a choice (Mozilla's "modern" profile lists it first), its TLS 1.3
// key schedule runs on SHA-256 instead of SHA-384, which this server's
// CPU computes with its SHA instructions, and every record takes four AES
// rounds fewer. The profile's DHE suites are left out, as its
// later revisions do: they would need a DH group per context, and every
// client that has them also has ECDHE.
//
// A certificate's SecureContext is built once, when its certificate arrives
// (setCertificates), never per handshake; the ticket key is set on it then
// and again at every rotation (tickets.ts).
//
// Each context sends one TLS 1.3 session ticket per full handshake, not
// OpenSSL's two, and one per resumed TLS 1.3 connection, sealed with
// OpenSSL's own ticket keys (openssl.ts); the first context built also
// sets glibc's allocator for idle TLS connections (malloc.ts).
//
// node:tls and node:crypto (OpenSSL's state: about 6 MiB resident) load with
// the first context built, not with the engine: a worker that serves no TLS
// listener never loads them.

import type { SecureContext } from 'node:tls'
import { tuneMallocForTls } from './malloc.ts'
import { setTicketKey, tunedContext } from './openssl.ts'

export const PROFILE = Object.freeze({
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  // TLS 1.3 suites (TLS_*), then TLS 1.2 ones: Node hands each kind to its own OpenSSL call.
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  ecdhCurve: 'X25519:prime256v1:secp384r1',
  honorCipherOrder: true,
} as const)

/**
 * No renegotiation at all (a client's attempt gets a no_renegotiation alert);
 * compression is off in OpenSSL 3 already, stated here anyway (CRIME); a
 * client that prefers ChaCha20-Poly1305 gets it despite the server's order.
 */
function secureOptions(): number {
  const { constants } = process.getBuiltinModule('node:crypto')
  return constants.SSL_OP_NO_RENEGOTIATION | constants.SSL_OP_NO_COMPRESSION | constants.SSL_OP_PRIORITIZE_CHACHA
}

/**
 * How long a session ticket is offered for (seconds). Keys rotate every hour
 * (tickets.ts), so a ticket resumes until the next rotation at the latest.
 */
export const SESSION_SECONDS = 3600

/**
 * A server context for one certificate chain and key (PEM); throws what
 * OpenSSL says about them (a key that does not match, garbage). With
 * cert and key null: a context with no certificate, for a listener that has
 * none yet; its handshakes fail with an alert.
 */
export function serverContext(cert: string | null, key: string | null, ticketKey: Buffer): SecureContext {
  const { createSecureContext } = process.getBuiltinModule('node:tls')
  tuneMallocForTls()
  const options = { ...PROFILE, secureOptions: secureOptions(), ...(cert === null || key === null ? {} : { cert, key }), sessionTimeout: SESSION_SECONDS }
  const { value: sc, tuned } = tunedContext(
    SESSION_SECONDS,
    ticketKey,
    () => createSecureContext(options),
    (made) => made.context as NativeContext,
  )
  // A tuned context took the key into OpenSSL already; Node's keeps its ticket-key callback.
  if (!tuned) setTicketKey(sc.context as NativeContext, ticketKey)
  return sc
}

/** The native SecureContext inside a tls.SecureContext: what a TLS handle is created with. */
export interface NativeContext {
  setTicketKeys(keys: Buffer): void
}
