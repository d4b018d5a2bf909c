// TLS material for an etcd or Consul connection, from the environment:
// BALANCER_ETCD_CA/_CERT/_KEY (PEM files) or BALANCER_ETCD_TLS=true (the
// system's CAs), likewise BALANCER_CONSUL_*. The store and the registry
// sources read the same variables: one cluster, one set of credentials.

import { readFileSync } from 'node:fs'
import type { TlsFiles } from './endpoint.ts'

type Env = Readonly<Record<string, string | undefined>>

/** BALANCER_<X>_CA/_CERT/_KEY (PEM files) or BALANCER_<X>_TLS=true (the system's CAs); null: plain TCP. */
export function tlsFiles(store: 'ETCD' | 'CONSUL', env: Env, problems: Array<{ path: string; message: string }>): TlsFiles | null {
  const read = (name: string): Buffer | null => {
    const path = env[name]
    if (path === undefined || path === '') return null
    try {
      return readFileSync(path)
    } catch (err) {
      problems.push({ path: name, message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` })
      return null
    }
  }
  const files: TlsFiles = { ca: read(`BALANCER_${store}_CA`), cert: read(`BALANCER_${store}_CERT`), key: read(`BALANCER_${store}_KEY`) }
  if ((files.cert === null) !== (files.key === null)) {
    problems.push({ path: `BALANCER_${store}_CERT`, message: `a client certificate needs both BALANCER_${store}_CERT and BALANCER_${store}_KEY` })
  }
  const flag = (env[`BALANCER_${store}_TLS`] ?? '').toLowerCase()
  const on = flag === 'true' || flag === '1' || files.ca !== null || files.cert !== null
  return on ? files : null
}
