// Consul's health and catalog answers -> instances, and instances of
// services tagged `balancer.enable=true` -> the servers they publish (like
// Docker labels: model/labels.ts reads them). Pure: golden files in
// test/golden/consul (refresh with UPDATE_GOLDEN=1).
//
// Settings come from the instance's tags `balancer.<name>=<value>` and from
// its Meta `balancer_<name>` (Consul refuses dots in Meta keys, so
// underscores stand for them: `balancer_health_path`); a tag wins over Meta.

import type { DiscoveredMeta } from '../../model/admission.ts'
import { registryOwner } from '../../model/admission.ts'
import type { Problem } from '../../model/errors.ts'
import { labelServer, readLabels } from '../../model/labels.ts'
import type { Server } from '../../model/types.ts'
import type { Instance } from '../registry.ts'
import { checkInstance } from '../registry.ts'

/** One entry of GET /v1/health/service/<name>, the fields read. */
export interface HealthEntry {
  Node?: { Node?: string; Address?: string } | null
  Service?: { ID?: string; Service?: string; Tags?: string[] | null; Address?: string; Meta?: Record<string, string> | null; Port?: number } | null
  Checks?: Array<{ Status?: string; CheckID?: string }> | null
}

export const ENABLE_TAG = 'balancer.enable=true'
/** Consul's filter for the services with Meta balancer_enable=true (/v1/catalog/services lists tags only). */
export const ENABLE_META_FILTER = 'ServiceMeta.balancer_enable == "true"'

/** Instances that pass every check; the address falls back to the node's. */
export function instancesOf(registry: string, service: string, entries: readonly HealthEntry[]): { instances: Instance[]; problems: Problem[] } {
  const instances: Instance[] = []
  const problems: Problem[] = []
  for (const e of entries) {
    const node = e.Node?.Node ?? ''
    const s = e.Service ?? {}
    const id = `${node}/${s.ID ?? s.Service ?? ''}`
    // ?passing already filters; a check that is not passing still keeps it out.
    if ((e.Checks ?? []).some((c) => c.Status !== 'passing')) continue
    const host = s.Address !== undefined && s.Address !== '' ? s.Address : e.Node?.Address
    const r = checkInstance(`${registry}:${service}/${id}`, { id, host, port: s.Port, tags: s.Tags ?? [], meta: s.Meta ?? {} })
    if ('path' in r) problems.push(r)
    else instances.push(r)
  }
  return { instances, problems }
}

/** Services of GET /v1/catalog/services that carry the balancer.enable=true tag. */
export function taggedServices(catalog: Readonly<Record<string, readonly string[] | null>>): string[] {
  return Object.entries(catalog)
    .filter(([, tags]) => (tags ?? []).some((t) => t.trim().toLowerCase() === ENABLE_TAG))
    .map(([name]) => name)
    .sort()
}

/** `balancer.*` settings of an instance as labels: Meta `balancer_x_y` first, then tags `balancer.x.y=v`. */
export function labelsOf(i: Instance): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(i.meta)) {
    const key = k.toLowerCase()
    if (key.startsWith('balancer_')) out[`balancer.${key.slice('balancer_'.length).replace(/_/g, '.')}`] = v
  }
  for (const t of i.tags) {
    const eq = t.indexOf('=')
    const key = (eq < 0 ? t : t.slice(0, eq)).trim().toLowerCase()
    if (key.startsWith('balancer.')) out[key] = eq < 0 ? '' : t.slice(eq + 1).trim()
  }
  return out
}

/**
 * What the discovery rules see of an instance (model/admission.ts): its
 * service's name, its tags (`k=v` as label k, a bare tag as a label with an
 * empty value) and its Meta as labels; the owner is the service in this registry.
 */
export function metaOf(registry: string, service: string, i: Instance): DiscoveredMeta {
  const labels: Record<string, string> = { ...i.meta }
  for (const t of i.tags) {
    const eq = t.indexOf('=')
    if (eq < 0) labels[t] ??= ''
    else labels[t.slice(0, eq)] = t.slice(eq + 1)
  }
  return { subject: { name: service, labels, networks: [] }, owner: registryOwner(registry, service), created: '' }
}

/** The server each enabled instance contributes (the merge groups those with one address and filter into one upstream set). */
export function taggedServers(registry: string, instances: ReadonlyMap<string, readonly Instance[]>): { servers: Server[]; names: string[]; problems: Problem[]; meta: DiscoveredMeta[] } {
  const servers: Server[] = []
  const names: string[] = []
  const problems: Problem[] = []
  const meta: DiscoveredMeta[] = []
  for (const [service, list] of instances) {
    for (const i of list) {
      const read = readLabels(labelsOf(i))
      if (!read.enabled) continue
      const at = `${registry}:${service}/${i.id}`
      for (const p of [...read.problems, ...read.notes]) problems.push({ path: at, message: `${p.path}: ${p.message}` })
      if (read.settings === null) continue
      servers.push(labelServer(read.settings, [{ Target: i.Target, Port: read.settings.port ?? i.Port }]))
      names.push(`${service}/${i.id}`)
      meta.push(metaOf(registry, service, i))
    }
  }
  return { servers, names, problems, meta }
}
