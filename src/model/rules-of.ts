// A copy of the rule groups a server or route sets (model/rules.ts reads
// and checks them). Apart from the readers so that the compiler, and with it
// every engine worker, copies rules without loading their validation.

import type { HeaderEdits, Rules } from './types.ts'

function edits(e: HeaderEdits): HeaderEdits {
  return { Set: { ...e.Set }, Add: { ...e.Add }, Remove: [...e.Remove] }
}

/** The rule groups `p` sets, copied whole with fields in declared order (canonical.ts). */
export function rulesOf(p: Rules, owner: 'server' | 'route'): Rules {
  const out: Rules = {}
  const a = p.access
  if (a === null && owner === 'route') out.access = null
  else if (a != null) {
    const fa = a.ForwardAuth
    out.access = {
      Allow: [...a.Allow],
      Deny: [...a.Deny],
      BasicAuth: [...a.BasicAuth],
      ForwardAuth: fa === null ? null : { Address: fa.Address, ResponseHeaders: [...fa.ResponseHeaders], Timeout: fa.Timeout },
    }
  }
  const rl = p.ratelimit
  if (rl === null && owner === 'route') out.ratelimit = null
  else if (rl != null) out.ratelimit = { Average: rl.Average, Burst: rl.Burst, SourceHeader: rl.SourceHeader }
  const b = p.body
  if (b === null && owner === 'route') out.body = null
  else if (b != null) out.body = { MaxRequestBytes: b.MaxRequestBytes, MaxResponseBytes: b.MaxResponseBytes }
  const rw = p.rewrite
  if (rw === null && owner === 'route') out.rewrite = null
  else if (rw != null) {
    const re = rw.ReplacePathRegex
    out.rewrite = { StripPrefix: rw.StripPrefix, AddPrefix: rw.AddPrefix, ReplacePathRegex: re === null ? null : { Regex: re.Regex, Replacement: re.Replacement }, Host: rw.Host }
  }
  const h = p.headers
  if (h === null && owner === 'route') out.headers = null
  else if (h != null) out.headers = { Request: edits(h.Request), Response: edits(h.Response), FrameDeny: h.FrameDeny, ContentTypeNosniff: h.ContentTypeNosniff }
  const e = p.errors
  if (e === null && owner === 'route') out.errors = null
  else if (e != null) out.errors = { Page: e.Page, Statuses: [...e.Statuses], Timeout: e.Timeout }
  const z = p.compress
  if (z === null && owner === 'route') out.compress = null
  else if (z != null) out.compress = { Encodings: [...z.Encodings], Types: [...z.Types], MinBytes: z.MinBytes }
  return out
}
