// What the gating route rules (rules/gate.ts) need of an HTTP/1 request,
// read from the parse's scratch table before anything waits: the
// Authorization value, the X-Forwarded-For values (from a trusted proxy),
// the rate limit's SourceHeader value,
// the declared body length, and for ForwardAuth the whole list of fields.
// Runs only for routes whose rules are gated.

import { gate } from '../rules/gate.ts'
import type { AuthRequest } from '../rules/forward-auth.ts'
import type { RulesRuntime } from '../rules/runtime.ts'
import { equalsLower } from './chars.ts'
import type { ClientConn } from './conn.ts'
import { HDR, HF, Kind } from './fields.ts'
import { Form } from './parse.ts'
import type { RequestHead } from './parse.ts'

/** true: the request goes on now; false: it was answered, or a check is running and will resume it. */
export function gateH1(conn: ClientConn, buf: Buffer, h: RequestHead, rules: RulesRuntime): boolean {
  const a = rules.access
  const rl = rules.limiter === null ? null : rules.limiter.plan
  const xff = conn.trusted && ((a !== null && (a.allow !== null || a.deny !== null)) || rl !== null) ? values(buf, h, Kind.XForwardedFor) : ''
  const authorization = a !== null && a.plan.users.size !== 0 ? authorizationOf(buf, h) : null
  const source = rl === null || rl.sourceHeader === '' ? null : valueOf(buf, h, rl.sourceHeader)
  const auth = a !== null && a.plan.forward !== null ? authRequest(conn, buf, h) : null
  const contentLength = h.teChunked === 0 && h.clCount === 1 ? h.contentLength : -1
  return gate(conn, rules, { clientIp: conn.clientIp, trusted: conn.trusted, xff, authorization, source, contentLength, auth })
}

/** The values of every field of `kind`, joined by `, ` ('' when none). */
function values(buf: Buffer, h: RequestHead, kind: number): string {
  let out = ''
  for (let i = 0; i < h.nHeaders; i++) {
    const o = i * HF
    if (HDR[o + 5] !== kind) continue
    const v = buf.latin1Slice(HDR[o + 2] as number, HDR[o + 3] as number)
    out = out === '' ? v : `${out}, ${v}`
  }
  return out
}

/** The first Authorization value, or null. */
function authorizationOf(buf: Buffer, h: RequestHead): string | null {
  return valueOf(buf, h, 'authorization')
}

/** The first value of the field named `lower` (lower-case), or null. */
function valueOf(buf: Buffer, h: RequestHead, lower: string): string | null {
  const len = lower.length
  for (let i = 0; i < h.nHeaders; i++) {
    const o = i * HF
    const ns = HDR[o] as number
    if ((HDR[o + 1] as number) - ns === len && equalsLower(buf, ns, ns + len, lower)) return buf.latin1Slice(HDR[o + 2] as number, HDR[o + 3] as number)
  }
  return null
}

function authRequest(conn: ClientConn, buf: Buffer, h: RequestHead): AuthRequest {
  const fields: Array<readonly [string, string]> = []
  for (let i = 0; i < h.nHeaders; i++) {
    const o = i * HF
    fields.push([buf.latin1Slice(HDR[o] as number, HDR[o + 1] as number).toLowerCase(), buf.latin1Slice(HDR[o + 2] as number, HDR[o + 3] as number)])
  }
  const host = h.form === Form.Absolute ? buf.latin1Slice(h.authStart, h.authEnd) : h.hostCount === 0 ? '' : buf.latin1Slice(h.hostStart, h.hostEnd)
  return { method: buf.latin1Slice(h.start, h.methodEnd), proto: conn.tls ? 'https' : 'http', host, uri: buf.latin1Slice(h.targetStart, h.targetEnd), clientIp: conn.clientIp, fields }
}
