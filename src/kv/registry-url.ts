// Service registry URLs (--registry, repeatable; BALANCER_REGISTRY, comma
// separated): `consul://[TOKEN@]host:port`, `etcd://[user:password@]host:port
// [,host:port...]/prefix`, `zk://[user:password@]host:port[,host:port...]/base`,
// each optionally named `NAME=URL` (the name upstream entries give as
// "Registry", and the origin shown in the API; default: the kind, `consul`,
// `etcd`, `zookeeper`). Pure: text in, the parsed registry or a message out.

import type { HostPort } from './endpoint.ts'
import { parseHostPort } from './endpoint.ts'

export type RegistryKind = 'consul' | 'etcd' | 'zookeeper'

export interface RegistryUrl {
  /** Unique among the configured registries. */
  name: string
  kind: RegistryKind
  hosts: HostPort[]
  /** etcd: `/services` (the registrator layout's root); zookeeper: Curator's base path; consul: ''. */
  prefix: string
  user: string | null
  password: string | null
  /** The URL as shown in logs and /status: no credentials. */
  location: string
}

const KINDS: Record<string, RegistryKind> = { consul: 'consul', etcd: 'etcd', zk: 'zookeeper', zookeeper: 'zookeeper' }
const DEFAULT_PORT: Record<RegistryKind, number> = { consul: 8500, etcd: 2379, zookeeper: 2181 }
const NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/

export function parseRegistryUrl(text: string): RegistryUrl | { error: string } {
  let name: string | null = null
  let url = text.trim()
  const eq = url.indexOf('=')
  if (eq > 0 && !url.slice(0, eq).includes('://')) {
    name = url.slice(0, eq).trim().toLowerCase()
    url = url.slice(eq + 1).trim()
    if (!NAME.test(name)) return { error: `registry name "${name}" must match [a-z0-9][a-z0-9_.-]{0,62}` }
  }
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)([?#].*)?$/.exec(url)
  const kind = m === null ? undefined : KINDS[m[1] ?? '']
  if (m === null || kind === undefined) return { error: `"${url}" is not a consul://, etcd:// or zk:// URL` }
  if (m[4] !== undefined) return { error: 'query strings and fragments are not supported (credentials and TLS: docs/discovery.md)' }
  let authority = m[2] ?? ''
  let user: string | null = null
  let password: string | null = null
  const at = authority.lastIndexOf('@')
  if (at >= 0) {
    const info = authority.slice(0, at)
    authority = authority.slice(at + 1)
    const colon = info.indexOf(':')
    try {
      user = decodeURIComponent(colon < 0 ? info : info.slice(0, colon))
      password = colon < 0 ? null : decodeURIComponent(info.slice(colon + 1))
    } catch {
      return { error: 'the user:password part is not valid percent-encoding' }
    }
  }
  const hosts: HostPort[] = []
  for (const part of authority.split(',')) {
    const hp = parseHostPort(part.trim(), DEFAULT_PORT[kind])
    if (hp === null) return { error: `"${part}" is not host:port` }
    hosts.push(hp)
  }
  if (kind === 'consul' && hosts.length > 1) return { error: 'consul:// takes one host:port (the local agent)' }
  const segments = (m[3] ?? '').split('/').filter((s) => s !== '')
  if (segments.some((s) => s === '.' || s === '..')) return { error: 'the path may not contain "." or ".." segments' }
  if (kind === 'consul' && segments.length > 0) return { error: 'consul:// takes no path: services come from the catalog' }
  if (kind !== 'consul' && segments.length === 0) {
    return { error: `a ${kind === 'etcd' ? 'prefix' : 'base path'} is required: ${m[1]}://${authority || 'host:port'}/services` }
  }
  const prefix = segments.length === 0 ? '' : `/${segments.join('/')}`
  const shown = hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`).join(',')
  return { name: name ?? kind, kind, hosts, prefix, user, password, location: `${m[1]}://${shown}${prefix}` }
}

/** Every URL parsed, names checked unique; all problems at once. */
export function parseRegistryUrls(texts: readonly string[]): RegistryUrl[] | { errors: string[] } {
  const out: RegistryUrl[] = []
  const errors: string[] = []
  for (const t of texts) {
    const r = parseRegistryUrl(t)
    if ('error' in r) errors.push(`${t}: ${r.error}`)
    else if (r.name === 'docker' || r.name === 'swarm') errors.push(`${t}: "${r.name}" is the origin of another discovery source; name the registry otherwise: NAME=${r.location}`)
    else if (out.some((o) => o.name === r.name)) errors.push(`${t}: a registry named "${r.name}" is already configured; name one of them: NAME=${r.location}`)
    else out.push(r)
  }
  return errors.length > 0 ? { errors } : out
}

/** BALANCER_REGISTRY: URLs separated by commas; a comma inside one URL's host list (etcd://a:2379,b:2379/x) does not split it. */
export function splitRegistryList(text: string): string[] {
  return text
    .split(/,(?=\s*(?:[a-z0-9][a-z0-9_.-]*=)?[a-z][a-z0-9+.-]*:\/\/)/i)
    .map((s) => s.trim())
    .filter((s) => s !== '')
}
