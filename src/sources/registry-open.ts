// Registry URL -> a running-ready RegistrySource with its driver, credentials
// and TLS from the URL and the environment exactly as for the stores
// (docs/stores.md): BALANCER_CONSUL_TOKEN, BALANCER_CONSUL_CA/_CERT/_KEY/_TLS,
// BALANCER_ETCD_USER/_PASSWORD, BALANCER_ETCD_CA/..., BALANCER_ZK_AUTH.

import { ConsulClient } from '../kv/consul-client.ts'
import { createEtcdClient } from '../kv/etcd-client.ts'
import { hostPortText } from '../kv/endpoint.ts'
import { tlsFiles } from '../kv/tls-env.ts'
import { ZkSession } from '../kv/zk-session.ts'
import type { RegistryDriver } from './registry.ts'
import type { RegistrySourceOptions } from './registry-source.ts'
import { RegistrySource } from './registry-source.ts'
import type { RegistryUrl } from '../kv/registry-url.ts'
import { ConsulDriver } from './consul/source.ts'
import { EtcdDriver } from './etcd/source.ts'
import { ZooKeeperDriver } from './zookeeper/source.ts'

type Env = Readonly<Record<string, string | undefined>>

/** Throws on unreadable TLS files or bad credentials settings (before anything starts). */
export function openRegistry(u: RegistryUrl, env: Env = process.env, opts: RegistrySourceOptions & { timeoutMs?: number; waitMs?: number } = {}): RegistrySource {
  const problems: Array<{ path: string; message: string }> = []
  const timeoutMs = opts.timeoutMs ?? 5000
  let make: () => RegistryDriver
  if (u.kind === 'consul') {
    const tls = tlsFiles('CONSUL', env, problems)
    const token = u.password ?? u.user ?? env.BALANCER_CONSUL_TOKEN ?? null
    make = () =>
      new ConsulDriver({
        http: new ConsulClient({ host: u.hosts[0] ?? { host: '127.0.0.1', port: 8500 }, token, tls }),
        name: u.name,
        timeoutMs,
        ...(opts.waitMs === undefined ? {} : { waitMs: opts.waitMs }),
      })
  } else if (u.kind === 'etcd') {
    const tls = tlsFiles('ETCD', env, problems)
    const user = u.user ?? env.BALANCER_ETCD_USER ?? null
    const password = u.password ?? env.BALANCER_ETCD_PASSWORD ?? null
    make = () => new EtcdDriver({ client: createEtcdClient({ hosts: u.hosts, user, password, tls }, timeoutMs), name: u.name, prefix: u.prefix, timeoutMs })
  } else {
    const text = u.user === null ? env.BALANCER_ZK_AUTH : `digest:${u.user}:${u.password ?? ''}`
    const auth: Array<{ scheme: string; auth: Buffer }> = []
    if (text !== undefined && text !== '') {
      const i = text.indexOf(':')
      if (i <= 0 || i === text.length - 1) problems.push({ path: 'BALANCER_ZK_AUTH', message: 'must be scheme:credentials, e.g. digest:user:password' })
      else auth.push({ scheme: text.slice(0, i), auth: Buffer.from(text.slice(i + 1)) })
    }
    make = () =>
      new ZooKeeperDriver({
        session: new ZkSession({ connect: u.hosts.map(hostPortText).join(','), sessionTimeoutMs: 10_000, auth }),
        name: u.name,
        base: u.prefix,
        timeoutMs,
      })
  }
  if (problems.length > 0) throw new Error(`--registry ${u.location}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`)
  return new RegistrySource(u, make(), opts)
}
