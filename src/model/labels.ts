// `balancer.*` labels (on a container, or a Swarm service's deploy.labels)
// -> the settings of one discovered upstream. The one place label names and
// their rules live; docs/discovery.md documents every one. Values are
// checked with the same rules as any other config (normalize.ts), and
// problems name the label: `balancer.weight: must be an integer 1-1000, got "x"`.

import type { Problem } from './errors.ts'
import { BalancerError } from './errors.ts'
import { parseListenAddress } from './address.ts'
import { normalizeFilter, normalizeServiceRef } from './normalize.ts'
import type { Found } from './fields.ts'
import { GROUP_FIELDS, POLICY_GROUPS, readPolicy } from './policy.ts'
import type { PolicyGroup } from './policy.ts'
import { readProtocols } from './protocols.ts'
import { RULE_FIELDS, RULE_GROUPS } from './rules.ts'
import type { RuleGroup } from './rules.ts'
import type { Filter, Policy, Server, ServiceRef } from './types.ts'

export const LABEL_PREFIX = 'balancer.'
export const DEFAULT_LABEL_ADDRESS = ':80'
/** balancer.address with balancer.tls=true. */
export const DEFAULT_LABEL_TLS_ADDRESS = ':443'

export interface LabelSettings {
  /** balancer.address, default `:80` (`:443` with balancer.tls=true). */
  address: string
  /** balancer.hosts, balancer.schemes, balancer.pathprefix. */
  filter: Filter
  /** balancer.priority, default 1. */
  priority: number
  /** balancer.weight, default 1. */
  weight: number
  /** balancer.port; null: the source picks the single exposed port. */
  port: number | null
  /** balancer.network; null: the source's address rule picks. */
  network: string | null
  /** balancer.fallback=true: the target is a fallback of its route, not an upstream. */
  fallback: boolean
  /**
   * balancer.service (+ balancer.registry, balancer.tags): the route's member
   * is that registry service, resolved like any service reference, instead of
   * the labelled target itself. null: the target.
   */
  service: Pick<ServiceRef, 'Service' | 'Registry' | 'Tags'> | null
  /** balancer.swarm.mode: `tasks` (each task's IP, default) or `vip` (the service's virtual IP). */
  swarmMode: 'tasks' | 'vip'
  /** balancer.protocol: `h2c` for an HTTP/2 (gRPC) service, `h2` for one over TLS (scheme https implied); null: HTTP/1.1. */
  protocol: 'h2c' | 'h2' | null
  /** balancer.protocols: the server's Protocols (`http/1.1,h2c`); null: not set. */
  protocols: string[] | null
  /** balancer.scheme: `https` when the balancer speaks TLS to the target; default `http`. */
  scheme: 'http' | 'https'
  /**
   * balancer.tls=true: the address speaks HTTPS, with an ACME certificate
   * for the exact balancer.hosts (balancer.tls.acme=false: none; a stored
   * certificate covering them is served instead of ordering), contact
   * balancer.tls.email, challenge balancer.tls.challenge. null: plain HTTP.
   */
  tls: { acme: boolean; email: string; challenge: 'http-01' | 'tls-alpn-01' } | null
  /**
   * balancer.<group>.<field>, e.g. balancer.health.path, balancer.retry.attempts:
   * a group is present when any of its labels is, completed with its defaults.
   */
  policy: Policy
}

export type LabelResult =
  | { enabled: false }
  /** settings is null when a problem makes the labels unusable; notes never do (unknown labels, ignored). */
  | { enabled: true; settings: LabelSettings | null; problems: Problem[]; notes: Problem[] }

const KNOWN = new Set([
  'enable',
  'address',
  'port',
  'hosts',
  'pathprefix',
  'schemes',
  'priority',
  'weight',
  'network',
  'fallback',
  'swarm.mode',
  'protocol',
  'protocols',
  'service',
  'registry',
  'tags',
  'scheme',
  'tls',
  'tls.acme',
  'tls.email',
  'tls.challenge',
  'compress',
])
/** `balancer.health.path` -> ['health', 'path']; rule groups too (`balancer.rewrite.stripprefix`). */
const POLICY_LABEL = new RegExp(`^(${[...POLICY_GROUPS, ...RULE_GROUPS].join('|')})\\.(.+)$`)
/** The name reserved for health checks before they existed; a note points to the real one. */
const OLD_HEALTH = /^healthcheck(\.|$)/

function bool(v: string): boolean | null {
  const s = v.trim().toLowerCase()
  return s === 'true' ? true : s === 'false' ? false : null
}

function list(v: string | undefined): string[] {
  return v === undefined
    ? []
    : v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')
}

function int(v: string | undefined, key: string, min: number, max: number, fallback: number, problems: Problem[]): number {
  if (v === undefined || v.trim() === '') return fallback
  const t = v.trim()
  const n = /^[0-9]{1,10}$/.test(t) ? Number(t) : Number.NaN
  if (Number.isInteger(n) && n >= min && n <= max) return n
  problems.push({ path: `${LABEL_PREFIX}${key}`, message: `must be an integer ${min}-${max}, got ${JSON.stringify(v)}` })
  return fallback
}

/** Reads every `balancer.*` label. Label keys match case-insensitively (`balancer.pathPrefix`). */
export function readLabels(raw: Readonly<Record<string, string>> | null | undefined): LabelResult {
  const labels = new Map<string, string>()
  for (const [k, v] of Object.entries(raw ?? {})) {
    const key = k.toLowerCase()
    if (key.startsWith(LABEL_PREFIX)) labels.set(key.slice(LABEL_PREFIX.length), v)
  }
  const enable = labels.get('enable')
  if (enable === undefined) return { enabled: false }
  const problems: Problem[] = []
  const notes: Problem[] = []
  const on = bool(enable)
  if (on === false) return { enabled: false }
  if (on === null) problems.push({ path: `${LABEL_PREFIX}enable`, message: `must be "true" or "false", got ${JSON.stringify(enable)}` })

  for (const key of labels.keys()) {
    if (OLD_HEALTH.test(key))
      notes.push({ path: `${LABEL_PREFIX}${key}`, message: `ignored: health check labels are balancer.health.* (${GROUP_FIELDS.health.map((f) => f.toLowerCase()).join(', ')})` })
    else if (!KNOWN.has(key) && !POLICY_LABEL.test(key)) notes.push({ path: `${LABEL_PREFIX}${key}`, message: 'unknown label, ignored (see docs/discovery.md)' })
  }
  const policy = readPolicyLabels(labels, problems)

  const tls = readTlsLabels(labels, problems)
  const address = (labels.get('address') ?? (tls === null ? DEFAULT_LABEL_ADDRESS : DEFAULT_LABEL_TLS_ADDRESS)).trim()
  const listen = parseListenAddress(address)
  if ('error' in listen) problems.push({ path: `${LABEL_PREFIX}address`, message: listen.error })

  let filter: Filter = { Hosts: [], Schemes: [], PathPrefix: '' }
  try {
    filter = normalizeFilter({ Hosts: list(labels.get('hosts')), Schemes: list(labels.get('schemes')), PathPrefix: (labels.get('pathprefix') ?? '').trim() }, 'filter')
  } catch (err) {
    if (!(err instanceof BalancerError)) throw err
    for (const p of err.problems) problems.push({ path: labelOfFilterPath(p.path), message: p.message })
  }

  const priority = int(labels.get('priority'), 'priority', 0, 1000, 1, problems)
  const weight = int(labels.get('weight'), 'weight', 1, 1000, 1, problems)
  const portText = labels.get('port')
  const port = portText === undefined || portText.trim() === '' ? null : int(portText, 'port', 1, 65535, 0, problems)
  const network = labels.get('network')?.trim() || null

  let fallback = false
  const fb = labels.get('fallback')
  if (fb !== undefined) {
    const b = bool(fb)
    if (b === null) problems.push({ path: `${LABEL_PREFIX}fallback`, message: `must be "true" or "false", got ${JSON.stringify(fb)}` })
    else fallback = b
  }

  let swarmMode: 'tasks' | 'vip' = 'tasks'
  const mode = labels.get('swarm.mode')?.trim().toLowerCase()
  if (mode === 'vip' || mode === 'tasks') swarmMode = mode
  else if (mode !== undefined && mode !== '') problems.push({ path: `${LABEL_PREFIX}swarm.mode`, message: `must be "tasks" or "vip", got ${JSON.stringify(mode)}` })

  let protocol: 'h2c' | 'h2' | null = null
  const proto = labels.get('protocol')?.trim().toLowerCase()
  if (proto === 'h2c' || proto === 'h2') protocol = proto
  else if (proto !== undefined && proto !== '' && proto !== 'http/1.1') problems.push({ path: `${LABEL_PREFIX}protocol`, message: `must be "http/1.1", "h2c" or "h2", got ${JSON.stringify(proto)}` })
  const protosText = labels.get('protocols')
  const protocols = protosText === undefined || protosText.trim() === '' ? null : (readProtocols({ value: protosText, path: `${LABEL_PREFIX}protocols` }, false, problems) ?? null)

  let service: LabelSettings['service'] = null
  const serviceName = labels.get('service')?.trim()
  if (serviceName !== undefined && serviceName !== '') {
    try {
      const ref = normalizeServiceRef({ Service: serviceName, Registry: labels.get('registry')?.trim() ?? '', Tags: labels.get('tags') ?? '' }, 'labels')
      service = { Service: ref.Service, Registry: ref.Registry, Tags: ref.Tags }
    } catch (err) {
      if (!(err instanceof BalancerError)) throw err
      for (const p of err.problems) problems.push({ path: `${LABEL_PREFIX}${p.path.slice('labels.'.length).toLowerCase()}`, message: p.message })
    }
  } else if (labels.has('registry') || labels.has('tags')) {
    notes.push({ path: `${LABEL_PREFIX}${labels.has('registry') ? 'registry' : 'tags'}`, message: 'ignored without balancer.service' })
  }

  let scheme: 'http' | 'https' = 'http'
  const sch = labels.get('scheme')?.trim().toLowerCase()
  if (sch === 'http' || sch === 'https') scheme = sch
  else if (sch !== undefined && sch !== '') problems.push({ path: `${LABEL_PREFIX}scheme`, message: `must be "http" or "https", got ${JSON.stringify(sch)}` })

  if (protocol === 'h2c' && scheme === 'https') problems.push({ path: `${LABEL_PREFIX}protocol`, message: 'h2c is HTTP/2 without TLS; it cannot be combined with balancer.scheme=https' })
  if (protocol === 'h2' && sch === 'http') problems.push({ path: `${LABEL_PREFIX}protocol`, message: 'h2 is HTTP/2 over TLS; it cannot be combined with balancer.scheme=http' })

  const settings: LabelSettings | null =
    problems.length > 0 ? null : { address, filter, priority, weight, port: port === 0 ? null : port, network, fallback, service, swarmMode, protocol, protocols, scheme, tls, policy }
  return { enabled: true, settings, problems, notes }
}

function readTlsLabels(labels: ReadonlyMap<string, string>, problems: Problem[]): LabelSettings['tls'] {
  const on = labels.get('tls')
  if (on === undefined) return null
  const b = bool(on)
  if (b === null) problems.push({ path: `${LABEL_PREFIX}tls`, message: `must be "true" or "false", got ${JSON.stringify(on)}` })
  if (b !== true) return null
  const acmeText = labels.get('tls.acme')
  const acme = acmeText === undefined ? true : bool(acmeText)
  if (acme === null) problems.push({ path: `${LABEL_PREFIX}tls.acme`, message: `must be "true" or "false", got ${JSON.stringify(acmeText)}` })
  const email = (labels.get('tls.email') ?? '').trim()
  if (email !== '' && !/^[^\s@]+@[^\s@]+$/.test(email)) problems.push({ path: `${LABEL_PREFIX}tls.email`, message: `must be an e-mail address, got ${JSON.stringify(email)}` })
  const ch = (labels.get('tls.challenge') ?? 'http-01').trim().toLowerCase()
  if (ch !== 'http-01' && ch !== 'tls-alpn-01') problems.push({ path: `${LABEL_PREFIX}tls.challenge`, message: `must be "http-01" or "tls-alpn-01", got ${JSON.stringify(ch)}` })
  return { acme: acme !== false, email, challenge: ch === 'tls-alpn-01' ? 'tls-alpn-01' : 'http-01' }
}

/**
 * `balancer.health.interval=5s` ... -> the policy groups, read by the model's
 * own rules (policy.ts). Lists (`statuses`) are comma-separated. A label of a
 * group with no such field is a problem, not a note: a misspelt
 * `balancer.health.intervall` must not silently leave the default in place.
 */
function readPolicyLabels(labels: ReadonlyMap<string, string>, problems: Problem[]): Policy {
  const found: Partial<Record<PolicyGroup | RuleGroup, Found>> = {}
  // An empty value means "the default", as for every other label; the group is still present.
  const raw: Partial<Record<PolicyGroup | RuleGroup, LabelTree>> = {}
  for (const [key, value] of labels) {
    // `balancer.compress=true`: the compress group with its defaults (`"compress": {}`).
    if (key === 'compress') {
      const on = bool(value)
      if (on === null) problems.push({ path: `${LABEL_PREFIX}compress`, message: `must be "true" or "false", got ${JSON.stringify(value)}` })
      else if (on) raw.compress ??= {}
      continue
    }
    const m = POLICY_LABEL.exec(key)
    if (m === null) continue
    const group = m[1] as PolicyGroup | RuleGroup
    const tree = (raw[group] ??= {})
    const v = value.trim() === '' ? null : value.trim()
    // Rule groups nest: `balancer.rewrite.replacepathregex.regex`, `balancer.headers.request.set.x-env`.
    if ((RULE_GROUPS as readonly string[]).includes(group)) setPath(tree, (m[2] ?? '').split('.'), v, `${LABEL_PREFIX}${group}`, problems)
    else tree[m[2] ?? ''] = v
  }
  for (const g of [...POLICY_GROUPS, ...RULE_GROUPS]) {
    const fields = raw[g]
    if (fields !== undefined) found[g] = { value: fields, path: `${LABEL_PREFIX}${g}` }
  }
  const before = problems.length
  const policy = readPolicy(found, 'server', problems)
  // Field names as labels spell them: `balancer.health.interval`, not `Interval`.
  for (let i = before; i < problems.length; i++) {
    const p = problems[i]
    const group = [...POLICY_GROUPS, ...RULE_GROUPS].find((g) => p?.path.startsWith(`${LABEL_PREFIX}${g}.`))
    if (p === undefined || group === undefined || !p.message.startsWith('unknown field')) continue
    const fields = (POLICY_GROUPS as readonly string[]).includes(group) ? GROUP_FIELDS[group as PolicyGroup] : RULE_FIELDS[group as RuleGroup]
    if (p.path.split('.').length > 3) continue // a nested field's message already lists its names
    problems[i] = { path: p.path, message: `unknown label (expected one of ${fields.map((f) => `${LABEL_PREFIX}${group}.${f.toLowerCase()}`).join(', ')})` }
  }
  return policy
}

interface LabelTree {
  [k: string]: LabelTree | string | null
}

/** `a.b.c=v` into {a: {b: {c: v}}}; a key that is both a value and a parent is a problem. */
function setPath(tree: LabelTree, parts: readonly string[], v: string | null, at: string, problems: Problem[]): void {
  let node = tree
  let path = at
  for (let i = 0; i < parts.length - 1; i++) {
    const k = parts[i] as string
    path = `${path}.${k}`
    const next = node[k]
    if (next === undefined || next === null) node = node[k] = {}
    else if (typeof next === 'string') {
      problems.push({ path, message: 'is set as a value and has labels under it; keep one' })
      return
    } else node = next
  }
  const last = parts[parts.length - 1] as string
  if (typeof node[last] === 'object' && node[last] !== null) problems.push({ path: `${path}.${last}`, message: 'is set as a value and has labels under it; keep one' })
  else node[last] = v
}

function labelOfFilterPath(path: string): string {
  if (path.startsWith('filter.Hosts')) return `${LABEL_PREFIX}hosts`
  if (path.startsWith('filter.Schemes')) return `${LABEL_PREFIX}schemes`
  if (path.startsWith('filter.PathPrefix')) return `${LABEL_PREFIX}pathprefix`
  return path
}

/**
 * The one-route server a labelled target contributes; the merge combines
 * those that share address and filter. With balancer.service, its member is
 * that service reference, and targets are not used.
 */
export function labelServer(s: LabelSettings, targets: ReadonlyArray<{ Target: string; Port: number }>): Server {
  const proto = s.protocol === null ? {} : { Protocol: s.protocol }
  const members =
    s.service !== null
      ? [{ Service: s.service.Service, Registry: s.service.Registry, Tags: [...s.service.Tags], Priority: s.priority, Weight: s.weight, ...proto }]
      : targets.map((t) => ({ Target: t.Target, Port: t.Port, Priority: s.priority, Weight: s.weight, ...proto, ...(s.scheme === 'https' || s.protocol === 'h2' ? { Scheme: 'https' as const } : {}) }))
  const exact = s.filter.Hosts.filter((h) => !h.startsWith('*.') && !/^[0-9.]+$/.test(h) && !h.startsWith('['))
  const tls = s.tls === null ? undefined : { Certificates: [], ...(s.tls.acme && exact.length > 0 ? { Acme: { Hosts: exact, Email: s.tls.email, Challenge: s.tls.challenge } } : {}) }
  return {
    address: s.address,
    ...(tls === undefined ? {} : { tls }),
    ...(s.protocols === null ? {} : { Protocols: [...s.protocols] }),
    filter: { Hosts: [...s.filter.Hosts], Schemes: [...s.filter.Schemes], PathPrefix: s.filter.PathPrefix },
    upstreams: s.fallback ? [] : members,
    fallbacks: s.fallback ? members : [],
    ...s.policy,
    routes: [],
  }
}
