// The errors group at run time, for every client protocol: an answer with
// one of the route's statuses, the upstream's (http1/relay.ts,
// h2/relay.ts, h2/up-relay.ts call this before anything of the response
// went to the client) or the balancer's own (the fronts' respond), is
// replaced by the route's page, fetched when needed: GET from an upstream
// that renders pages (node:http: a side request of a few routes, like
// ForwardAuth) or read from a static file; node:http and node:fs/promises
// load with the first page fetched (a worker without an errors group does
// not pay for them: ~14 MiB resident). The status stays. A page that
// cannot be had within the timeout, or is over PAGE_MAX, leaves the plain
// answer; an exchange that is no longer on that request when the page
// arrives is left alone.

import type { Agent } from 'node:http'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ErrorPagesPlan } from '../../compiler/snapshot.ts'
import type { Exchange } from '../exchange.ts'
import { Timer, leaveQueue } from '../exchange.ts'
import { discard } from '../upstream/pool.ts'

const PAGE_MAX = 64 * 1024
let agent: Agent | null = null
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
}

/** Where an exchange is with its error page: none asked, being fetched, or done (respond answers plainly). */
export const PageState = { None: 0, Fetching: 1 } as const

interface Page {
  fields: ReadonlyArray<readonly [string, string]>
  body: Buffer
}

/**
 * true: the route's page will answer `status` (the caller does nothing more;
 * the upstream connection, if any, is dropped); false: answer as usual.
 */
export function errorPage(ex: Exchange, status: number): boolean {
  const rt = ex.route
  if (rt === null) return false
  const rules = rt.plan.rules
  if (rules === null) return false
  const plan = rules.errors
  if (plan === null || ex.pageState !== PageState.None || !plan.statuses.includes(status)) return false
  ex.pageState = PageState.Fetching
  const uc = ex.uc
  if (uc !== null) {
    ex.uc = null
    discard(uc)
  }
  if (ex.waitingOn !== null) leaveQueue(ex)
  ex.timer = Timer.None
  const seq = ex.reqSeq
  fetchPage(plan, status, (page) => {
    if (!ex.front.live(ex) || ex.reqSeq !== seq || ex.resStarted) return
    ex.ctx.now = Date.now()
    if (page === null) ex.front.respond(ex, status)
    else ex.front.respondWith(ex, status, page.fields, page.body)
  })
  return true
}

function fetchPage(plan: ErrorPagesPlan, status: number, done: (p: Page | null) => void): void {
  const where = plan.page.replaceAll('{status}', String(status))
  if (where.startsWith('file:')) {
    const path = fileURLToPath(where)
    const { readFile } = process.getBuiltinModule('node:fs/promises')
    readFile(path, { signal: AbortSignal.timeout(plan.timeoutMs) }).then(
      (body) => done(body.length > PAGE_MAX ? null : { fields: [['content-type', TYPES[extname(path).toLowerCase()] ?? 'text/html; charset=utf-8']], body }),
      () => done(null),
    )
    return
  }
  let finished = false
  const finish = (p: Page | null): void => {
    if (finished) return
    finished = true
    clearTimeout(timer)
    done(p)
  }
  const http = process.getBuiltinModule('node:http')
  agent ??= new http.Agent({ keepAlive: true, maxFreeSockets: 16 })
  const out = http.request(where, { method: 'GET', agent, headers: { accept: 'text/html, */*' } })
  const timer = setTimeout(() => {
    finish(null)
    out.destroy()
  }, plan.timeoutMs)
  out.on('error', () => finish(null))
  out.on('response', (res) => {
    const code = res.statusCode ?? 0
    if (code < 200 || code >= 300) {
      res.resume()
      return finish(null)
    }
    const chunks: Buffer[] = []
    let size = 0
    res.on('data', (c: Buffer) => {
      size += c.length
      if (size > PAGE_MAX) {
        res.destroy()
        finish(null)
        return
      }
      chunks.push(c)
    })
    res.on('end', () => {
      const type = res.headers['content-type']
      finish({ fields: [['content-type', typeof type === 'string' ? type : 'text/html; charset=utf-8']], body: Buffer.concat(chunks) })
    })
    res.on('error', () => finish(null))
  })
  out.end()
}
