// KV store URLs: `etcd://[user:password@]host:port[,host:port...]/prefix`,
// `consul://host:port/prefix`, `zk://host:port[,host:port...]/path`. Pure:
// text in, a parsed URL or every problem out. Ports default to each store's
// usual one; the prefix is required (a balancer never owns a store's root).

import { BalancerError, ErrorCode } from '../model/errors.ts'
import type { Problem } from '../model/errors.ts'
import type { HostPort } from '../kv/endpoint.ts'
import { parseHostPort } from '../kv/endpoint.ts'

export type KvScheme = 'etcd' | 'consul' | 'zookeeper'

export type { HostPort } from '../kv/endpoint.ts'

export interface KvUrl {
  scheme: KvScheme
  hosts: HostPort[]
  /** `/a/b`: leading slash, no trailing slash, no empty, `.` or `..` segment. */
  prefix: string
  user: string | null
  password: string | null
  /** The URL as shown in logs and /status: credentials removed, prefix normalised. */
  location: string
}

const SCHEMES: Record<string, KvScheme> = { etcd: 'etcd', consul: 'consul', zk: 'zookeeper', zookeeper: 'zookeeper' }
const DEFAULT_PORT: Record<KvScheme, number> = { etcd: 2379, consul: 8500, zookeeper: 2181 }

export function isKvScheme(scheme: string): boolean {
  return scheme in SCHEMES
}

/** Throws E_VALIDATION with a problem at `--store` for anything wrong. */
export function parseKvUrl(url: string): KvUrl {
  const problems: Problem[] = []
  const bad = (message: string): void => void problems.push({ path: '--store', message })
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)([?#].*)?$/.exec(url)
  const scheme = m === null ? undefined : SCHEMES[m[1] ?? '']
  if (m === null || scheme === undefined) {
    throw new BalancerError(ErrorCode.Validation, `--store: not an etcd://, consul:// or zk:// URL`, [{ path: '--store', message: 'unsupported URL' }])
  }
  const authority = m[2] ?? ''
  if (m[4] !== undefined) bad('query strings and fragments are not supported (credentials and TLS come from the environment; see docs/stores.md)')

  let user: string | null = null
  let password: string | null = null
  let hostList = authority
  const at = authority.lastIndexOf('@')
  if (at >= 0) {
    const info = authority.slice(0, at)
    hostList = authority.slice(at + 1)
    const colon = info.indexOf(':')
    try {
      user = decodeURIComponent(colon < 0 ? info : info.slice(0, colon))
      password = colon < 0 ? null : decodeURIComponent(info.slice(colon + 1))
    } catch {
      bad('the user:password part is not valid percent-encoding')
    }
  }

  const hosts: HostPort[] = []
  for (const part of hostList.split(',')) {
    const hp = parseHostPort(part.trim(), DEFAULT_PORT[scheme])
    if (hp === null) bad(`"${part}" is not host:port`)
    else hosts.push(hp)
  }
  if (scheme === 'consul' && hostList.split(',').length > 1) bad('consul:// takes one host:port (the local agent)')

  const segments = (m[3] ?? '').split('/').filter((s) => s !== '')
  if (segments.length === 0) bad(`a prefix is required: ${m[1]}://${hostList || 'host:port'}/balancer`)
  if (segments.some((s) => s === '.' || s === '..')) bad('the prefix may not contain "." or ".." segments')
  const prefix = `/${segments.join('/')}`

  if (problems.length > 0) throw new BalancerError(ErrorCode.Validation, problems.map((p) => `--store: ${p.message}`).join('; '), problems)
  const shown = hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`).join(',')
  return { scheme, hosts, prefix, user, password, location: `${m[1]}://${shown}${prefix}` }
}
