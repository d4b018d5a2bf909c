// ForwardAuth at run time, independent of the client's protocol: the
// request's head (its fields, no body) goes to the auth service with
// X-Forwarded-Method, -Proto, -Host, -Uri and -For saying what it was. A 2xx
// answer lets the request through, with the plan's responseHeaders copied
// from the answer; any other answer is returned to the client as it is
// (status, fields, body up to BODY_MAX). No answer within the plan's timeout:
// 504; no connection or a broken answer: 502.
//
// node:http's client is used here, not the engine's own upstream pool: the
// auth call is a side request of a few routes, where a keep-alive Agent is
// cheap enough and handles every framing the auth service may use. It loads
// with the first auth call (a worker without one does not pay for it:
// node:http costs ~14 MiB resident).

import type { Agent, IncomingHttpHeaders } from 'node:http'
import type { ForwardAuthPlan } from '../../compiler/snapshot.ts'

const BODY_MAX = 64 * 1024
let agent: Agent | null = null
/** Fields never passed to the auth service or back to the client from it (hop-by-hop and framing). */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'content-length', 'host'])

export interface AuthAnswer {
  pass: boolean
  status: number
  /** pass: the copied fields; else the answer's fields for the client (lower-case names). */
  fields: Array<readonly [string, string]>
  body: Buffer
}

export interface AuthRequest {
  method: string
  proto: 'http' | 'https'
  host: string
  uri: string
  clientIp: string
  /** The client's fields as received, [lower-case name, value]. */
  fields: ReadonlyArray<readonly [string, string]>
}

function failed(status: number): AuthAnswer {
  return { pass: false, status, fields: [], body: Buffer.alloc(0) }
}

export function forwardAuth(plan: ForwardAuthPlan, req: AuthRequest, done: (a: AuthAnswer) => void): void {
  const headers: Record<string, string | string[]> = {}
  for (const [n, v] of req.fields) {
    if (HOP.has(n) || n.startsWith('x-forwarded-')) continue
    const prev = headers[n]
    headers[n] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v]
  }
  headers.host = plan.authority
  headers['x-forwarded-method'] = req.method
  headers['x-forwarded-proto'] = req.proto
  headers['x-forwarded-host'] = req.host
  headers['x-forwarded-uri'] = req.uri
  headers['x-forwarded-for'] = req.clientIp
  let finished = false
  const finish = (a: AuthAnswer): void => {
    if (finished) return
    finished = true
    clearTimeout(timer)
    done(a)
  }
  const http = process.getBuiltinModule('node:http')
  agent ??= new http.Agent({ keepAlive: true, maxFreeSockets: 64 })
  const out = http.request({ host: plan.host, port: plan.port, path: plan.path, method: 'GET', headers, agent })
  const timer = setTimeout(() => {
    finish(failed(504))
    out.destroy()
  }, plan.timeoutMs)
  out.on('error', () => finish(failed(502)))
  out.on('response', (res) => {
    const status = res.statusCode ?? 502
    if (status >= 200 && status < 300) {
      res.resume()
      finish({ pass: true, status, fields: pick(res.headers, plan.responseHeaders), body: Buffer.alloc(0) })
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    res.on('data', (c: Buffer) => {
      size += c.length
      if (size > BODY_MAX) {
        res.destroy()
        finish(failed(502))
        return
      }
      chunks.push(c)
    })
    res.on('end', () => finish({ pass: false, status, fields: relayed(res.headers), body: Buffer.concat(chunks) }))
    res.on('error', () => finish(failed(502)))
  })
  out.end()
}

function pick(h: IncomingHttpHeaders, names: readonly string[]): Array<readonly [string, string]> {
  const out: Array<readonly [string, string]> = []
  for (const n of names) {
    const v = h[n]
    if (v === undefined) continue
    for (const one of Array.isArray(v) ? v : [v]) out.push([n, one])
  }
  return out
}

function relayed(h: IncomingHttpHeaders): Array<readonly [string, string]> {
  const out: Array<readonly [string, string]> = []
  for (const [n, v] of Object.entries(h)) {
    if (v === undefined || HOP.has(n)) continue
    for (const one of Array.isArray(v) ? v : [v]) out.push([n, one])
  }
  return out
}
