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
import { isWildcard, parseListenAddress } from './address.ts'
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
 * the first it clashes with. Addresses clash on one port when one is a
 * wildcard or their hosts overlap (listenConflict), so each port keeps its
 * first server, its first wildcard and the first server of each host: a
 * server is compared with at most four earlier ones, and 1,000 servers on
 * one port (one per address) cost 1,000 lookups, not 500,000 comparisons.
 */
export function listenProblems(servers: readonly Server[]): Problem[] {
  const problems: Problem[] = []
  const byPort = new Map<number, PortSeen>()
  for (let j = 0; j < servers.length; j++) {
    const b = parsedListen(servers[j] as Server)
    if (b === null) continue
    let seen = byPort.get(b.port)
    if (seen === undefined) {
      seen = { first: j, wildcard: -1, byHost: new Map([[b.host, j]]) }
      if (isWildcard(b.host)) seen.wildcard = j
      byPort.set(b.port, seen)
      continue
    }
    const i = firstClash(seen, b)
    if (isWildcard(b.host) && seen.wildcard < 0) seen.wildcard = j
    if (!seen.byHost.has(b.host)) seen.byHost.set(b.host, j)
    if (i < 0) continue
    const a = parsedListen(servers[i] as Server) as ParsedListenAddress
    const other = `servers[${i}] (${JSON.stringify(servers[i]?.address)})`
    const message =
      a.key === b.key
        ? `same listen address as ${other}; add routes to that server instead`
        : `port ${b.port} is already taken by ${other}, which listens on ${a.host === '' ? 'every interface' : a.key.slice(0, a.key.lastIndexOf(':'))}`
    problems.push({ path: `servers[${j}].address`, message })
  }
  return problems
}

/** The earlier servers on one port: the first, the first wildcard (-1: none) and the first of each host. */
interface PortSeen {
  first: number
  wildcard: number
  byHost: Map<string, number>
}

/** The earliest server on b's port that clashes with b (listenConflict's rules), or -1. */
function firstClash(seen: PortSeen, b: ParsedListenAddress): number {
  if (isWildcard(b.host)) return seen.first
  let i = seen.wildcard
  const earliest = (k: number | undefined): void => {
    if (k !== undefined && (i < 0 || k < i)) i = k
  }
  earliest(seen.byHost.get(b.host))
  // `localhost` overlaps the loopback addresses it may resolve to (model/address.ts).
  if (b.host === 'localhost') {
    earliest(seen.byHost.get('127.0.0.1'))
    earliest(seen.byHost.get('::1'))
  } else if (b.host === '127.0.0.1' || b.host === '::1') earliest(seen.byHost.get('localhost'))
  return i
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
