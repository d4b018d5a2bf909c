// A real etcd (Debian's etcd-server) for one test file: its own temp data
// directory and free loopback ports, and the controls outage tests need.
// etcdctl (Debian's etcd-client) writes to it "by hand".

import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePorts } from './ports.ts'
import { requireBinary, retryUntil, ServiceProcess } from './process.ts'

const ETCD = '/usr/bin/etcd'
const ETCDCTL = '/usr/bin/etcdctl'
const run = promisify(execFile)

export interface Etcd {
  /** `127.0.0.1:PORT`, as a store URL wants it. */
  readonly endpoint: string
  readonly dataDir: string
  readonly proc: ServiceProcess
  /** etcdctl (API v3) against this server; resolves with its stdout. */
  ctl(...args: string[]): Promise<string>
  stop(): Promise<void>
  restart(): Promise<void>
  freeze(): void
  resume(): void
  close(): Promise<void>
}

/** alsoListenOn: one more address etcd answers clients on (a test host's link, test/support/netns.ts). */
export async function startEtcd(o: { alsoListenOn?: string } = {}): Promise<Etcd> {
  requireBinary(ETCDCTL, 'etcd-client', 'etcdctl')
  const dir = mkdtempSync(join(tmpdir(), 'balancer-etcd-'))
  const [client, peer] = (await freePorts(2)) as [number, number]
  const clientUrl = `http://127.0.0.1:${client}`
  const peerUrl = `http://127.0.0.1:${peer}`
  const dataDir = join(dir, 'data')
  const proc = new ServiceProcess({
    name: 'etcd',
    bin: ETCD,
    pkg: 'etcd-server',
    cwd: dir,
    logFile: join(dir, 'etcd.log'),
    args: [
      '--name',
      'test',
      '--data-dir',
      dataDir,
      '--listen-client-urls',
      o.alsoListenOn === undefined ? clientUrl : `${clientUrl},http://${o.alsoListenOn}:${client}`,
      '--advertise-client-urls',
      clientUrl,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `test=${peerUrl}`,
      '--logger',
      'zap',
      '--log-level',
      'warn',
    ],
    ready: () =>
      retryUntil('etcd', 15_000, async () => {
        const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) })
        return res.ok && ((await res.json()) as { health?: string }).health === 'true'
      }),
  })
  await proc.start()
  const endpoint = `127.0.0.1:${client}`
  return {
    endpoint,
    dataDir,
    proc,
    async ctl(...args: string[]) {
      const { stdout } = await run(ETCDCTL, ['--endpoints', endpoint, '--command-timeout', '3s', ...args], {
        env: { ...process.env, ETCDCTL_API: '3' },
      })
      return stdout
    },
    stop: () => proc.stop(),
    restart: () => proc.restart(),
    freeze: () => proc.freeze(),
    resume: () => proc.resume(),
    async close() {
      await proc.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
