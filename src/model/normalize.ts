// Loose input (file, KV store, REST body, labels) -> the canonical model of
// types.ts. Every reader collects problems instead of throwing, so one call
// reports every mistake with its path; the exported normalize* functions
// throw one E_VALIDATION error when there is any. Output objects are built
// with their fields in the order types.ts declares them: that order is the
// canonical form written back.

import type { Problem } from './errors.ts'
import { validationError } from './errors.ts'
import type { Config, Filter, HealthCheck, Limits, Member, Passive, Retry, Route, Server, ServiceRef, Upstream } from './types.ts'
import { ROUTE_DEFAULT } from './types.ts'
import { parseListenAddress } from './address.ts'
import { checkFilterHost, checkTarget } from './hostnames.ts'
import type { Found } from './fields.ts'
import { headTextProblem } from './head-safe.ts'
import { readDiscoveryRule } from './discovery-rule.ts'
import type { DiscoveryRule } from './discovery-rule.ts'
import { describeValue, isMissing, isPlainObject, joinPath, readFields, readInt, readString } from './fields.ts'
import { POLICY_GROUPS, readGroup, readPolicy } from './policy.ts'
import type { PolicyGroup } from './policy.ts'
import { readTls } from './tls.ts'
import { readProtocols } from './protocols.ts'
import { RULE_GROUPS } from './rules.ts'

const UPSTREAM_FIELDS = ['Target', 'Port', 'Priority', 'Weight', 'Protocol', 'Scheme'] as const
const SERVICE_FIELDS = ['Service', 'Registry', 'Tags', 'Priority', 'Weight', 'Protocol'] as const
const FILTER_FIELDS = ['Hosts', 'Schemes', 'PathPrefix'] as const
const ROUTE_FIELDS = ['name', 'filter', 'upstreams', 'fallbacks', ...POLICY_GROUPS, ...RULE_GROUPS, 'hsts', 'discovery'] as const
const SERVER_FIELDS = ['address', 'filter', 'upstreams', 'fallbacks', 'routes', ...POLICY_GROUPS, ...RULE_GROUPS, 'hsts', 'tls', 'discovery', 'Protocols'] as const

const ROUTE_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/

function orThrow<T>(value: T, problems: Problem[]): T {
  if (problems.length > 0) throw validationError(problems)
  return value
}

export function normalizeUpstream(raw: unknown, path = 'body'): Upstream {
  const problems: Problem[] = []
  return orThrow(readUpstream(raw, path, problems, null), problems)?.upstream as Upstream
}

/** A service reference on its own (`balancer.service` labels); every problem at once. */
export function normalizeServiceRef(raw: unknown, path = 'body'): ServiceRef {
  const problems: Problem[] = []
  return orThrow(readServiceRef(raw, path, problems), problems) as ServiceRef
}

export function normalizeFilter(raw: unknown, path = 'body'): Filter {
  const problems: Problem[] = []
  return orThrow(readFilter(raw, path, problems), problems)
}

export function normalizeRoute(raw: unknown, path = 'body'): Route {
  const problems: Problem[] = []
  return orThrow(readRoute(raw, path, problems, null), problems)
}

export function normalizeServer(raw: unknown, path = 'body'): Server {
  const problems: Problem[] = []
  return orThrow(readServer(raw, path, problems), problems)
}

/**
 * Accepts a list of servers, `{ "servers": [...] }`, or one server object
 * (recognised by having any server field, e.g. `address`). Paths start at
 * `servers[i]` in every form.
 */
export function normalizeConfig(raw: unknown): Config {
  const problems: Problem[] = []
  return orThrow(readConfig(raw, problems), problems)
}

function readConfig(raw: unknown, problems: Problem[]): Config {
  if (Array.isArray(raw)) return { servers: readServers(raw, 'servers', problems) }
  if (isPlainObject(raw)) {
    const keys = Object.keys(raw).map((k) => k.toLowerCase())
    const isServer = !keys.includes('servers') && keys.some((k) => (SERVER_FIELDS as readonly string[]).includes(k))
    if (isServer) return { servers: [readServer(raw, 'servers[0]', problems)] }
    const f = readFields(raw, '', ['servers'] as const, problems)
    return { servers: f === null || isMissing(f.servers) ? [] : readServers(f.servers?.value, f.servers?.path ?? 'servers', problems) }
  }
  problems.push({ path: 'servers', message: `the config must be a list of servers or {"servers": [...]}, got ${describeValue(raw)}` })
  return { servers: [] }
}

function readServers(raw: unknown, path: string, problems: Problem[]): Server[] {
  if (!Array.isArray(raw)) {
    problems.push({ path, message: `must be a list of servers, got ${describeValue(raw)}` })
    return []
  }
  return raw.map((s, i) => readServer(s, `${path}[${i}]`, problems))
}

function readServer(raw: unknown, path: string, problems: Problem[]): Server {
  const f = readFields(raw, path, SERVER_FIELDS, problems) ?? {}
  let address = readString(f.address, joinPath(path, 'address'), null, problems) ?? ''
  if (f.address !== undefined && typeof f.address.value === 'string') {
    address = address.trim()
    const parsed = parseListenAddress(address)
    if ('error' in parsed) problems.push({ path: f.address.path, message: parsed.error })
  }
  const tls = readTls(f.tls, problems)
  const protocols = readProtocols(f.Protocols, tls !== undefined, problems)
  return {
    address,
    ...(tls === undefined ? {} : { tls }),
    ...(protocols === undefined ? {} : { Protocols: protocols }),
    filter: readFilter(f.filter?.value, f.filter?.path ?? joinPath(path, 'filter'), problems),
    upstreams: readUpstreamList(f.upstreams, problems),
    fallbacks: readUpstreamList(f.fallbacks, problems),
    ...readPolicy(f, 'server', problems),
    ...discoveryOf(f.discovery, problems),
    routes: readRouteList(f.routes, problems),
  }
}

function readRouteList(found: Found | undefined, problems: Problem[]): Route[] {
  if (found === undefined || isMissing(found)) return []
  const { value, path } = found
  let routes: Array<{ route: Route; path: string }>
  if (Array.isArray(value)) {
    routes = value.map((r, i) => ({ route: readRoute(r, `${path}[${i}]`, problems, null), path: `${path}[${i}]` }))
  } else if (isPlainObject(value)) {
    routes = Object.entries(value).map(([name, r]) => {
      const at = joinPath(path, name)
      return { route: readRoute(r, at, problems, name), path: at }
    })
  } else {
    problems.push({ path, message: `must be a list of routes or an object keyed by route name, got ${describeValue(value)}` })
    return []
  }
  const seen = new Map<string, string>()
  for (const { route, path: at } of routes) {
    if (route.name === '') continue
    const first = seen.get(route.name)
    if (first !== undefined) problems.push({ path: `${at}.name`, message: `duplicate route name ${JSON.stringify(route.name)} (also ${first})` })
    else seen.set(route.name, at)
  }
  return routes.map((r) => r.route)
}

function readRoute(raw: unknown, path: string, problems: Problem[], nameFromKey: string | null): Route {
  const f = readFields(raw, path, ROUTE_FIELDS, problems) ?? {}
  const namePath = f.name?.path ?? joinPath(path, 'name')
  let name = readString(f.name, namePath, nameFromKey, problems) ?? ''
  if (nameFromKey !== null && !isMissing(f.name) && name !== nameFromKey) {
    problems.push({ path: namePath, message: `${JSON.stringify(name)} does not match its key ${JSON.stringify(nameFromKey)}` })
    name = ''
  } else if (name === ROUTE_DEFAULT) {
    problems.push({ path: namePath, message: `"${ROUTE_DEFAULT}" is reserved for the server's own filter and upstreams` })
  } else if (name !== '' && !ROUTE_NAME.test(name)) {
    problems.push({ path: namePath, message: `must match [a-z0-9][a-z0-9_.-]{0,62}, got ${JSON.stringify(name)}` })
  }
  return {
    name,
    filter: readFilter(f.filter?.value, f.filter?.path ?? joinPath(path, 'filter'), problems),
    upstreams: readUpstreamList(f.upstreams, problems),
    fallbacks: readUpstreamList(f.fallbacks, problems),
    ...readPolicy(f, 'route', problems),
    ...discoveryOf(f.discovery, problems),
  }
}

function discoveryOf(f: Found | undefined, problems: Problem[]): { discovery?: DiscoveryRule } {
  const d = readDiscoveryRule(f, problems)
  return d === undefined ? {} : { discovery: d }
}

function readFilter(raw: unknown, path: string, problems: Problem[]): Filter {
  if (raw === undefined || raw === null) return { Hosts: [], Schemes: [], PathPrefix: '' }
  const f = readFields(raw, path, FILTER_FIELDS, problems) ?? {}
  return {
    Hosts: readHosts(f.Hosts, problems),
    Schemes: readSchemes(f.Schemes, problems),
    PathPrefix: readPathPrefix(f.PathPrefix, problems),
  }
}

function readStringList(found: Found, problems: Problem[]): Array<{ s: string; path: string }> {
  if (!Array.isArray(found.value)) {
    problems.push({ path: found.path, message: `must be a list of strings, got ${describeValue(found.value)}` })
    return []
  }
  const out: Array<{ s: string; path: string }> = []
  found.value.forEach((v: unknown, i) => {
    const at = `${found.path}[${i}]`
    if (typeof v === 'string') out.push({ s: v, path: at })
    else problems.push({ path: at, message: `must be a string, got ${describeValue(v)}` })
  })
  return out
}

/** Duplicates are dropped: a set of hosts, written in the order first seen. */
function readHosts(found: Found | undefined, problems: Problem[]): string[] {
  if (found === undefined || isMissing(found)) return []
  const hosts: string[] = []
  for (const { s, path } of readStringList(found, problems)) {
    const c = checkFilterHost(s)
    if ('error' in c) problems.push({ path, message: c.error })
    else if (!hosts.includes(c.value)) hosts.push(c.value)
  }
  return hosts
}

/** `""` entries are dropped (the seed's own example is `["",""]`); the result is sorted and unique. */
function readSchemes(found: Found | undefined, problems: Problem[]): string[] {
  if (found === undefined || isMissing(found)) return []
  const set = new Set<string>()
  for (const { s, path } of readStringList(found, problems)) {
    const v = s.trim().toLowerCase()
    if (v === '') continue
    if (v === 'http' || v === 'https') set.add(v)
    else problems.push({ path, message: `must be "http" or "https", got ${JSON.stringify(s)}` })
  }
  return ['http', 'https'].filter((s) => set.has(s))
}

function readPathPrefix(found: Found | undefined, problems: Problem[]): string {
  const p = readString(found, '', '', problems)
  if (p === null || found === undefined) return ''
  let message = ''
  if (p !== '' && !p.startsWith('/')) message = `must be empty or start with "/", got ${JSON.stringify(p)}`
  else if (headTextProblem(p) !== null) message = headTextProblem(p) ?? ''
  else if (/[?#]/.test(p)) message = `must be a path without "?" or "#", got ${JSON.stringify(p)}`
  if (message !== '') {
    problems.push({ path: found.path, message })
    return ''
  }
  return p
}

/**
 * A list of upstreams, or an object keyed `target-port` (the seed's fallback
 * map) whose values may omit Target and Port. The same target-port twice in
 * one list is a problem: it would double its weight by accident. A list entry
 * with a `Service` field is a service reference (services.ts resolves it).
 */
function readUpstreamList(found: Found | undefined, problems: Problem[]): Member[] {
  if (found === undefined || isMissing(found)) return []
  const { value, path } = found
  const items: Array<{ u: ReadUpstream; path: string } | { ref: ServiceRef | null; path: string }> = []
  if (Array.isArray(value)) {
    value.forEach((v: unknown, i) => {
      const at = `${path}[${i}]`
      if (isServiceShape(v)) items.push({ ref: readServiceRef(v, at, problems), path: at })
      else items.push({ u: readUpstream(v, at, problems, null), path: at })
    })
  } else if (isPlainObject(value)) {
    for (const [key, v] of Object.entries(value)) {
      const at = joinPath(path, key)
      if (isServiceShape(v)) {
        problems.push({ path: at, message: 'a service reference has no "target-port" key: write the list form, [{"Service": ...}]' })
        continue
      }
      const fromKey = parseUpstreamKey(key)
      if (fromKey === null) {
        problems.push({ path: at, message: `key must be "target-port", e.g. "127.0.0.1-80", got ${JSON.stringify(key)}` })
        continue
      }
      items.push({ u: readUpstream(v, at, problems, fromKey), path: at })
    }
  } else {
    problems.push({ path, message: `must be a list of upstreams or an object keyed "target-port", got ${describeValue(value)}` })
    return []
  }
  const seen = new Map<string, string>()
  const out: Member[] = []
  for (const item of items) {
    const at = item.path
    if ('ref' in item) {
      const r = item.ref
      if (r === null) continue
      const id = `service:${r.Registry}/${r.Service}/${[...r.Tags].sort().join(',')}`
      const first = seen.get(id)
      if (first !== undefined) problems.push({ path: at, message: `duplicate service reference ${JSON.stringify(r.Service)} (also ${first})` })
      else {
        seen.set(id, at)
        out.push(r)
      }
      continue
    }
    const read = item.u
    if (read === null) continue
    const u = read.upstream
    const id = `${u.Target.toLowerCase()}-${u.Port}`
    const first = seen.get(id)
    if (first !== undefined) problems.push({ path: at, message: `duplicate upstream ${u.Target}-${u.Port} (also ${first})` })
    else seen.set(id, at)
    if (read.ok) out.push(u)
  }
  return out
}

function isServiceShape(v: unknown): boolean {
  return isPlainObject(v) && Object.keys(v).some((k) => k.toLowerCase() === 'service')
}

/** A service name as registries spell them: 1-128 characters, no `/`, no whitespace or control characters. */
const SERVICE_NAME = /^[^\s/\u0000-\u001f\u007f]{1,128}$/
const REGISTRY_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/

/** `{"Service", "Registry", "Tags", "Priority", "Weight", "Protocol"}`; null after a problem that leaves nothing usable. */
function readServiceRef(raw: unknown, path: string, problems: Problem[]): ServiceRef | null {
  const before = problems.length
  const obj = raw as Record<string, unknown>
  const address = Object.keys(obj).filter((k) => ['target', 'port'].includes(k.toLowerCase()))
  if (address.length > 0) {
    problems.push({ path, message: `an entry is either an address (Target, Port) or a service reference (Service), not both; remove ${address.join(', ')}` })
  }
  const rest = Object.fromEntries(Object.entries(obj).filter(([k]) => !address.includes(k)))
  const f = readFields(rest, path, SERVICE_FIELDS, problems)
  if (f === null) return null
  const service = readString(f.Service, joinPath(path, 'Service'), null, problems)
  if (service !== null && (!SERVICE_NAME.test(service) || service === '.' || service === '..')) {
    problems.push({ path: f.Service?.path ?? joinPath(path, 'Service'), message: `must be a service name (1-128 characters, no "/" or whitespace), got ${JSON.stringify(service)}` })
  }
  const written = readString(f.Registry, joinPath(path, 'Registry'), '', problems) ?? ''
  const registry = written.trim().toLowerCase()
  if (registry !== '' && !REGISTRY_NAME.test(registry)) {
    problems.push({ path: f.Registry?.path ?? joinPath(path, 'Registry'), message: `must be a --registry name ([a-z0-9][a-z0-9_.-]*) or empty for any, got ${JSON.stringify(written)}` })
  }
  const tags = readTags(f.Tags, problems)
  const priority = readInt(f.Priority, joinPath(path, 'Priority'), 0, 1000, 1, problems)
  const weight = readInt(f.Weight, joinPath(path, 'Weight'), 1, 1000, 1, problems)
  const protocol = readUpstreamProtocol(f.Protocol, problems)
  if (service === null || problems.length > before) return null
  return { Service: service, Registry: registry, Tags: tags, Priority: priority ?? 1, Weight: weight ?? 1, ...(protocol === undefined ? {} : { Protocol: protocol }) }
}

/** A list of tags, or one comma-separated string (as labels and KV values carry them); duplicates dropped. */
function readTags(found: Found | undefined, problems: Problem[]): string[] {
  if (found === undefined || isMissing(found)) return []
  const v = found.value
  const list =
    typeof v === 'string'
      ? v
          .split(',')
          .map((t) => t.trim())
          .filter((t) => t !== '')
      : v
  if (!Array.isArray(list)) {
    problems.push({ path: found.path, message: `must be a list of tags, got ${describeValue(v)}` })
    return []
  }
  const out: string[] = []
  list.forEach((t: unknown, i) => {
    if (typeof t !== 'string' || t.trim() === '') problems.push({ path: `${found.path}[${i}]`, message: `must be a non-empty string, got ${describeValue(t)}` })
    else if (!out.includes(t.trim())) out.push(t.trim())
  })
  return out
}

/** Splits at the last '-': targets may contain dashes, ports never do. */
function parseUpstreamKey(key: string): { Target: string; Port: number } | null {
  const dash = key.lastIndexOf('-')
  if (dash <= 0) return null
  const t = checkTarget(key.slice(0, dash))
  const portText = key.slice(dash + 1)
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : 0
  if ('error' in t || port < 1 || port > 65535) return null
  return { Target: t.value, Port: port }
}

/**
 * null when Target or Port is unusable; otherwise the upstream (Priority and
 * Weight at their defaults if invalid) and whether it had no problem, so a
 * list can still report duplicates of an upstream that has other problems.
 */
type ReadUpstream = { upstream: Upstream; ok: boolean } | null

function readUpstream(raw: unknown, path: string, problems: Problem[], fromKey: { Target: string; Port: number } | null): ReadUpstream {
  const before = problems.length
  const f = readFields(raw, path, UPSTREAM_FIELDS, problems)
  if (f === null) return null
  let target: string | null = null
  if (fromKey !== null && isMissing(f.Target)) target = fromKey.Target
  else {
    const t = readString(f.Target, joinPath(path, 'Target'), null, problems)
    if (t !== null && f.Target !== undefined) {
      const c = checkTarget(t)
      if ('error' in c) problems.push({ path: f.Target.path, message: c.error })
      else target = c.value
    }
  }
  const port = fromKey !== null && isMissing(f.Port) ? fromKey.Port : readInt(f.Port, joinPath(path, 'Port'), 1, 65535, null, problems)
  const priority = readInt(f.Priority, joinPath(path, 'Priority'), 0, 1000, 1, problems)
  const weight = readInt(f.Weight, joinPath(path, 'Weight'), 1, 1000, 1, problems)
  const scheme = readString(f.Scheme, joinPath(path, 'Scheme'), 'http', problems)?.trim().toLowerCase() ?? 'http'
  if (scheme !== 'http' && scheme !== 'https') problems.push({ path: f.Scheme?.path ?? joinPath(path, 'Scheme'), message: `must be "http" or "https", got ${describeValue(f.Scheme?.value)}` })
  if (fromKey !== null && target !== null && port !== null) {
    if (target.toLowerCase() !== fromKey.Target.toLowerCase() || port !== fromKey.Port) {
      problems.push({
        path,
        message: `key says ${fromKey.Target}-${fromKey.Port} but Target and Port say ${target}-${port}`,
      })
    }
  }
  const protocol = readUpstreamProtocol(f.Protocol, problems)
  // h2c is HTTP/2 in clear text, h2 is HTTP/2 over TLS (Scheme https implied when left out).
  if (protocol === 'h2c' && scheme === 'https')
    problems.push({ path: f.Protocol?.path ?? joinPath(path, 'Protocol'), message: 'h2c is HTTP/2 without TLS; it cannot be combined with Scheme "https" (h2 is HTTP/2 over TLS)' })
  if (protocol === 'h2' && scheme === 'http' && f.Scheme !== undefined && !isMissing(f.Scheme))
    problems.push({ path: f.Protocol?.path ?? joinPath(path, 'Protocol'), message: 'h2 is HTTP/2 over TLS; it cannot be combined with Scheme "http" (h2c is HTTP/2 without TLS)' })
  const tls = scheme === 'https' || protocol === 'h2'
  if (target === null || port === null) return null
  return {
    upstream: {
      Target: target,
      Port: port,
      Priority: priority ?? 1,
      Weight: weight ?? 1,
      ...(protocol === undefined ? {} : { Protocol: protocol }),
      ...(tls ? { Scheme: 'https' as const } : {}),
    },
    ok: problems.length === before,
  }
}

/** An upstream's (or a service reference's) Protocol: undefined for HTTP/1.1. */
function readUpstreamProtocol(pf: Found | undefined, problems: Problem[]): 'h2c' | 'h2' | undefined {
  if (pf === undefined || isMissing(pf)) return undefined
  const v = typeof pf.value === 'string' ? pf.value.trim().toLowerCase() : null
  if (v === 'h2c' || v === 'h2') return v
  if (v !== 'http/1.1') problems.push({ path: pf.path, message: `must be "http/1.1", "h2c" (HTTP/2 with prior knowledge) or "h2" (HTTP/2 over TLS), got ${describeValue(pf.value)}` })
  return undefined
}

/** One policy group on its own (an API body under `/health`, `/retry`, ...); every problem at once. */
export function normalizeGroup(name: 'health', raw: unknown, path?: string): HealthCheck
export function normalizeGroup(name: 'passive', raw: unknown, path?: string): Passive
export function normalizeGroup(name: 'retry', raw: unknown, path?: string): Retry
export function normalizeGroup(name: 'limits', raw: unknown, path?: string): Limits
export function normalizeGroup(name: PolicyGroup, raw: unknown, path?: string): HealthCheck | Passive | Retry | Limits
export function normalizeGroup(name: PolicyGroup, raw: unknown, path = 'body'): HealthCheck | Passive | Retry | Limits {
  const problems: Problem[] = []
  const v = readGroup(name, raw, path, problems)
  return orThrow(v, problems) as HealthCheck | Passive | Retry | Limits
}
