// A Swarm service and its tasks -> the server it contributes. Pure: golden
// files in test/golden/swarm (refresh with UPDATE_GOLDEN=1).
//
// Targets: each task that is running and meant to run (desired state
// `running`), at its IP on the chosen network (default), or the service's
// virtual IP with balancer.swarm.mode=vip. A DNSRR service has no VIP: its
// tasks are used and a note says so. A service with no running task still
// contributes its route, with no upstream: clients get 503, not 404.
//
// Network choice (docs/discovery.md): balancer.network (by name, by the
// stack-prefixed name `<stack>_<name>`, or by ID); else a network the
// balancer's own container shares with the service (the first by name);
// else, outside Docker, the port the service publishes (127.0.0.1 and the
// published port: the routing mesh picks the task); else the first of the
// service's networks by name, `ingress` excluded.

import type { Subject } from '../../model/constraint.ts'
import type { Problem } from '../../model/errors.ts'
import { labelServer, readLabels } from '../../model/labels.ts'
import type { LabelSettings } from '../../model/labels.ts'
import type { Server } from '../../model/types.ts'
import type { SwarmService, SwarmTask } from '../../docker-api/types.ts'

export interface SwarmSelf {
  id: string
  networkIds: ReadonlySet<string>
}

export interface ServiceTranslated {
  id: string
  name: string
  server: Server | null
  /** How targets were chosen, e.g. `tasks on shop_backend`. */
  via: string | null
  problems: Problem[]
  notes: Problem[]
}

interface Net {
  id: string
  name: string
}

/** null when the service does not ask for discovery. */
export function translateService(svc: SwarmService, tasks: readonly SwarmTask[], self: SwarmSelf | null, gone: ReadonlySet<string>): ServiceTranslated | null {
  const read = readLabels(svc.Spec?.Labels)
  if (!read.enabled) return null
  const out: ServiceTranslated = { id: svc.ID, name: svc.Spec?.Name ?? svc.ID, server: null, via: null, problems: read.problems, notes: read.notes }
  const s = read.settings
  if (s === null) return out
  // balancer.service: the route goes to that registry service, not to this service's tasks.
  if (s.service !== null) {
    out.server = labelServer(s, [])
    return out
  }
  const port = s.port ?? singleTargetPort(svc)
  if (typeof port !== 'number') {
    out.problems.push({ path: 'balancer.port', message: port.error })
    return out
  }
  const nets = networksOf(svc, tasks)
  const stack = svc.Spec?.Labels?.['com.docker.stack.namespace']
  let net: Net | undefined
  if (s.network !== null) {
    net = findNetwork(nets, s.network, stack)
    if (net === undefined) {
      out.problems.push({ path: 'balancer.network', message: `the service is not on network ${JSON.stringify(s.network)} (it is on: ${nets.map((n) => n.name).join(', ') || 'none'})` })
      return out
    }
  } else if (self !== null) {
    net = nets.find((n) => self.networkIds.has(n.id))
  } else {
    const published = publishedPort(svc, port)
    if (published !== null) {
      out.via = `published port ${published}`
      out.server = labelServer(s, [{ Target: '127.0.0.1', Port: published }])
      return out
    }
  }
  net ??= nets.find((n) => n.name !== 'ingress')
  if (net === undefined) {
    out.problems.push({ path: 'balancer.network', message: 'the service is on no network the balancer can use; attach it to an overlay network the balancer shares' })
    return out
  }
  return withTargets(out, s, svc, tasks, net, port, gone)
}

/** What a discovery constraint sees of a service: name, its (deploy) labels, network names. */
export function serviceSubject(svc: SwarmService, tasks: readonly SwarmTask[]): Subject {
  return { name: svc.Spec?.Name ?? svc.ID, labels: svc.Spec?.Labels ?? {}, networks: networksOf(svc, tasks).map((n) => n.name) }
}

function withTargets(out: ServiceTranslated, s: LabelSettings, svc: SwarmService, tasks: readonly SwarmTask[], net: Net, port: number, gone: ReadonlySet<string>): ServiceTranslated {
  const dnsrr = (svc.Endpoint?.Spec?.Mode ?? svc.Spec?.EndpointSpec?.Mode) === 'dnsrr'
  if (s.swarmMode === 'vip') {
    if (dnsrr) out.notes.push({ path: 'balancer.swarm.mode', message: 'the service uses DNSRR and has no virtual IP; its tasks are used' })
    else {
      const vip = (svc.Endpoint?.VirtualIPs ?? []).find((v) => v.NetworkID === net.id)?.Addr
      if (vip === undefined) {
        out.problems.push({ path: 'balancer.swarm.mode', message: `the service has no virtual IP on network ${JSON.stringify(net.name)}` })
        return out
      }
      out.via = `vip on ${net.name}`
      out.server = labelServer(s, [{ Target: stripPrefix(vip), Port: port }])
      return out
    }
  }
  const targets: Array<{ Target: string; Port: number; slot: number; id: string }> = []
  for (const t of tasks) {
    if (t.DesiredState !== 'running' || t.Status?.State !== 'running' || gone.has(t.ID)) continue
    const att = (t.NetworksAttachments ?? []).find((a) => a.Network?.ID === net.id)
    const addr = att?.Addresses?.[0]
    if (addr === undefined) continue
    targets.push({ Target: stripPrefix(addr), Port: port, slot: t.Slot ?? 0, id: t.ID })
  }
  // Stable order: by slot (replicated) then task id (global services have no slot).
  targets.sort((a, b) => a.slot - b.slot || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  out.via = `tasks on ${net.name}`
  out.server = labelServer(s, targets)
  return out
}

function stripPrefix(addr: string): string {
  const slash = addr.indexOf('/')
  return slash === -1 ? addr : addr.slice(0, slash)
}

/** The service's networks (from its tasks, which carry names; else its spec), sorted by name. */
function networksOf(svc: SwarmService, tasks: readonly SwarmTask[]): Net[] {
  const byId = new Map<string, string>()
  for (const t of tasks) {
    for (const a of t.NetworksAttachments ?? []) {
      const id = a.Network?.ID
      if (id !== undefined) byId.set(id, a.Network?.Spec?.Name ?? id)
    }
  }
  for (const n of svc.Spec?.TaskTemplate?.Networks ?? []) if (n.Target !== undefined && !byId.has(n.Target)) byId.set(n.Target, n.Target)
  for (const v of svc.Endpoint?.VirtualIPs ?? []) if (v.NetworkID !== undefined && !byId.has(v.NetworkID)) byId.set(v.NetworkID, v.NetworkID)
  return [...byId].map(([id, name]) => ({ id, name })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1))
}

function findNetwork(nets: readonly Net[], want: string, stack: string | undefined): Net | undefined {
  const w = want.toLowerCase()
  return (
    nets.find((n) => n.name === want) ??
    (stack === undefined ? undefined : nets.find((n) => n.name === `${stack}_${want}`)) ??
    nets.find((n) => n.name.toLowerCase() === w) ??
    (w.length >= 12 ? nets.find((n) => n.id.toLowerCase().startsWith(w)) : undefined)
  )
}

function ports(svc: SwarmService): NonNullable<NonNullable<SwarmService['Endpoint']>['Ports']> {
  return svc.Endpoint?.Ports ?? svc.Endpoint?.Spec?.Ports ?? svc.Spec?.EndpointSpec?.Ports ?? []
}

function singleTargetPort(svc: SwarmService): number | { error: string } {
  const targets = [
    ...new Set(
      ports(svc)
        .filter((p) => (p.Protocol ?? 'tcp') === 'tcp')
        .map((p) => p.TargetPort ?? 0),
    ),
  ].filter((p) => p > 0)
  const only = targets[0]
  if (targets.length === 1 && only !== undefined) return only
  if (targets.length === 0) return { error: 'a service does not tell which port its tasks listen on; set balancer.port' }
  return { error: `the service publishes ${targets.length} target ports (${targets.join(', ')}); set balancer.port to the one to use` }
}

function publishedPort(svc: SwarmService, port: number): number | null {
  const p = ports(svc).find((x) => x.TargetPort === port && (x.Protocol ?? 'tcp') === 'tcp' && (x.PublishedPort ?? 0) > 0)
  return p?.PublishedPort ?? null
}
