// DOCKER_HOST=ssh://user@host:port, as the docker CLI takes it: a real sshd
// (Debian's openssh-server) on a loopback port the test opens, a key held by a
// real ssh-agent (SSH_AUTH_SOCK), the host key in a known_hosts the test
// writes; on the far side `docker system dial-stdio` reaches the real Engine.
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DOCKER_FROM_ENV } from '../../src/docker-api/endpoint.ts'
import type { Server } from '../../src/model/types.ts'
import { startSources } from '../../src/sources/start.ts'
import { freePort } from '../e2e/harness.ts'
import { until } from '../support/poll.ts'
import { WEB_IMAGE, buildImages, cleanup, docker, ensureDocker, runId } from './docker-env.ts'

const RUN = runId('ssh')
const dir = mkdtempSync(join(tmpdir(), 'balancer-ssh-'))
const home = join(dir, 'home')
const stranger = join(dir, 'stranger')
const agentSock = join(dir, 'agent.sock')
const user = userInfo().username
let port = 0
let sshd: ChildProcess | null = null
let agent: ChildProcess | null = null

const reachable = (p: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect(p, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })

beforeAll(async () => {
  ensureDocker()
  await buildImages()
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')])
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'user_key')])
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'user_key.pub')), { mode: 0o600 })
  port = await freePort()
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      'PidFile none',
      '',
    ].join('\n'),
  )
  // sshd's privilege separation directory; Debian's package makes it at boot, not at install.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })
  sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] })
  agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' })
  await until(() => reachable(port), 10_000, 'sshd listening')
  await until(
    async () => {
      try {
        execFileSync('ssh-add', ['-q', join(dir, 'user_key')], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'ignore' })
        return true
      } catch {
        return false
      }
    },
    10_000,
    'the key in the ssh agent',
  )
  mkdirSync(join(home, '.ssh'), { recursive: true })
  mkdirSync(join(stranger, '.ssh'), { recursive: true })
  const [type, key] = readFileSync(join(dir, 'host_key.pub'), 'utf8').split(' ')
  writeFileSync(join(home, '.ssh', 'known_hosts'), `[127.0.0.1]:${port} ${type} ${key}\n`)
}, 300_000)

afterAll(async () => {
  sshd?.kill()
  agent?.kill()
  await cleanup(RUN)
}, 120_000)

function sources(env: Record<string, string>) {
  const published: Server[][] = []
  const reports: Array<Error | null> = []
  const running = startSources(
    { docker: DOCKER_FROM_ENV, swarm: false, dockerResyncMs: 30_000 },
    pino({ level: 'silent' }),
    (_origin, servers) => published.push(servers),
    (_origin, err) => reports.push(err),
    env,
  )
  return { running, reports, serves: (addr: string): boolean => published.some((servers) => servers.some((s) => s.address === addr)) }
}

describe('Docker over SSH', () => {
  it('DOCKER_HOST=ssh://user@127.0.0.1:PORT with --docker alone: lists and follows events through `docker system dial-stdio`', async () => {
    const s = sources({ DOCKER_HOST: `ssh://${user}@127.0.0.1:${port}`, SSH_AUTH_SOCK: agentSock, HOME: home })
    try {
      const addr = `127.0.0.1:${await freePort()}`
      // Started after the source has listed: only the events stream can bring it.
      await until(() => s.reports.includes(null), 20_000, 'the first listing over SSH')
      await docker('run', '-d', '--name', `${RUN}-a`, '--label', 'balancer.enable=true', '--label', `balancer.address=${addr}`, '--label', `balancer-test=${RUN}`, WEB_IMAGE)
      await until(() => s.serves(addr), 10_000, 'the container published')
      expect(s.reports.filter((e) => e !== null)).toEqual([])
    } finally {
      await s.running.stop()
    }
  })

  it('refuses a host whose key is not in known_hosts, and says how to add it', async () => {
    const s = sources({ DOCKER_HOST: `ssh://${user}@127.0.0.1:${port}`, SSH_AUTH_SOCK: agentSock, HOME: stranger })
    try {
      await until(() => s.reports.some((e) => e !== null), 20_000, 'the refusal reported')
      const message = String(s.reports.find((e) => e !== null)?.message)
      expect(message).toContain(`the SSH host key of [127.0.0.1]:${port} is not in ${join(stranger, '.ssh', 'known_hosts')}`)
      expect(message).toContain('ssh-keyscan')
    } finally {
      await s.running.stop()
    }
  })
})
