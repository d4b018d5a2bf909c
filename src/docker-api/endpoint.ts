// Where the Docker Engine API is: `unix:///var/run/docker.sock` (default),
// `tcp://host:port` (TLS when DOCKER_TLS_VERIFY is set or the port is 2376,
// like the docker CLI), `http://` / `https://`, `ssh://[user@]host[:port]`
// (the daemon of a remote host, through `docker system dial-stdio` there;
// keys from the ssh agent at SSH_AUTH_SOCK, the host key checked against
// ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts). TLS material comes from
// DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem), as the docker CLI reads it.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { homedir } from 'node:os'

export const DEFAULT_DOCKER_ENDPOINT = 'unix:///var/run/docker.sock'
/** `--docker` given alone: DOCKER_HOST as the docker CLI reads it, else DEFAULT_DOCKER_ENDPOINT. */
export const DOCKER_FROM_ENV = ''

export interface TlsMaterial {
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
  /** DOCKER_TLS_VERIFY: check the daemon's certificate against ca.pem. */
  verify: boolean
}

export type Endpoint =
  | { kind: 'unix'; socketPath: string; text: string }
  | { kind: 'tcp'; host: string; port: number; tls: TlsMaterial | null; text: string }
  /** agent: the ssh agent's socket (SSH_AUTH_SOCK), which holds the keys; knownHosts: where the host key must be listed. */
  | { kind: 'ssh'; host: string; port: number; user: string | undefined; agent: string | undefined; knownHosts: string[]; text: string }

/** Parses without touching the disk; TLS files are read by loadTls(). */
export function parseEndpoint(text: string, env: Readonly<Record<string, string | undefined>>): Endpoint | { error: string } {
  const t = text.trim()
  if (t.startsWith('unix://')) {
    const path = t.slice('unix://'.length)
    if (!path.startsWith('/')) return { error: `a unix endpoint needs an absolute path, e.g. ${DEFAULT_DOCKER_ENDPOINT}; got "${text}"` }
    return { kind: 'unix', socketPath: path, text: t }
  }
  if (t.startsWith('/')) return { kind: 'unix', socketPath: t, text: `unix://${t}` }
  const ssh = /^ssh:\/\/(?:([^@/:\s]+)@)?(\[[0-9a-fA-F:.]+\]|[^:/[\]@\s]+)(?::(\d{1,5}))?\/?$/.exec(t)
  if (ssh !== null) {
    const port = ssh[3] === undefined ? 22 : Number(ssh[3])
    if (port < 1 || port > 65535) return { error: `port must be 1-65535, got "${text}"` }
    const knownHosts = [join(env.HOME ?? homedir(), '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts']
    return { kind: 'ssh', host: (ssh[2] ?? '').replace(/^\[|\]$/g, ''), port, user: ssh[1], agent: env.SSH_AUTH_SOCK, knownHosts, text: t }
  }
  const m = /^(tcp|http|https):\/\/(\[[0-9a-fA-F:.]+\]|[^:/[\]]+)(?::(\d{1,5}))?\/?$/.exec(t)
  if (m === null) return { error: `must be unix:///path/to/docker.sock, tcp://host:port or ssh://user@host, got "${text}"` }
  const scheme = m[1] ?? 'tcp'
  const host = (m[2] ?? '').replace(/^\[|\]$/g, '')
  const port = m[3] === undefined ? (scheme === 'http' ? 2375 : 2376) : Number(m[3])
  if (port < 1 || port > 65535) return { error: `port must be 1-65535, got "${text}"` }
  const verifyEnv = env.DOCKER_TLS_VERIFY ?? ''
  const verify = verifyEnv !== '' && verifyEnv !== '0'
  const tls = scheme === 'https' || verify || (scheme === 'tcp' && port === 2376)
  return { kind: 'tcp', host, port, tls: tls ? { verify } : null, text: t }
}

/** Reads ca.pem, cert.pem and key.pem from DOCKER_CERT_PATH (default ~/.docker); missing files are left out. */
export function loadTls(ep: Endpoint, env: Readonly<Record<string, string | undefined>>): Endpoint {
  if (ep.kind !== 'tcp' || ep.tls === null) return ep
  const dir = env.DOCKER_CERT_PATH ?? join(homedir(), '.docker')
  const read = (name: string): Buffer | undefined => {
    try {
      return readFileSync(join(dir, name))
    } catch {
      return undefined
    }
  }
  const tls: TlsMaterial = { verify: ep.tls.verify }
  const ca = read('ca.pem')
  const cert = read('cert.pem')
  const key = read('key.pem')
  if (ca !== undefined) tls.ca = ca
  if (cert !== undefined) tls.cert = cert
  if (key !== undefined) tls.key = key
  if (tls.verify && tls.ca === undefined) throw new Error(`DOCKER_TLS_VERIFY is set but ${join(dir, 'ca.pem')} cannot be read`)
  return { ...ep, tls }
}
