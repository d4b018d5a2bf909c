// Route rules (src/model/rules.ts) -> RulesPlan. Pure: the ReplacePathRegex
// pattern is compiled here, once per snapshot, never per request. A route
// whose rules change nothing (all groups absent or empty) gets `null`.

import type { Access, Compress, HeaderEdits, Policy } from '../model/types.ts'
import { compilePathRegex } from '../model/rewrite.ts'
import { parseDuration } from '../model/duration.ts'
import { Enc, HostMode } from './snapshot.ts'
import type { AccessPlan, CompressPlan, HeaderEditPlan, RequestRulesPlan, RulesPlan } from './snapshot.ts'

export function rulesPlan(p: Policy, pathPrefix: string): RulesPlan | null {
  const access = accessPlan(p.access ?? null)
  const rl = p.ratelimit ?? null
  const ratelimit = rl === null ? null : Object.freeze({ average: rl.Average, burst: rl.Burst, sourceHeader: rl.SourceHeader, signature: `${rl.Average}/${rl.Burst}/${rl.SourceHeader}` })
  const b = p.body ?? null
  const body = b === null || b.MaxRequestBytes === 0 ? null : Object.freeze({ maxRequestBytes: b.MaxRequestBytes })
  const request = requestPlan(p, pathPrefix)
  const response = responsePlan(p)
  const e = p.errors ?? null
  const errors = e === null ? null : Object.freeze({ page: e.Page, statuses: Object.freeze([...e.Statuses]), timeoutMs: parseDuration(e.Timeout) ?? 2000 })
  const compress = compressPlan(p.compress ?? null, response)
  const maxResponseBytes = b === null ? 0 : b.MaxResponseBytes
  if (access === null && ratelimit === null && body === null && request === null && response === null && errors === null && compress === null && maxResponseBytes === 0) return null
  return Object.freeze({ gated: access !== null || ratelimit !== null || body !== null, access, ratelimit, body, request, response, errors, compress, maxResponseBytes })
}

const ENC_OF: Readonly<Record<string, Enc>> = { gzip: Enc.Gzip, br: Enc.Br, zstd: Enc.Zstd }

const NO_EDITS: HeaderEditPlan = Object.freeze({ drop: new Set<string>(), lines: '', fields: Object.freeze([]) })

function compressPlan(z: Compress | null, response: HeaderEditPlan | null): CompressPlan | null {
  if (z === null) return null
  const exact = z.Types.filter((t) => !t.endsWith('/*'))
  const prefixes = z.Types.filter((t) => t.endsWith('/*')).map((t) => t.slice(0, -1))
  const base = response ?? NO_EDITS
  return Object.freeze({
    encodings: Object.freeze(z.Encodings.map((e) => ENC_OF[e] ?? Enc.Gzip)),
    types: new Set(exact),
    typePrefixes: Object.freeze(prefixes),
    minBytes: z.MinBytes,
    base,
    dropEtag: new Set([...base.drop, 'etag']),
  })
}

function accessPlan(a: Access | null): AccessPlan | null {
  if (a === null) return null
  const users = new Map<string, string>()
  for (const line of a.BasicAuth) {
    const i = line.indexOf(':')
    users.set(line.slice(0, i), line.slice(i + 1))
  }
  const f = a.ForwardAuth
  if (a.Allow.length === 0 && a.Deny.length === 0 && users.size === 0 && f === null) return null
  let forward = null
  if (f !== null) {
    const u = new URL(f.Address)
    const port = u.port === '' ? 80 : Number(u.port)
    forward = Object.freeze({
      host: u.hostname.replace(/^\[|\]$/g, ''),
      port,
      path: `${u.pathname}${u.search}`,
      authority: u.host,
      responseHeaders: Object.freeze([...f.ResponseHeaders]),
      timeoutMs: parseDuration(f.Timeout) ?? 5000,
    })
  }
  return Object.freeze({ allow: Object.freeze([...a.Allow]), deny: Object.freeze([...a.Deny]), users, forward, signature: JSON.stringify(a) })
}

function requestPlan(p: Policy, pathPrefix: string): RequestRulesPlan | null {
  const rw = p.rewrite ?? null
  const h = p.headers ?? null
  const strip = rw !== null && rw.StripPrefix && pathPrefix !== '' ? pathPrefix : ''
  const re = rw?.ReplacePathRegex ?? null
  const replace = re === null ? null : Object.freeze({ re: compilePathRegex(re.Regex), replacement: re.Replacement })
  const addPrefix = rw?.AddPrefix ?? ''
  const hostText = rw?.Host ?? 'client'
  const host = hostText === 'client' ? HostMode.Client : hostText === 'upstream' ? HostMode.Upstream : HostMode.Fixed
  // A client's X-Forwarded-Prefix is replaced by the prefix stripped here;
  // fields a ForwardAuth answer supplies are never taken from the client.
  const fromAuth = p.access?.ForwardAuth?.ResponseHeaders ?? []
  const edits = editPlan(h?.Request ?? null, [], [...(strip === '' ? [] : ['x-forwarded-prefix']), ...fromAuth])
  const rewritesPath = strip !== '' || replace !== null || addPrefix !== ''
  if (!rewritesPath && host === HostMode.Client && edits === null) return null
  return Object.freeze({ strip, replace, addPrefix, rewritesPath, host, hostName: host === HostMode.Fixed ? hostText : '', edits })
}

function responsePlan(p: Policy): HeaderEditPlan | null {
  const h = p.headers ?? null
  if (h === null) return null
  const extra: Array<readonly [string, string]> = []
  if (h.FrameDeny) extra.push(['x-frame-options', 'DENY'])
  if (h.ContentTypeNosniff) extra.push(['x-content-type-options', 'nosniff'])
  return editPlan(h.Response, extra, [])
}

/** null when the edits change nothing. Set's names (and `extraSet`'s) are dropped first, so Set replaces. */
function editPlan(e: HeaderEdits | null, extraSet: ReadonlyArray<readonly [string, string]>, extraDrop: readonly string[]): HeaderEditPlan | null {
  const set: Array<readonly [string, string]> = [...Object.entries(e?.Set ?? {}), ...extraSet]
  const add = Object.entries(e?.Add ?? {})
  const drop = new Set<string>([...(e?.Remove ?? []), ...set.map(([n]) => n), ...extraDrop])
  if (drop.size === 0 && add.length === 0) return null
  const fields = Object.freeze([...set, ...add].map(([n, v]) => Object.freeze([n.toLowerCase(), v] as const)))
  return Object.freeze({ drop, lines: fields.map(([n, v]) => `${n}: ${v}\r\n`).join(''), fields })
}
