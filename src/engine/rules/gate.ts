// The route rules that decide whether a request may go upstream at all
// (RulesPlan.gated), for every client protocol: access (Deny/Allow,
// BasicAuth, ForwardAuth), then the rate limit (429 with Retry-After), then
// body (a declared Content-Length over MaxRequestBytes), in the order README
// "Route rules" gives. The protocol
// (http1/rules-gate.ts, h2/request.ts) reads what the rules need of the
// request into a GateRequest, synchronously, before anything waits; a route
// without such rules never gets here.
//
// A check that waits (a password hash, the auth service) resumes the
// exchange only if it is still on that request (Exchange.reqSeq, and the
// front still live); meanwhile the client's body waits, bounded by the
// protocol's own flow control (HTTP/1.1: the socket is not read past its
// buffer; HTTP/2: the stream's window).

import type { ForwardAuthPlan } from '../../compiler/snapshot.ts'
import type { Exchange } from '../exchange.ts'
import { startExchange } from '../exchange.ts'
import { Verdict, accessAddress } from './access.ts'
import { forwardAuth } from './forward-auth.ts'
import type { AuthAnswer, AuthRequest } from './forward-auth.ts'
import type { RulesRuntime } from './runtime.ts'

/** What the gate needs of a request; `auth` only when the route has ForwardAuth. */
export interface GateRequest {
  clientIp: string
  /** The peer is a --trusted-proxies address: xff is believed. */
  trusted: boolean
  /** X-Forwarded-For values joined by `, ` ('' when none or not trusted). */
  xff: string
  /** The Authorization value, or null. */
  authorization: string | null
  /** The value of the rate limit's SourceHeader (null: none, or no such header sent). */
  source: string | null
  /** The declared body length; -1 when none (chunked, or no body). */
  contentLength: number
  auth: AuthRequest | null
}

const CHALLENGE: ReadonlyArray<readonly [string, string]> = [['www-authenticate', 'Basic realm="balancer", charset="UTF-8"']]
const EMPTY = Buffer.alloc(0)

/** true: the request goes on now (the caller starts the exchange); false: it was answered, or a check runs and will resume it. */
export function gate(ex: Exchange, rules: RulesRuntime, req: GateRequest): boolean {
  const a = rules.access
  if (a === null) return afterAccess(ex, rules, req)
  if (a.allow !== null || a.deny !== null) {
    if (!a.addressAllowed(clientAddress(ex, req))) return refuse(ex, 403)
  }
  const fwd = a.plan.forward
  if (a.plan.users.size !== 0) {
    const seq = ex.reqSeq
    const v = a.basic(req.authorization, ex.ctx.verifier, (ok) => afterBasic(ex, seq, ok, fwd, rules, req))
    if (v === Verdict.Refuse) return refuse(ex, 401)
    if (v === Verdict.Busy) return refuse(ex, 503)
    if (v === Verdict.Pending) return false
  }
  if (fwd !== null && req.auth !== null) {
    askAuth(ex, fwd, rules, req)
    return false
  }
  return afterAccess(ex, rules, req)
}

/** The address access and the rate limit see: the peer's, or behind a trusted proxy its last untrusted X-Forwarded-For address. */
function clientAddress(ex: Exchange, req: GateRequest): string {
  return req.trusted ? accessAddress(req.clientIp, true, req.xff, ex.ctx.isTrusted) : req.clientIp
}

/** The rate limit, then the body's declared length; true: the request goes on. */
function afterAccess(ex: Exchange, rules: RulesRuntime, req: GateRequest): boolean {
  const limiter = rules.limiter
  if (limiter !== null) {
    const key = req.source !== null ? `h:${req.source}` : clientAddress(ex, req)
    const wait = limiter.take(key, ex.ctx.now, ex.ctx.limitShare)
    if (wait !== 0) {
      ex.front.respondWith(
        ex,
        429,
        [
          ['content-type', 'text/plain; charset=utf-8'],
          ['retry-after', String(wait)],
        ],
        TOO_MANY,
      )
      return false
    }
  }
  const body = rules.plan.body
  if (body !== null) {
    const max = body.maxRequestBytes
    ex.bodyMax = max
    if (req.contentLength > max) return refuse(ex, 413)
  }
  return true
}

const TOO_MANY = Buffer.from('429 Too Many Requests\n', 'latin1')

function refuse(ex: Exchange, status: number): false {
  if (status === 401) ex.front.respondWith(ex, 401, CHALLENGE, EMPTY)
  else ex.front.respond(ex, status)
  return false
}

function current(ex: Exchange, seq: number): boolean {
  return ex.front.live(ex) && ex.reqSeq === seq && ex.uc === null && !ex.resStarted
}

function afterBasic(ex: Exchange, seq: number, ok: boolean, fwd: ForwardAuthPlan | null, rules: RulesRuntime, req: GateRequest): void {
  if (!current(ex, seq)) return
  ex.ctx.now = Date.now()
  if (!ok) {
    refuse(ex, 401)
    return
  }
  if (fwd !== null && req.auth !== null) return askAuth(ex, fwd, rules, req)
  if (afterAccess(ex, rules, req)) startExchange(ex)
}

function askAuth(ex: Exchange, fwd: ForwardAuthPlan, rules: RulesRuntime, req: GateRequest): void {
  const seq = ex.reqSeq
  forwardAuth(fwd, req.auth as AuthRequest, (ans) => afterAuth(ex, seq, ans, rules, req))
}

function afterAuth(ex: Exchange, seq: number, ans: AuthAnswer, rules: RulesRuntime, req: GateRequest): void {
  if (!current(ex, seq)) return
  ex.ctx.now = Date.now()
  if (!ans.pass) {
    if (ans.fields.length === 0 && ans.body.length === 0 && (ans.status === 502 || ans.status === 504)) return ex.front.respond(ex, ans.status)
    return ex.front.respondWith(ex, ans.status, ans.fields, ans.body)
  }
  if (ans.fields.length !== 0) {
    // Before the blank line, or at the end of a head left open for its Host (Exchange.hostless).
    let extra = ''
    for (const [n, v] of ans.fields) extra += `${n}: ${v}\r\n`
    ex.outHead = ex.hostless ? ex.outHead + extra : `${ex.outHead.slice(0, -2)}${extra}\r\n`
  }
  if (afterAccess(ex, rules, req)) startExchange(ex)
}
