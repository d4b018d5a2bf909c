// Service references: an upstream or fallback entry that names a service in
// a registry (`{"Service": "web", "Registry": "consul", "Tags": ["v2"]}`)
// instead of an address. The store keeps the reference as written; the merge
// resolves it, every time, into the service's live instances as its registry
// reports them. Pure: the instances come in as data.
//
// Each instance becomes an upstream (or fallback) with the reference's
// Priority and Weight, unless the instance's metadata sets `balancer.priority`
// / `balancer.weight` (Consul Meta: `balancer_priority` / `balancer_weight`).
// An address written explicitly in the same list wins over an instance with
// the same target-port. A reference without "Registry" takes the instances
// of every configured registry that has the service. Instances speak the
// reference's Protocol; one whose target-port is used elsewhere in the
// configuration with another Protocol is left out and reported (one upstream
// speaks one protocol, and the compiler would refuse the whole configuration).
// An instance its registry marks as TLS (Curator's sslPort) is reached with
// Scheme https.
//
// The reference itself stays in its list, in its place, followed by its
// instances: what is served shows both (a GET put back as is keeps the
// reference and drops the instances, which carry their registry as origin),
// and the compiler routes only addresses.

import type { Problem } from './errors.ts'
import type { Config, Member, ServiceRef, Upstream } from './types.ts'
import { isServiceRef, ROUTE_DEFAULT } from './types.ts'

/** One instance of a service as a registry reports it. */
export interface ServiceInstance {
  /** The registry's id for it (Consul `node/service-id`, etcd key below the service, ZooKeeper node name). */
  id: string
  Target: string
  Port: number
  tags: string[]
  meta: Record<string, string>
  /** `https`: the instance is reached over TLS (Curator's sslPort); absent: plain HTTP. */
  Scheme?: 'https'
}

/** Registry name -> followed service -> its current instances. */
export type RegistryView = ReadonlyMap<string, Readonly<Record<string, readonly ServiceInstance[]>>>

/** Where a resolved member came from: its registry and `service/instance-id`. */
export interface ResolvedMember {
  address: string
  route: string
  list: 'upstreams' | 'fallbacks'
  member: Upstream
  registry: string
  name: string
}

export interface Resolution {
  config: Config
  problems: Problem[]
  members: ResolvedMember[]
}

/** Every service the config refers to, by registry name ('' = any registry). */
export function referencedServices(cfg: Config): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const s of cfg.servers) {
    for (const r of [s, ...s.routes]) {
      for (const m of [...r.upstreams, ...r.fallbacks]) {
        if (!isServiceRef(m)) continue
        let set = out.get(m.Registry)
        if (set === undefined) out.set(m.Registry, (set = new Set()))
        set.add(m.Service)
      }
    }
  }
  return out
}

/** The services each configured registry must follow: its own references plus those naming no registry. */
export function followedBy(cfg: Config, registries: readonly string[]): Map<string, Set<string>> {
  const refs = referencedServices(cfg)
  const any = refs.get('') ?? new Set<string>()
  return new Map(registries.map((r) => [r, new Set([...any, ...(refs.get(r) ?? [])])]))
}

/** Adds every service reference's instances after it; config without references comes back as it is. */
export function resolveServices(cfg: Config, view: RegistryView): Resolution {
  const problems: Problem[] = []
  const members: ResolvedMember[] = []
  const protocols = new Map<string, string>()
  for (const s of cfg.servers) {
    for (const r of [s, ...s.routes]) for (const m of [...r.upstreams, ...r.fallbacks]) if (!isServiceRef(m)) protocols.set(key(m), m.Protocol ?? 'http/1.1')
  }
  const ctx: Ctx = { view, problems, members, protocols }
  const servers = cfg.servers.map((s) => {
    const own = { name: ROUTE_DEFAULT, upstreams: s.upstreams, fallbacks: s.fallbacks }
    const resolved = [own, ...s.routes].map((r) => ({
      upstreams: resolveList(s.address, r.name, 'upstreams', r.upstreams, ctx),
      fallbacks: resolveList(s.address, r.name, 'fallbacks', r.fallbacks, ctx),
    }))
    const [first, ...rest] = resolved
    return {
      ...s,
      upstreams: first?.upstreams ?? [],
      fallbacks: first?.fallbacks ?? [],
      routes: s.routes.map((r, i) => ({ ...r, upstreams: rest[i]?.upstreams ?? [], fallbacks: rest[i]?.fallbacks ?? [] })),
    }
  })
  return { config: { servers }, problems, members }
}

interface Ctx {
  view: RegistryView
  problems: Problem[]
  members: ResolvedMember[]
  /** target-port -> the protocol it speaks in the configuration so far. */
  protocols: Map<string, string>
}

function resolveList(address: string, route: string, list: 'upstreams' | 'fallbacks', items: readonly Member[], ctx: Ctx): Member[] {
  const { view, problems, members, protocols } = ctx
  if (!items.some(isServiceRef)) return [...items]
  const out: Member[] = []
  // Written addresses win over an instance at the same target-port.
  const taken = new Set<string>()
  for (const m of items) if (!isServiceRef(m)) taken.add(key(m))
  items.forEach((m, i) => {
    out.push(m)
    if (!isServiceRef(m)) return
    const at = `${address}#${route}.${list}[${i}]`
    const names = m.Registry === '' ? [...view.keys()] : [m.Registry]
    if (m.Registry !== '' && !view.has(m.Registry)) {
      problems.push({
        path: at,
        message: `service ${JSON.stringify(m.Service)}: no registry named ${JSON.stringify(m.Registry)} is configured (--registry${view.size === 0 ? '' : `; configured: ${[...view.keys()].join(', ')}`})`,
      })
      return
    }
    if (view.size === 0) {
      problems.push({ path: at, message: `service ${JSON.stringify(m.Service)}: no registry is configured (--registry)` })
      return
    }
    for (const name of names) {
      for (const inst of view.get(name)?.[m.Service] ?? []) {
        if (!m.Tags.every((t) => inst.tags.includes(t))) continue
        const where = `${name}:${m.Service}/${inst.id}`
        const u = memberOf(m, inst, where, problems)
        if (taken.has(key(u))) continue
        if (u.Scheme === 'https' && u.Protocol === 'h2c') {
          problems.push({ path: where, message: `${inst.Target}-${inst.Port} speaks TLS (https), the reference says h2c (HTTP/2 without TLS); left out` })
          continue
        }
        const speaks = protocols.get(key(u))
        if (speaks !== undefined && speaks !== (u.Protocol ?? 'http/1.1')) {
          problems.push({ path: where, message: `${inst.Target}-${inst.Port} speaks ${speaks} elsewhere in the configuration, the reference says ${u.Protocol ?? 'http/1.1'}; left out` })
          continue
        }
        protocols.set(key(u), u.Protocol ?? 'http/1.1')
        taken.add(key(u))
        out.push(u)
        members.push({ address, route, list, member: u, registry: name, name: `${m.Service}/${inst.id}` })
      }
    }
  })
  return out
}

/** The reference's Priority and Weight, unless the instance's metadata overrides them. */
function memberOf(ref: ServiceRef, inst: ServiceInstance, at: string, problems: Problem[]): Upstream {
  const meta = new Map(Object.entries(inst.meta).map(([k, v]) => [k.toLowerCase().replace(/^balancer_/, 'balancer.'), v]))
  const int = (field: 'priority' | 'weight', min: number, max: number, fallback: number): number => {
    const v = meta.get(`balancer.${field}`)
    if (v === undefined || v.trim() === '') return fallback
    const n = /^[0-9]{1,10}$/.test(v.trim()) ? Number(v.trim()) : Number.NaN
    if (Number.isInteger(n) && n >= min && n <= max) return n
    problems.push({
      path: at,
      message: `balancer.${field}: must be an integer ${min}-${max}, got ${JSON.stringify(v)}; the reference's ${field === 'priority' ? 'Priority' : 'Weight'} ${fallback} applies`,
    })
    return fallback
  }
  return {
    Target: inst.Target,
    Port: inst.Port,
    Priority: int('priority', 0, 1000, ref.Priority),
    Weight: int('weight', 1, 1000, ref.Weight),
    ...(ref.Protocol === undefined ? {} : { Protocol: ref.Protocol }),
    ...(ref.Protocol === 'h2' || inst.Scheme === 'https' ? { Scheme: 'https' as const } : {}),
  }
}

function key(u: Upstream): string {
  return `${u.Target.toLowerCase()}-${u.Port}`
}
