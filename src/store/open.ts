// Store URL -> backend. `file://PATH` (also a bare path) is the embedded
// default; `etcd://`, `consul://` and `zk://` (store-url.ts) are the KV stores,
// with TLS material and credentials from the environment (docs/stores.md).
// Credentials never appear in a store's `location`, in errors or in logs.
//
// A KV backend's module (and its client library: etcd3 with gRPC, the
// ZooKeeper client) is loaded only when its scheme is asked for: etcd3 alone
// is about 35 MiB resident, which a balancer on the file store never needs.

import { fileURLToPath } from 'node:url'
import { parseDuration } from '../model/duration.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import type { Problem } from '../model/errors.ts'
import type { ConfigStore } from './store.ts'
import { FileStore } from './file.ts'
import type { KvStoreOptions } from './kv/options.ts'
import { tlsFiles } from '../kv/tls-env.ts'
import { isKvScheme, parseKvUrl } from './store-url.ts'
import type { KvUrl } from './store-url.ts'

export type Env = Readonly<Record<string, string | undefined>>

/**
 * Checks the URL and the environment first (throws E_VALIDATION naming each
 * problem), then loads the backend. `onNotice` hears what the owner should
 * log once (the file store: writes not serialized with other processes).
 */
export async function openStore(url: string, env: Env = process.env, onNotice?: (message: string) => void): Promise<ConfigStore> {
  const fileOpts = onNotice === undefined ? {} : { onNotice }
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/.exec(url)
  if (m === null) return new FileStore(url, fileOpts)
  const scheme = m[1] ?? ''
  const rest = m[2] ?? ''
  if (scheme === 'file') {
    // file:///abs/path and file://relative/path are both accepted.
    const path = rest.startsWith('/') ? fileURLToPath(`file://${rest}`) : rest
    return new FileStore(path, fileOpts)
  }
  if (!isKvScheme(scheme)) {
    throw new BalancerError(
      ErrorCode.Validation,
      `--store: unsupported store "${scheme}" (supported: file://PATH, etcd://HOST:PORT[,HOST:PORT]/PREFIX, consul://HOST:PORT/PREFIX, zk://HOST:PORT[,HOST:PORT]/PATH)`,
      [{ path: '--store', message: `unsupported scheme "${scheme}"` }],
    )
  }
  const u = parseKvUrl(url)
  const problems: Problem[] = []
  const common = commonOptions(u, env, problems)
  let make: () => Promise<ConfigStore>
  if (u.scheme === 'etcd') {
    const o = {
      ...common,
      user: u.user ?? env.BALANCER_ETCD_USER ?? null,
      password: u.password ?? env.BALANCER_ETCD_PASSWORD ?? null,
      tls: tlsFiles('ETCD', env, problems),
    }
    make = async () => new (await import('./etcd.ts')).EtcdStore(o)
  } else if (u.scheme === 'consul') {
    const o = {
      ...common,
      // consul://TOKEN@host or consul://:TOKEN@host; else the environment.
      token: u.password ?? u.user ?? env.BALANCER_CONSUL_TOKEN ?? null,
      tls: tlsFiles('CONSUL', env, problems),
    }
    make = async () => new (await import('./consul.ts')).ConsulStore(o)
  } else {
    const auth = u.user === null ? env.BALANCER_ZK_AUTH : `digest:${u.user}:${u.password ?? ''}`
    const session = env.BALANCER_ZK_SESSION_TIMEOUT
    const sessionMs = session === undefined || session === '' ? undefined : durationMs(session, 'BALANCER_ZK_SESSION_TIMEOUT', problems)
    const o = {
      ...common,
      ...(sessionMs === undefined ? {} : { sessionTimeoutMs: sessionMs }),
      auth: zkAuth(auth, problems),
    }
    make = async () => new (await import('./zookeeper.ts')).ZooKeeperStore(o)
  }
  if (problems.length > 0) {
    throw new BalancerError(ErrorCode.Validation, problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems)
  }
  return make()
}

function commonOptions(u: KvUrl, env: Env, problems: Problem[]): KvStoreOptions {
  const o: KvStoreOptions = { hosts: u.hosts, prefix: u.prefix, location: u.location }
  const t = env.BALANCER_STORE_TIMEOUT
  if (t !== undefined && t !== '') {
    const ms = durationMs(t, 'BALANCER_STORE_TIMEOUT', problems)
    if (ms !== undefined) o.timeoutMs = ms
  }
  return o
}

/** `scheme:credentials`, e.g. `digest:user:password`. */
function zkAuth(text: string | undefined, problems: Problem[]): Array<{ scheme: string; credentials: string }> {
  if (text === undefined || text === '') return []
  const i = text.indexOf(':')
  if (i <= 0 || i === text.length - 1) {
    problems.push({ path: 'BALANCER_ZK_AUTH', message: 'must be scheme:credentials, e.g. digest:user:password' })
    return []
  }
  return [{ scheme: text.slice(0, i), credentials: text.slice(i + 1) }]
}

function durationMs(v: string, name: string, problems: Problem[]): number | undefined {
  const ms = parseDuration(v)
  if (ms === null || ms <= 0) {
    problems.push({ path: name, message: `must be a duration like 5s or 500ms, got "${v}"` })
    return undefined
  }
  return ms
}
