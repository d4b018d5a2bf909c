// The access group at run time, independent of the client's protocol: the
// HTTP/1 gate (http1/rules-gate.ts) and HTTP/2 streams call these with the
// request's fields as strings. State that must outlive a snapshot while the
// group is unchanged (the cache of verified credentials) lives here, in the
// route's runtime (lb/pick.ts RouteRuntime.rules).
//
// BasicAuth: a request's `Authorization: Basic ...` value is hashed
// (SHA-256) and looked up in a bounded LRU of values verified before; a hit
// passes without a bcrypt/argon2 check, so a valid client pays for one
// verification, not one per request. A miss is verified off the serving
// thread (verifier.ts). An unknown user is verified against a dummy hash of
// the same cost, so the answer's timing does not tell which users exist.

import { BlockList, isIPv6 } from 'node:net'
import type { AccessPlan } from '../../compiler/snapshot.ts'
import type { Verifier } from './verifier.ts'

/** Credentials remembered per route after a successful check. */
const CACHE_MAX = 1024
/** bcrypt of a random password at cost 5 (htpasswd -B's default): what an unknown user is checked against. */
const DUMMY = '$2y$05$9WF86D3COkxslJpNcXo8ouwuHsAUiK3pcMSka0lIutKPipf.icePK'

export const Verdict = { Pass: 0, Refuse: 1, Pending: 2, Busy: 3 } as const

export class AccessRuntime {
  readonly plan: AccessPlan
  readonly allow: BlockList | null
  readonly deny: BlockList | null
  /** SHA-256 of verified Authorization values, least recently used first (Map order). */
  readonly #ok = new Map<string, true>()

  constructor(plan: AccessPlan) {
    this.plan = plan
    this.allow = blockList(plan.allow)
    this.deny = blockList(plan.deny)
  }

  /** The address may use the route (Deny first, then Allow). */
  addressAllowed(ip: string): boolean {
    const family = isIPv6(ip) ? 'ipv6' : 'ipv4'
    if (this.deny !== null && this.deny.check(ip, family)) return false
    return this.allow === null || this.allow.check(ip, family)
  }

  /**
   * Checks an Authorization value (null: none sent). Pass or Refuse at once,
   * or Pending: `done` is called later with the outcome; Busy: too many
   * checks wait, the caller answers 503.
   */
  basic(authorization: string | null, verifier: Verifier, done: (ok: boolean) => void): number {
    if (authorization === null || authorization.length < 7 || authorization.slice(0, 6).toLowerCase() !== 'basic ') return Verdict.Refuse
    const key = sha256(authorization)
    if (this.#ok.has(key)) {
      this.#ok.delete(key) // to the end: most recently used
      this.#ok.set(key, true)
      return Verdict.Pass
    }
    const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon < 0) return Verdict.Refuse
    const hash = this.plan.users.get(decoded.slice(0, colon))
    const accepted = verifier.verify(decoded.slice(colon + 1), hash ?? DUMMY, (ok) => {
      const pass = ok && hash !== undefined
      if (pass) this.#remember(key)
      done(pass)
    })
    return accepted ? Verdict.Pending : Verdict.Busy
  }

  #remember(key: string): void {
    if (this.#ok.size >= CACHE_MAX) {
      const oldest = this.#ok.keys().next()
      if (oldest.done !== true) this.#ok.delete(oldest.value)
    }
    this.#ok.set(key, true)
  }

  /** Credentials remembered now (tests and memory checks). */
  cached(): number {
    return this.#ok.size
  }
}

function blockList(cidrs: readonly string[]): BlockList | null {
  if (cidrs.length === 0) return null
  const list = new BlockList()
  for (const c of cidrs) {
    const slash = c.indexOf('/')
    const ip = slash === -1 ? c : c.slice(0, slash)
    const type = isIPv6(ip) ? 'ipv6' : 'ipv4'
    list.addSubnet(ip, slash === -1 ? (type === 'ipv6' ? 128 : 32) : Number(c.slice(slash + 1)), type)
  }
  return list
}

/**
 * The address access rules check: the peer's, or, when the peer is a
 * trusted proxy, the last X-Forwarded-For address that is not itself trusted
 * (addresses before it were written by whoever the untrusted hop was, and
 * could be anything). `xff`: the request's X-Forwarded-For values joined by
 * commas ('' when none).
 */
export function accessAddress(peerIp: string, peerTrusted: boolean, xff: string, isTrusted: (ip: string) => boolean): string {
  if (!peerTrusted || xff === '') return peerIp
  const parts = xff.split(',')
  for (let i = parts.length - 1; i >= 0; i--) {
    const ip = unbracket((parts[i] as string).trim())
    if (ip === '') continue
    if (!isTrusted(ip)) return ip
  }
  return peerIp
}

function unbracket(s: string): string {
  if (s.startsWith('[')) {
    const end = s.indexOf(']')
    return end < 0 ? s : s.slice(1, end)
  }
  // `1.2.3.4:5678` (some proxies add the port)
  const colon = s.indexOf(':')
  return colon > 0 && s.indexOf(':', colon + 1) < 0 ? s.slice(0, colon) : s
}

/**
 * node:crypto is loaded at the first BasicAuth check, not with the engine:
 * a worker that serves no such route never loads OpenSSL's state.
 */
let crypto: typeof import('node:crypto') | null = null

function sha256(text: string): string {
  crypto ??= process.getBuiltinModule('node:crypto')
  return crypto.createHash('sha256').update(text).digest('base64')
}
