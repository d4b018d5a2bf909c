// What a service registry (Consul, etcd, ZooKeeper) tells the balancer, and
// what a registry's driver implements. A driver follows one service at a
// time (one watch per service, never per instance) and reports that
// service's whole current set of instances after each change; the shared
// runner (registry-source.ts) owns which services are followed, damping,
// coalescing, outages and publishing.

import type { Problem } from '../model/errors.ts'
import { checkTarget } from '../model/hostnames.ts'
import type { Server } from '../model/types.ts'
import type { DiscoveredMeta } from '../model/admission.ts'
import type { ServiceInstance } from '../model/services.ts'

/**
 * One instance of a service, as its registry reports it (the model's type:
 * service references resolve against it). tags: Consul tags, etcd JSON
 * `tags`, Curator payload `tags`; meta: Consul Meta, etcd JSON `meta`, Curator
 * payload (its `metadata` map, or its own string fields).
 */
export type Instance = ServiceInstance

export interface InstanceListener {
  /** The service's whole current set of usable instances, and why others were left out. */
  set(instances: Instance[], problems: Problem[]): void
  /** The registry cannot be read now: the last set stays. The driver keeps retrying with backoff. */
  error(err: Error): void
}

export interface ServiceListListener {
  set(services: string[]): void
  error(err: Error): void
}

export interface RegistryDriver {
  /** Follows one service until the signal aborts (then resolves); never rejects: trouble goes to on.error. */
  follow(service: string, signal: AbortSignal, on: InstanceListener): Promise<void>
  /**
   * Services the registry itself asks to be published (Consul: those tagged
   * `balancer.enable=true`), reported whole after each change. Optional.
   */
  discover?(signal: AbortSignal, on: ServiceListListener): Promise<void>
  /** The servers to publish from the instances of discover()'s services (Consul's tag-driven servers). */
  servers?(instances: ReadonlyMap<string, readonly Instance[]>): { servers: Server[]; names: string[]; problems: Problem[]; meta: DiscoveredMeta[] }
  close(): void
}

/** Connection state of one registry, for GET /status. */
export interface RegistryHealth {
  name: string
  kind: string
  location: string
  state: 'connecting' | 'connected' | 'unreachable'
  /** ISO 8601 time of the last change of state. */
  since: string
  /** Why it is unreachable; null otherwise. */
  detail: string | null
  /** Followed services and how many instances each has now (the last known during an outage). */
  services: Record<string, number>
  /** Instances held out because they flapped, as `service/target:port`. */
  damped: string[]
}

/**
 * Checks an instance's address and port with the model's rules: the instance
 * or, when unusable, the problem that leaves it out (its path names registry,
 * service and instance: `consul:web/node-1/web-1`).
 */
export function checkInstance(at: string, raw: { id: string; host: unknown; port: unknown; tags?: string[]; meta?: Record<string, string>; https?: boolean }): Instance | Problem {
  if (typeof raw.host !== 'string' || raw.host.trim() === '') return { path: at, message: `no address (got ${JSON.stringify(raw.host ?? null)}); left out` }
  const t = checkTarget(raw.host)
  if ('error' in t) return { path: at, message: `address ${t.error}; left out` }
  const port = typeof raw.port === 'string' && /^[0-9]{1,5}$/.test(raw.port) ? Number(raw.port) : raw.port
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    return { path: at, message: `port must be an integer 1-65535, got ${JSON.stringify(raw.port ?? null)}; left out` }
  }
  return { id: raw.id, Target: t.value, Port: port, tags: raw.tags ?? [], meta: raw.meta ?? {}, ...(raw.https === true ? { Scheme: 'https' as const } : {}) }
}

/** A JSON object's string, number and boolean fields as strings (registry metadata); anything else is dropped. */
export function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return out
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x === 'string') out[k] = x
    else if (typeof x === 'number' || typeof x === 'boolean') out[k] = String(x)
  }
  return out
}
