// Who may call the API. Three checks, before anything else runs, on every
// path (/docs and anything registered later included):
// - the Host must be a name the API is reached by (421 E_MISDIRECTED; see
//   host-check.ts for which and why): this is what stops DNS rebinding, where
//   the Origin check below cannot, because Origin and Host are both the
//   attacker's name;
// - cross-origin browser requests are refused (403 E_CROSS_ORIGIN): an Origin
//   whose host differs from the Host the request was sent to, or
//   Sec-Fetch-Site cross-site/same-site. No CORS header is ever sent, so a web
//   page elsewhere can neither read nor (through these checks) write;
// - with a token configured, `Authorization: Bearer <token>` (compared in
//   constant time) or 401 E_UNAUTHORIZED.
// The documentation routes (/docs: Swagger UI and the OpenAPI document) and
// the dashboard's static files (/ui) hold no configuration and are exempt
// from the token, because a browser cannot attach a bearer token to a page
// load; Swagger UI's "Authorize" button and the dashboard's token prompt
// supply it for the API calls they make.
// GET /ready (src/admin/ready.ts) tells only "starting", "ready" or
// "draining" and is exempt too: container health checks and load balancers
// probe it without a token.

import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import type { HostCheck } from './host-check.ts'
import { READY_PATH } from './ready.ts'

export const DOCS_PREFIX = '/docs'
const UI_PREFIX = '/ui'

export function registerAccessChecks(app: FastifyInstance, token: string | null, hosts: HostCheck): void {
  const expected = token === null ? null : digest(token)
  app.addHook('onRequest', async (req) => {
    const misdirected = hosts.refusal(req.headers.host)
    if (misdirected !== null) throw new BalancerError(ErrorCode.Misdirected, misdirected)
    const refused = crossOriginReason(req)
    if (refused !== null) throw new BalancerError(ErrorCode.CrossOrigin, `cross-origin request refused: ${refused}`)
    if (expected === null || isDocs(req) || isReady(req)) return
    const given = bearer(req.headers.authorization)
    // Both sides are hashed to equal length first, so the comparison leaks neither content nor length.
    if (given === null || !timingSafeEqual(digest(given), expected)) {
      throw new BalancerError(ErrorCode.Unauthorized, given === null ? 'this API needs "Authorization: Bearer <token>"' : 'the bearer token is not valid')
    }
  })
}

function crossOriginReason(req: FastifyRequest): string | null {
  const site = req.headers['sec-fetch-site']
  if (site === 'cross-site' || site === 'same-site') return `Sec-Fetch-Site is ${site}`
  const origin = req.headers.origin
  if (origin === undefined) return null
  const host = req.headers.host
  let originHost: string
  let requestHost: string
  try {
    const o = new URL(origin)
    originHost = o.host
    // Parsed with the origin's scheme so default ports compare equal (`x` vs `x:80`).
    requestHost = new URL(`${o.protocol}//${host ?? ''}`).host
  } catch {
    return `Origin "${origin}" is not a URL`
  }
  return originHost.toLowerCase() === requestHost.toLowerCase() ? null : `Origin "${origin}" is not this host`
}

/** Uses the matched route pattern, not the raw URL, so no path trick reaches the API through the exemption. */
function isDocs(req: FastifyRequest): boolean {
  const url = req.routeOptions.url
  return (req.method === 'GET' || req.method === 'HEAD') && url !== undefined && (url === DOCS_PREFIX || url.startsWith(`${DOCS_PREFIX}/`) || url === UI_PREFIX || url.startsWith(`${UI_PREFIX}/`))
}

function isReady(req: FastifyRequest): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && req.routeOptions.url === READY_PATH
}

function bearer(header: string | undefined): string | null {
  const m = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
  return m?.[1] ?? null
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}
