// Whole-config checks: what no single server can see on its own. validateConfig
// also re-runs the field rules (via normalizeConfig), so a Config assembled in
// code (by the REST API's mutations) is held to exactly the same rules as one
// parsed from text.

import type { Problem } from './errors.ts'
import { BalancerError, ErrorCode, validationError } from './errors.ts'
import type { Config, Filter, Server } from './types.ts'
import { ROUTE_DEFAULT } from './types.ts'
import type { ParsedListenAddress } from './address.ts'
import { listenConflict, parseListenAddress } from './address.ts'
import { normalizeConfig } from './normalize.ts'

interface Found {
  problems: Problem[]
  /** True when every problem is a clash between two servers' addresses. */
  conflictsOnly: boolean
}

export function validateConfig(cfg: Config): Problem[] {
  return check(cfg).problems
}

/**
 * Throws when validateConfig finds anything. The code is E_CONFLICT when
 * every problem is a clash between servers' listen addresses (HTTP 409: the
 * body is fine, it collides with existing state), E_VALIDATION otherwise;
 * either way the error lists every problem.
 */
export function assertValidConfig(cfg: Config): void {
  const { problems, conflictsOnly } = check(cfg)
  if (problems.length === 0) return
  if (!conflictsOnly) throw validationError(problems)
  throw new BalancerError(ErrorCode.Conflict, problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems)
}

function check(cfg: Config): Found {
  const fieldProblems: Problem[] = []
  try {
    normalizeConfig(cfg)
  } catch (err) {
    if (!(err instanceof BalancerError)) throw err
    fieldProblems.push(...err.problems)
  }
  const conflicts = listenProblems(cfg.servers)
  const filters = cfg.servers.flatMap((s, i) => filterProblems(s, `servers[${i}]`))
  const problems = [...fieldProblems, ...conflicts, ...filters]
  return { problems, conflictsOnly: conflicts.length > 0 && conflicts.length === problems.length }
}

function listenProblems(servers: readonly Server[]): Problem[] {
  const problems: Problem[] = []
  const parsed: Array<ParsedListenAddress | null> = servers.map((s) => {
    const p = typeof s.address === 'string' ? parseListenAddress(s.address) : null
    return p === null || 'error' in p ? null : p
  })
  for (let j = 0; j < servers.length; j++) {
    const b = parsed[j]
    if (b == null) continue
    for (let i = 0; i < j; i++) {
      const a = parsed[i]
      if (a == null || !listenConflict(a, b)) continue
      const other = `servers[${i}] (${JSON.stringify(servers[i]?.address)})`
      const message =
        a.key === b.key
          ? `same listen address as ${other}; add routes to that server instead`
          : `port ${b.port} is already taken by ${other}, which listens on ${a.host === '' ? 'every interface' : a.key.slice(0, a.key.lastIndexOf(':'))}`
      problems.push({ path: `servers[${j}].address`, message })
      break
    }
  }
  return problems
}

/** Two routes of one server with the same filter: the second could never be chosen. */
function filterProblems(server: Server, path: string): Problem[] {
  const problems: Problem[] = []
  const seen = new Map<string, string>()
  const routes = [{ name: ROUTE_DEFAULT, filter: server.filter, path: `${path}.filter` }]
  ;(server.routes ?? []).forEach((r, k) => routes.push({ name: r.name, filter: r.filter, path: `${path}.routes[${k}].filter` }))
  for (const r of routes) {
    if (r.filter == null) continue
    const key = filterKey(r.filter)
    const first = seen.get(key)
    if (first !== undefined) problems.push({ path: r.path, message: `same filter as route ${JSON.stringify(first)}` })
    else seen.set(key, r.name)
  }
  return problems
}

/** Equal keys = the filters accept exactly the same requests. No Schemes means both schemes. */
export function filterKey(f: Filter): string {
  const hosts = [...new Set((f.Hosts ?? []).map((h) => h.toLowerCase()))].sort()
  const schemes = new Set((f.Schemes ?? []).map((s) => s.toLowerCase()).filter((s) => s !== ''))
  const scheme = schemes.size === 0 ? 'http,https' : [...schemes].sort().join(',')
  return JSON.stringify([hosts, scheme, f.PathPrefix ?? ''])
}
