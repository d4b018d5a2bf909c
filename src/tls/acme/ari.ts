// ACME Renewal Information (RFC 9773): a CA that offers it (`renewalInfo`
// in its directory) suggests, per certificate, a window to renew in, which
// it may move earlier (a revocation coming, a mis-issuance). When offered,
// renewal happens at a time picked at random in that window; when not (or
// when asking fails), at two thirds of the lifetime. The answer is asked
// for again after the Retry-After the CA gives (between 1 minute and 1 day;
// 6 hours without one).

import { X509Certificate } from 'node:crypto'
import { request as httpsRequest } from 'node:https'
import type { AcmeDirectory } from './order.ts'

const DEFAULT_RETRY_MS = 6 * 3_600_000
const MIN_RETRY_MS = 60_000
const MAX_RETRY_MS = 24 * 3_600_000
/** The directory is fetched again after this (its renewalInfo URL rarely changes). */
const DIRECTORY_TTL_MS = 3_600_000

function b64url(b: Buffer): string {
  return b.toString('base64url')
}

/** Reads a DER length at `i`; returns [length, index after it]. */
function derLength(der: Buffer, i: number): [number, number] {
  const first = der[i] ?? 0
  if (first < 0x80) return [first, i + 1]
  const n = first & 0x7f
  let len = 0
  for (let k = 0; k < n; k++) len = len * 256 + (der[i + 1 + k] ?? 0)
  return [len, i + 1 + n]
}

/** The authority key identifier of a DER certificate (extension 2.5.29.35, its [0] keyIdentifier); null without one. */
function authorityKeyId(der: Buffer): Buffer | null {
  const oid = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x23])
  let at = der.indexOf(oid)
  if (at < 0) return null
  at += oid.length
  // An optional BOOLEAN (critical), then the OCTET STRING holding the extension's value.
  if (der[at] === 0x01) at += 3
  if (der[at] !== 0x04) return null
  ;[, at] = derLength(der, at + 1)
  if (der[at] !== 0x30)
    return null // AuthorityKeyIdentifier ::= SEQUENCE
  ;[, at] = derLength(der, at + 1)
  if (der[at] !== 0x80) return null // keyIdentifier [0] IMPLICIT OCTET STRING
  const [len, start] = derLength(der, at + 1)
  return der.subarray(start, start + len)
}

/**
 * The ARI certificate identifier: base64url(authority key identifier) "."
 * base64url(the serial number's DER content octets). Null when the
 * certificate has no authority key identifier.
 */
export function certId(certPem: string): string | null {
  const x = new X509Certificate(certPem)
  const aki = authorityKeyId(x.raw)
  if (aki === null) return null
  let hex = x.serialNumber.toLowerCase()
  if (hex.length % 2 === 1) hex = `0${hex}`
  // A positive INTEGER whose first bit is set carries a leading zero octet in DER.
  if (/^[89a-f]/.test(hex)) hex = `00${hex}`
  return `${b64url(aki)}.${b64url(Buffer.from(hex, 'hex'))}`
}

interface Fetched {
  status: number
  body: string
  retryAfter: string | undefined
}

function get(url: string, ca: string | null): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    // node:http not imported statically: an ES import of it runs its export getters and loads undici (test/architecture.test.ts).
    const send = u.protocol === 'https:' ? httpsRequest : process.getBuiltinModule('node:http').request
    const req = send(u, { timeout: 10_000, headers: { accept: 'application/json' }, ...(u.protocol === 'https:' && ca !== null ? { ca } : {}) }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        body += c
        if (body.length > 1 << 20) req.destroy(new Error('answer too large'))
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end()
  })
}

function retryAfterMs(h: string | undefined, now: number): number {
  if (h === undefined) return DEFAULT_RETRY_MS
  const secs = Number(h)
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(h) - now
  if (!Number.isFinite(ms)) return DEFAULT_RETRY_MS
  return Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, ms))
}

function suggestedWindow(body: string): { start: number; end: number; key: string } | null {
  try {
    const w = (JSON.parse(body) as { suggestedWindow?: { start?: unknown; end?: unknown } }).suggestedWindow
    const start = Date.parse(String(w?.start ?? ''))
    const end = Date.parse(String(w?.end ?? ''))
    if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) return null
    return { start, end, key: `${start}-${end}` }
  } catch {
    return null
  }
}

export interface RenewalPlan {
  /** Epoch ms to renew at. */
  at: number
  /** Epoch ms to ask the CA again (ARI only); null without ARI. */
  askAgainAt: number | null
  /** `ari` when the CA's window decided, `lifetime` for two thirds of it. */
  source: 'ari' | 'lifetime'
}

/** Asks the CA (when it offers ARI) when to renew; keeps answers until their Retry-After. */
export class RenewalInfo {
  readonly #dir: AcmeDirectory
  #endpoint: { url: string | null; until: number } | null = null
  readonly #answers = new Map<string, { plan: RenewalPlan; window: string }>()

  constructor(dir: AcmeDirectory) {
    this.#dir = dir
  }

  async #renewalInfoUrl(now: number): Promise<string | null> {
    if (this.#endpoint !== null && now < this.#endpoint.until) return this.#endpoint.url
    try {
      const res = await get(this.#dir.url, this.#dir.ca)
      if (res.status !== 200) throw new Error(`the directory answered HTTP ${res.status}`)
      const d = JSON.parse(res.body) as { renewalInfo?: unknown }
      const url = typeof d.renewalInfo === 'string' && d.renewalInfo !== '' ? d.renewalInfo : null
      this.#endpoint = { url, until: now + DIRECTORY_TTL_MS }
      return url
    } catch {
      // Asked again a minute later; what was known meanwhile stays.
      this.#endpoint = { url: this.#endpoint?.url ?? null, until: now + MIN_RETRY_MS }
      return this.#endpoint.url
    }
  }

  /**
   * When to renew the certificate: from the CA's suggested window when it
   * offers ARI, else (or on any failure to ask) at `fallback`.
   */
  async plan(certPem: string, fallback: number, now = Date.now()): Promise<RenewalPlan> {
    const lifetime: RenewalPlan = { at: fallback, askAgainAt: null, source: 'lifetime' }
    let id: string | null
    try {
      id = certId(certPem)
    } catch {
      return lifetime
    }
    if (id === null) return lifetime
    // Answers not needed for a day (their certificate replaced) are forgotten.
    for (const [k, a] of this.#answers) if (a.plan.askAgainAt !== null && now > a.plan.askAgainAt + MAX_RETRY_MS) this.#answers.delete(k)
    const known = this.#answers.get(id)
    if (known !== undefined && known.plan.askAgainAt !== null && now < known.plan.askAgainAt) return known.plan
    const base = await this.#renewalInfoUrl(now)
    if (base === null) return lifetime
    let res: Fetched
    try {
      res = await get(`${base.replace(/\/+$/, '')}/${id}`, this.#dir.ca)
    } catch {
      // Unanswered: what was known (or two thirds of the lifetime) holds, and the CA is asked again a minute later.
      const plan = { ...(known?.plan ?? lifetime), askAgainAt: now + MIN_RETRY_MS }
      this.#answers.set(id, { plan, window: known?.window ?? '' })
      return plan
    }
    const askAgainAt = now + retryAfterMs(res.retryAfter, now)
    const window = res.status === 200 ? suggestedWindow(res.body) : null
    let plan: RenewalPlan
    if (window === null) plan = { ...(known?.plan ?? lifetime), askAgainAt }
    else {
      // The same window keeps the time picked in it: asking again does not move the renewal around.
      const at = known !== undefined && known.window === window.key ? known.plan.at : window.start + Math.floor(Math.random() * (window.end - window.start))
      plan = { at, askAgainAt, source: 'ari' }
    }
    this.#answers.set(id, { plan, window: window?.key ?? '' })
    return plan
  }
}
