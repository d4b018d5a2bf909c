// A real ZooKeeper (Debian's zookeeper) for one test file, standalone, run
// straight from its jar with a generated zoo.cfg: free loopback port, temp
// data directory, no admin server, short session timeouts so expiry tests
// are quick.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePorts } from './ports.ts'
import { requireBinary, retryUntil, ServiceProcess } from './process.ts'

const JAVA = '/usr/bin/java'
const JAR = '/usr/share/java/zookeeper.jar'
const CONF = '/etc/zookeeper/conf'

export interface ZooKeeper {
  /** `127.0.0.1:PORT`. */
  readonly endpoint: string
  readonly port: number
  readonly proc: ServiceProcess
  /** Sends a four-letter-word command (srvr, cons, ...) and resolves with the answer. */
  fourLetter(cmd: string): Promise<string>
  stop(): Promise<void>
  restart(): Promise<void>
  freeze(): void
  resume(): void
  close(): Promise<void>
}

export interface ZooKeeperOptions {
  /** ms; sessions are granted between 2 and 20 ticks. Default 200 (0.4-4 s sessions). */
  tickTime?: number
}

export async function startZooKeeper(opts: ZooKeeperOptions = {}): Promise<ZooKeeper> {
  requireBinary(JAR, 'zookeeper', 'zookeeper')
  requireBinary(JAVA, 'default-jre-headless', 'java (for zookeeper)')
  const dir = mkdtempSync(join(tmpdir(), 'balancer-zk-'))
  const [port] = (await freePorts(1)) as [number]
  const tick = opts.tickTime ?? 200
  const cfg = join(dir, 'zoo.cfg')
  writeFileSync(
    cfg,
    [
      `tickTime=${tick}`,
      `dataDir=${join(dir, 'data')}`,
      `clientPort=${port}`,
      'clientPortAddress=127.0.0.1',
      'admin.enableServer=false',
      '4lw.commands.whitelist=ruok,srvr,stat,cons,mntr,wchc',
      `minSessionTimeout=${2 * tick}`,
      `maxSessionTimeout=${20 * tick}`,
      'maxClientCnxns=0',
      '',
    ].join('\n'),
  )
  const fourLetter = (cmd: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1')
      let out = ''
      s.setEncoding('utf8')
      s.setTimeout(1000, () => s.destroy(new Error(`${cmd}: no answer`)))
      s.on('connect', () => s.end(cmd))
      s.on('data', (d: string) => (out += d))
      s.on('error', reject)
      s.on('close', () => resolve(out))
    })
  const proc = new ServiceProcess({
    name: 'zookeeper',
    bin: JAVA,
    pkg: 'default-jre-headless',
    cwd: dir,
    logFile: join(dir, 'zookeeper.log'),
    args: [
      '-Xmx256m',
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1',
      `-Dzookeeper.log.dir=${dir}`,
      '-Dzookeeper.root.logger=WARN,CONSOLE',
      '-cp',
      `${CONF}:${JAR}`,
      'org.apache.zookeeper.server.ZooKeeperServerMain',
      cfg,
    ],
    ready: () => retryUntil('zookeeper', 20_000, async () => (await fourLetter('srvr')).includes('Mode: standalone')),
  })
  await proc.start()
  return {
    endpoint: `127.0.0.1:${port}`,
    port,
    proc,
    fourLetter,
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
