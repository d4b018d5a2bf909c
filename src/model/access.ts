// The `access` group of a server or route: who may use the route. Checked in
// this order, the first that refuses answers:
//
//   Deny, Allow   lists of IP addresses or CIDRs, IPv4 and IPv6. The address
//                 checked is the client's; from a --trusted-proxies peer, the
//                 last X-Forwarded-For address that is not itself a trusted
//                 proxy (one notion of trusted proxy for forwarding headers
//                 and access). In Deny: 403. Allow not empty and not in it: 403.
//   BasicAuth     htpasswd lines `user:hash`, hashes bcrypt (`$2y$`, `$2a$`,
//                 `$2b$`, cost 4-14: `htpasswd -B`) or argon2 (`$argon2id$`,
//                 `$argon2i$`, `$argon2d$`). Plain, MD5 (`$apr1$`), SHA
//                 (`{SHA}`) and crypt hashes are refused: they are cheap to
//                 crack. Without valid credentials: 401 with WWW-Authenticate.
//   ForwardAuth   {Address, ResponseHeaders, Timeout}: the request's head goes
//                 to an auth service (`http://host:port/path`); a 2xx lets the
//                 request through with ResponseHeaders copied from the auth
//                 response onto it; any other answer goes to the client as it
//                 is. Timeout (default 5s, 10ms-1m): then 504.
//
// An empty group (`{}`) refuses nobody.

import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { describeValue, isMissing, joinPath, readFields } from './fields.ts'
import { cidrProblem } from './cidr.ts'
import { formatDuration, parseDuration } from './duration.ts'
import type { Access, ForwardAuth } from './types.ts'

const FIELDS = ['Allow', 'Deny', 'BasicAuth', 'ForwardAuth'] as const
const FORWARD_FIELDS = ['Address', 'ResponseHeaders', 'Timeout'] as const
export const ACCESS_FIELDS: readonly string[] = FIELDS

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/
const ARGON2 = /^\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'content-length', 'host'])
export const FORWARD_AUTH_TIMEOUT = '5s'

export function readAccess(raw: unknown, path: string, problems: Problem[]): Access | null {
  const before = problems.length
  const f = readFields(raw, path, FIELDS, problems)
  if (f === null) return null
  const allow = readCidrs(f.Allow, problems)
  const deny = readCidrs(f.Deny, problems)
  const basic = readUsers(f.BasicAuth, problems)
  const fwd = isMissing(f.ForwardAuth) ? null : readForward(f.ForwardAuth as Found, problems)
  if (problems.length > before || allow === null || deny === null || basic === null) return null
  return { Allow: allow, Deny: deny, BasicAuth: basic, ForwardAuth: fwd }
}

/** A list, or one comma-separated string (labels). */
function items(f: Found, split: RegExp, what: string, problems: Problem[]): Array<{ v: unknown; path: string }> | null {
  const v = f.value
  if (typeof v === 'string')
    return v
      .split(split)
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map((s) => ({ v: s, path: f.path }))
  if (Array.isArray(v)) return v.map((x: unknown, i) => ({ v: x, path: `${f.path}[${i}]` }))
  problems.push({ path: f.path, message: `must be a list of ${what}, got ${describeValue(v)}` })
  return null
}

function readCidrs(f: Found | undefined, problems: Problem[]): string[] | null {
  if (f === undefined || isMissing(f)) return []
  const list = items(f, /,/, 'IP addresses or CIDRs', problems)
  if (list === null) return null
  const out: string[] = []
  let ok = true
  for (const { v, path } of list) {
    const s = typeof v === 'string' ? v.trim().toLowerCase() : null
    const bad = s === null ? `must be an IP address or a CIDR, got ${describeValue(v)}` : cidrProblem(s)
    if (bad !== null) {
      problems.push({ path, message: bad })
      ok = false
    } else if (!out.includes(s as string)) out.push(s as string)
  }
  return ok ? out : null
}

/** Which hash an htpasswd line's hash is; null when it is not one we accept. */
export function hashKind(hash: string): 'bcrypt' | 'argon2' | null {
  const b = BCRYPT.exec(hash)
  if (b !== null) {
    const cost = Number(b[1])
    return cost >= 4 && cost <= 14 ? 'bcrypt' : null
  }
  return ARGON2.test(hash) ? 'argon2' : null
}

function weakHash(hash: string): string {
  if (hash.startsWith('$apr1$') || hash.startsWith('$1$')) return 'an MD5 hash'
  if (hash.startsWith('{SHA}') || hash.startsWith('$5$') || hash.startsWith('$6$')) return 'a SHA hash'
  if (BCRYPT.test(hash)) return 'a bcrypt hash with a cost outside 4-14'
  return 'not a bcrypt or argon2 hash (a plain password or crypt)'
}

function readUsers(f: Found | undefined, problems: Problem[]): string[] | null {
  if (f === undefined || isMissing(f)) return []
  // Labels: `alice:$2y$...,bob:$2y$...`; an argon2 hash has commas of its own, so a comma splits only before `user:$`.
  const list = items(f, /,\s*(?=[^,:$\s]+:\$)/, 'htpasswd lines "user:hash"', problems)
  if (list === null) return null
  const out: string[] = []
  const users = new Set<string>()
  let ok = true
  for (const { v, path } of list) {
    const line = typeof v === 'string' ? v.trim() : ''
    const colon = line.indexOf(':')
    const user = colon > 0 ? line.slice(0, colon) : ''
    const hash = colon > 0 ? line.slice(colon + 1) : ''
    let bad: string | null = null
    if (user === '' || /[\u0000-\u0020\u007f]/.test(user)) bad = `must be an htpasswd line "user:hash" (htpasswd -nB user), got ${typeof v === 'string' ? 'a line without a user' : describeValue(v)}`
    else if (hashKind(hash) === null) bad = `the hash of ${JSON.stringify(user)} is ${weakHash(hash)}: use bcrypt (htpasswd -B) or argon2`
    else if (users.has(user)) bad = `user ${JSON.stringify(user)} is listed twice`
    if (bad !== null) {
      problems.push({ path, message: bad })
      ok = false
      continue
    }
    users.add(user)
    out.push(line)
  }
  return ok ? out : null
}

function readForward(found: Found, problems: Problem[]): ForwardAuth | null {
  const before = problems.length
  const f = readFields(found.value, found.path, FORWARD_FIELDS, problems)
  if (f === null) return null
  const address = readAddress(f.Address, joinPath(found.path, 'Address'), problems)
  let headers: string[] = []
  if (!isMissing(f.ResponseHeaders)) {
    const list = items(f.ResponseHeaders as Found, /,/, 'header names', problems) ?? []
    for (const { v, path } of list) {
      const n = typeof v === 'string' ? v.trim() : ''
      if (!TOKEN.test(n) || HOP.has(n.toLowerCase())) problems.push({ path, message: `must be a header name that is not hop-by-hop, framing or Host, got ${describeValue(v)}` })
      else if (!headers.includes(n.toLowerCase())) headers = [...headers, n.toLowerCase()]
    }
  }
  let timeout = FORWARD_AUTH_TIMEOUT
  const t = f.Timeout
  if (!isMissing(t)) {
    const v = (t as Found).value
    const ms = typeof v === 'number' && Number.isInteger(v) ? v : typeof v === 'string' && /[a-z]\s*$/i.test(v) ? parseDuration(v.toLowerCase()) : null
    if (ms === null || ms < 10 || ms > 60_000) problems.push({ path: (t as Found).path, message: `must be a duration between 10ms and 1m, got ${describeValue(v)}` })
    else timeout = formatDuration(ms)
  }
  if (problems.length > before || address === null) return null
  return { Address: address, ResponseHeaders: headers, Timeout: timeout }
}

function readAddress(f: Found | undefined, missingPath: string, problems: Problem[]): string | null {
  const v = f?.value
  let url: URL | null = null
  if (typeof v === 'string') {
    try {
      url = new URL(v.trim())
    } catch {
      url = null
    }
  }
  if (url === null || url.protocol !== 'http:' || url.hostname === '' || url.username !== '' || url.hash !== '' || /[\u0000-\u0020\u007f-\uffff]/.test(String(v).trim())) {
    problems.push({ path: f?.path ?? missingPath, message: `required: the auth service's URL, http://host:port/path, got ${describeValue(v)}` })
    return null
  }
  return url.href
}
