// Session ticket keys: derived from a secret and the current hour, so every
// engine given the same secret (the workers of one balancer) encrypts and
// decrypts tickets with the same key without talking to the others, and the
// key changes every hour everywhere at once (forward secrecy of resumed
// sessions is bounded by the hour). OpenSSL holds one key per context: a
// ticket issued before a rotation is refused after it and that client does
// a full handshake, at most once an hour.
//
// 80 bytes (OpenSSL's name, HMAC and AES parts, openssl.ts): HKDF-SHA-384
// of the secret and the hour.

// node:crypto loads with the first key asked for (profile.ts says why).

import { TICKET_KEY_BYTES } from './openssl.ts'

export const ROTATE_MS = 3_600_000

export class TicketKeys {
  readonly #secretHex: string
  #secret: Buffer | null = null
  #epoch = -1
  #key: Buffer = Buffer.alloc(TICKET_KEY_BYTES)

  /** secretHex: '' gives a random secret (this engine alone resumes its sessions). */
  constructor(secretHex: string) {
    this.#secretHex = secretHex
  }

  /** The key for the hour `now` falls in. */
  keyAt(now: number): Buffer {
    const epoch = Math.floor(now / ROTATE_MS)
    if (epoch !== this.#epoch) {
      this.#epoch = epoch
      const { hkdfSync, randomBytes } = process.getBuiltinModule('node:crypto')
      this.#secret ??= this.#secretHex === '' ? randomBytes(32) : Buffer.from(this.#secretHex, 'hex')
      this.#key = Buffer.from(hkdfSync('sha384', this.#secret, '', `balancer session ticket key ${epoch}`, TICKET_KEY_BYTES))
    }
    return this.#key
  }

  /** True when `now` is in another hour than the last key given (none given yet: nothing to rotate): the caller sets the new key everywhere. */
  due(now: number): boolean {
    return this.#epoch !== -1 && Math.floor(now / ROTATE_MS) !== this.#epoch
  }
}
