// Whole-config checks: what no single field can see on its own. Two kinds:
// per server (two routes of one server with the same filter) and across
// servers (listen addresses that clash). validateConfig also re-runs the field
// rules (via normalizeConfig), so a Config assembled in code is held to
// exactly the same rules as one parsed from text; the parser (parse.ts) runs
// the pieces it needs once and brands the result ValidConfig.

import type { Problem } from './errors.ts'
import { BalancerError, ErrorCode, validationError } from './errors.ts'
import type { Config, Filter, Server } from './types.ts'
import { ROUTE_DEFAULT } from './types.ts'
import type { ParsedListenAddress } from './address.ts'
import { listenConflict, parseListenAddress } from './address.ts'
import { normalizeConfig } from './normalize.ts'

export interface Found {
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
  throwProblems(check(cfg))
}

/** Throws what assertValidConfig throws for these problems; returns when there are none. */
export function throwProblems({ problems, conflictsOnly }: Found): void {
  if (problems.length === 0) return
  if (!conflictsOnly) throw validationError(problems)
  throw new BalancerError(ErrorCode.Conflict, problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems)
}

/** Orders problems the way assertValidConfig reports them: field problems, listen clashes, then same filters. */
export function found(fields: readonly Problem[], conflicts: readonly Problem[], filters: readonly Problem[]): Found {
  const problems = [...fields, ...conflicts, ...filters]
  return { problems, conflictsOnly: conflicts.length > 0 && conflicts.length === problems.length }
}

function check(cfg: Config): Found {
  const fieldProblems: Problem[] = []
  try {
    normalizeConfig(cfg)
  } catch (err) {
    if (!(err instanceof BalancerError)) throw err
    fieldProblems.push(...err.problems)
  }
  return found(
    fieldProblems,
    listenProblems(cfg.servers),
    cfg.servers.flatMap((s, i) => filterProblems(s, `servers[${i}]`)),
  )
}

/** The last parse of each server object's address: a write re-checks 500 servers without parsing 500 addresses. */
const listenOf = new WeakMap<Server, { address: string; parsed: ParsedListenAddress | null }>()

function parsedListen(s: Server): ParsedListenAddress | null {
  const hit = listenOf.get(s)
  if (hit !== undefined && hit.address === s.address) return hit.parsed
  const r = typeof s.address === 'string' ? parseListenAddress(s.address) : null
  const parsed = r === null || 'error' in r ? null : r
  listenOf.set(s, { address: s.address, parsed })
  return parsed
}

/**
 * Every server whose listen address clashes with an earlier one's, naming
 * the first it clashes with. Only servers on one port can clash, so each is
 * compared with the earlier servers on its port: linear in the server count.
 */
export function listenProblems(servers: readonly Server[]): Problem[] {
  const problems: Problem[] = []
  const byPort = new Map<number, number[]>()
  for (let j = 0; j < servers.length; j++) {
    const b = parsedListen(servers[j] as Server)
    if (b === null) continue
    const earlier = byPort.get(b.port)
    if (earlier === undefined) {
      byPort.set(b.port, [j])
      continue
    }
    earlier.push(j)
    for (const i of earlier) {
      if (i === j) break
      const a = parsedListen(servers[i] as Server) as ParsedListenAddress
      if (!listenConflict(a, b)) continue
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
export function filterProblems(server: Server, path: string): Problem[] {
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
