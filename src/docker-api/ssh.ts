// The ssh:// transport: an http.Agent whose every connection is `docker
// system dial-stdio` run on the remote host over SSH, as the docker CLI does
// it, with the keys of the ssh agent (SSH_AUTH_SOCK) and the host key checked
// against known_hosts (StrictHostKeyChecking: an unknown or changed key is
// refused). The requests go through dockerode as plain HTTP over it.
//
// Why not docker-modem's own ssh transport (protocol 'ssh'):
// - It cannot build its request URL on this Node: url.format() writes
//   `ssh:` without `//`, so the address becomes `ssh:127.0.0.1:22022127.0.0.1`
//   and url.resolve() throws ERR_INVALID_ARG_VALUE ("Invalid port in url")
//   before anything is sent.
// - It accepts any host key (ssh2 without a hostVerifier): whoever answers
//   on the address gets the daemon's API calls.

import { createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type http from 'node:http'
import type { Duplex } from 'node:stream'
import { Client } from 'ssh2'

export interface SshTarget {
  host: string
  port: number
  user: string
  /** The ssh agent's socket (SSH_AUTH_SOCK); undefined: no agent, the connection fails to authenticate. */
  agent: string | undefined
  /** known_hosts files, in order; the first that names the host decides. */
  knownHosts: readonly string[]
  /** Bounds the SSH handshake. */
  readyTimeoutMs: number
}

/** An http.Agent for dockerode: each connection is a new SSH session running `docker system dial-stdio`. */
export function sshAgent(t: SshTarget): http.Agent {
  // node:http comes from the builtin table, not an import: an ES import of it runs its export getters, and WebSocket's loads undici (16 MiB; test/architecture.test.ts).
  const agent = new (process.getBuiltinModule('node:http').Agent)({ keepAlive: false })
  const create = (_opts: unknown, done: (err: Error | null, stream?: Duplex) => void): undefined => {
    const conn = new Client()
    let settled = false
    let denied = false
    const fail = (err: Error): void => {
      conn.end()
      if (settled) return
      settled = true
      const name = t.port === 22 ? t.host : `[${t.host}]:${t.port}`
      done(
        denied
          ? new Error(`the SSH host key of ${name} is not in ${t.knownHosts.join(' or ')}: check it, then add it (ssh-keyscan -p ${t.port} ${t.host} >> ~/.ssh/known_hosts)`, { cause: err })
          : err,
      )
    }
    conn.once('ready', () => {
      conn.exec('docker system dial-stdio', (err, stream) => {
        if (err) return fail(err)
        settled = true
        stream.once('close', () => conn.end())
        done(null, stream)
      })
    })
    conn.on('error', fail)
    conn.connect({
      host: t.host,
      port: t.port,
      username: t.user,
      readyTimeout: t.readyTimeoutMs,
      ...(t.agent === undefined ? {} : { agent: t.agent }),
      hostVerifier: (key: Buffer) => {
        denied = !knownKey(t, key)
        return !denied
      },
    })
    return undefined
  }
  ;(agent as unknown as { createConnection: typeof create }).createConnection = create
  return agent
}

/** Whether known_hosts lists this key for the host (`host`, or `[host]:port` off port 22; plain or hashed names). */
export function knownKey(t: Pick<SshTarget, 'host' | 'port' | 'knownHosts'>, key: Buffer): boolean {
  const name = t.port === 22 ? t.host : `[${t.host}]:${t.port}`
  const blob = key.toString('base64')
  for (const file of t.knownHosts) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/)
      if (f.length < 3 || f[0]?.startsWith('#') || f[0]?.startsWith('@')) continue
      if (!namesHost(f[0] ?? '', name)) continue
      if (f[2] === blob) return true
    }
  }
  return false
}

function namesHost(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt = '', hash = ''] = field.split('|')
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash
  }
  return field.split(',').includes(name)
}
