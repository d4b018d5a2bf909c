// The route rules: groups that say what a route does to a request besides
// picking its upstream. Read and written back like the policy groups
// (policy.ts): a group given in part is completed with its defaults; set on a
// server it applies to every route of the server, and a route's own group
// replaces the server's whole. On a route `null` means none, whatever the
// server sets; on a server `null` is the same as absent.
//
// The engine applies them in one fixed order (README "Route rules"): access,
// rate limit, body, rewrite, headers, the proxy itself, then compression on
// the way out (errors, the error pages, replace an answer before it is
// compressed). Each group's fields and bounds are in its own file.

import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { readHeaderRules, HEADERS_FIELDS } from './header-rules.ts'
import { readRewrite, REWRITE_FIELDS } from './rewrite.ts'
import { ACCESS_FIELDS, readAccess } from './access.ts'
import { BODY_FIELDS, readBody } from './body.ts'
import { ERROR_PAGE_FIELDS, readErrorPages } from './error-pages.ts'
import { RATELIMIT_FIELDS, readRateLimit } from './ratelimit.ts'
import { COMPRESS_FIELDS, readCompress } from './compress.ts'
import { rulesOf } from './rules-of.ts'
import type { Access, Body, Compress, Config, ErrorPages, HeaderRules, RateLimit, Rewrite, Rules } from './types.ts'

/** In the order the engine applies them. */
export const RULE_GROUPS = ['access', 'ratelimit', 'body', 'rewrite', 'headers', 'errors', 'compress'] as const
export type RuleGroup = (typeof RULE_GROUPS)[number]

export const RULE_FIELDS: Readonly<Record<RuleGroup, readonly string[]>> = {
  access: ACCESS_FIELDS,
  ratelimit: RATELIMIT_FIELDS,
  body: BODY_FIELDS,
  rewrite: REWRITE_FIELDS,
  headers: HEADERS_FIELDS,
  errors: ERROR_PAGE_FIELDS,
  compress: COMPRESS_FIELDS,
}

/** The rule groups of a server or route, from its found fields; problems are collected, not thrown. */
export function readRules(f: Partial<Record<RuleGroup, Found>>, owner: 'server' | 'route', problems: Problem[]): Rules {
  const out: Rules = {}
  for (const g of RULE_GROUPS) {
    const found = f[g]
    if (found === undefined || found.value === undefined) continue
    if (found.value === null) {
      if (owner === 'route') out[g] = null
      continue
    }
    const v = readRule(g, found.value, found.path, problems)
    if (v !== null) setRule(out, g, v)
  }
  return out
}

type RuleValue = Access | RateLimit | Body | Rewrite | HeaderRules | ErrorPages | Compress

export function readRule(g: RuleGroup, raw: unknown, path: string, problems: Problem[]): RuleValue | null {
  switch (g) {
    case 'access':
      return readAccess(raw, path, problems)
    case 'ratelimit':
      return readRateLimit(raw, path, problems)
    case 'body':
      return readBody(raw, path, problems)
    case 'rewrite':
      return readRewrite(raw, path, problems)
    case 'headers':
      return readHeaderRules(raw, path, problems)
    case 'errors':
      return readErrorPages(raw, path, problems)
    case 'compress':
      return readCompress(raw, path, problems)
  }
}

function setRule(out: Rules, g: RuleGroup, v: RuleValue): void {
  if (g === 'access') out.access = v as Access
  else if (g === 'ratelimit') out.ratelimit = v as RateLimit
  else if (g === 'body') out.body = v as Body
  else if (g === 'errors') out.errors = v as ErrorPages
  else if (g === 'compress') out.compress = v as Compress
  else if (g === 'rewrite') out.rewrite = v as Rewrite
  else out.headers = v as HeaderRules
}

/** Copies rule group g of `from` onto `to` as it is (null included). */
export function copyRule(to: Rules, from: Rules, g: RuleGroup): void {
  const v = rulesOf(from, 'route')
  if (g === 'access') to.access = v.access ?? null
  else if (g === 'ratelimit') to.ratelimit = v.ratelimit ?? null
  else if (g === 'body') to.body = v.body ?? null
  else if (g === 'errors') to.errors = v.errors ?? null
  else if (g === 'compress') to.compress = v.compress ?? null
  else if (g === 'rewrite') to.rewrite = v.rewrite ?? null
  else to.headers = v.headers ?? null
}

/** Some server or route of `cfg` has a rate limit (then the instances sharing the store count each other: store/presence.ts). */
export function hasRateLimit(cfg: Config): boolean {
  return cfg.servers.some((s) => s.ratelimit != null || s.routes.some((r) => r.ratelimit != null))
}
