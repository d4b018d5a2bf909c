// What a route's rules do to the request it forwards, independent of the
// client's protocol: HTTP/1 (http1/forward.ts) and HTTP/2 streams call the
// same functions with the request's target and field names as strings. Runs
// only for routes whose plan has request rules (RoutePlan.rules.request);
// a route without any never reaches this file.

import type { HeaderEditPlan, RequestRulesPlan } from '../../compiler/snapshot.ts'
import { HostMode } from '../../compiler/snapshot.ts'

/**
 * The origin-form target (`/path?query`) the upstream gets: StripPrefix,
 * then ReplacePathRegex, then AddPrefix, on the path only; the query is kept
 * as received. The path always starts with `/`. `*` (OPTIONS) is left alone.
 */
export function rewriteTarget(rq: RequestRulesPlan, target: string): string {
  if (!rq.rewritesPath || target === '*') return target
  const q = target.indexOf('?')
  let path = q < 0 ? target : target.slice(0, q)
  if (rq.strip !== '' && path.startsWith(rq.strip)) {
    path = path.slice(rq.strip.length)
    if (path.charCodeAt(0) !== 0x2f) path = `/${path}`
  }
  const rp = rq.replace
  if (rp !== null) {
    path = rp.re.matcher(path).replaceAll(rp.replacement)
    if (path.charCodeAt(0) !== 0x2f) path = `/${path}`
  }
  const add = rq.addPrefix
  if (add !== '') path = add.charCodeAt(add.length - 1) === 0x2f ? add + path.slice(1) : add + path
  return q < 0 ? path : path + target.slice(q)
}

/** The X-Forwarded-Prefix line for a stripped request ('' when nothing was stripped). */
export function prefixLine(rq: RequestRulesPlan, target: string): string {
  return rq.strip !== '' && target.startsWith(rq.strip) ? `x-forwarded-prefix: ${rq.strip}\r\n` : ''
}

/** A received field of this lower-case name is dropped by the edits. */
export function drops(e: HeaderEditPlan, lowerName: string): boolean {
  return e.drop.has(lowerName)
}

/**
 * An HTTP/1.1 request head of the balancer's own making (an HTTP/2 stream's,
 * h2/request.ts: `METHOD target HTTP/1.1`, `host:` second, lower-case names,
 * ending with the blank line) with the route's request rules applied, as
 * http1/forward.ts requestHead applies them to a client's head. With
 * rewrite.Host `upstream` the head is returned open (no Host, no blank
 * line): the sender adds the upstream's `host:port` (Exchange.hostless).
 */
export function rewriteHead(rq: RequestRulesPlan, head: string): string {
  const lineEnd = head.indexOf('\r\n')
  const sp1 = head.indexOf(' ')
  const sp2 = head.lastIndexOf(' ', lineEnd)
  const target = head.slice(sp1 + 1, sp2)
  let out = `${head.slice(0, sp1 + 1)}${rewriteTarget(rq, target)}${head.slice(sp2, lineEnd + 2)}`
  const edits = rq.edits
  let at = lineEnd + 2
  while (at < head.length) {
    const e = head.indexOf('\r\n', at)
    if (e < 0 || e === at) break
    const name = head.slice(at, head.indexOf(':', at))
    if (name === 'host') {
      if (rq.host === HostMode.Client) out += head.slice(at, e + 2)
      else if (rq.host === HostMode.Fixed) out += `host: ${rq.hostName}\r\n`
    } else if (edits === null || !drops(edits, name)) {
      out += head.slice(at, e + 2)
    }
    at = e + 2
  }
  out += prefixLine(rq, target)
  if (edits !== null) out += edits.lines
  return rq.host === HostMode.Upstream ? out : `${out}\r\n`
}
