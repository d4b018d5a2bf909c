// The Docker endpoint forms users give, through the real Engine: DOCKER_HOST
// as a unix socket and as tcp:// (a plain TCP listener on loopback that the
// test opens in front of the daemon's socket), `--docker` alone following
// DOCKER_HOST as the docker CLI does, an explicit endpoint winning over a
// DOCKER_HOST in the process environment (the client library reads that
// variable on its own), and the events stream closed on shutdown. TLS
// (DOCKER_TLS_VERIFY / DOCKER_CERT_PATH) is docker-tls.test.ts.
import { createConnection, createServer } from 'node:net'
import type { Server as NetServer, Socket } from 'node:net'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DockerClient } from '../../src/docker-api/client.ts'
import { DOCKER_FROM_ENV, parseEndpoint } from '../../src/docker-api/endpoint.ts'
import { startSources } from '../../src/sources/start.ts'
import type { Server } from '../../src/model/types.ts'
import { freePort } from '../e2e/harness.ts'
import { until } from '../support/poll.ts'
import { WEB_IMAGE, buildImages, cleanup, docker, ensureDocker, runId } from './docker-env.ts'

const RUN = runId('endpoints')
const SOCKET = '/var/run/docker.sock'
let proxy: NetServer
let port = 0
/** Client connections the TCP proxy holds open right now, and has ever accepted. */
const open = new Set<Socket>()
let accepted = 0

beforeAll(async () => {
  ensureDocker()
  await buildImages()
  proxy = createServer((down) => {
    accepted++
    open.add(down)
    const up = createConnection(SOCKET)
    down.pipe(up).pipe(down)
    const drop = (): void => {
      down.destroy()
      up.destroy()
      open.delete(down)
    }
    down.on('error', drop).on('close', drop)
    up.on('error', drop).on('close', drop)
  })
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
  port = (proxy.address() as { port: number }).port
}, 300_000)

afterAll(async () => {
  for (const s of open) s.destroy()
  proxy?.close()
  await cleanup(RUN)
}, 120_000)

/** Runs the sources as main.ts does, with `--docker` alone (DOCKER_FROM_ENV) unless an endpoint is given. */
function sources(env: Record<string, string>, endpoint: string = DOCKER_FROM_ENV) {
  const published: Server[][] = []
  const reports: Array<Error | null> = []
  const running = startSources(
    { docker: endpoint, swarm: false, dockerResyncMs: 30_000 },
    pino({ level: 'silent' }),
    (_origin, servers) => published.push(servers),
    (_origin, err) => reports.push(err),
    env,
  )
  const serves = (addr: string): boolean => published.some((servers) => servers.some((s) => s.address === addr))
  return { running, published, reports, serves }
}

async function labelled(name: string): Promise<string> {
  const addr = `127.0.0.1:${await freePort()}`
  await docker('run', '-d', '--name', `${RUN}-${name}`, '--label', 'balancer.enable=true', '--label', `balancer.address=${addr}`, '--label', `balancer-test=${RUN}`, WEB_IMAGE)
  return addr
}

describe('Docker endpoints', () => {
  it('DOCKER_HOST=unix://... with --docker alone', async () => {
    const s = sources({ DOCKER_HOST: `unix://${SOCKET}` })
    try {
      const addr = await labelled('unix')
      await until(() => s.serves(addr), 10_000, 'the container published')
      expect(s.reports.filter((e) => e !== null)).toEqual([])
    } finally {
      await s.running.stop()
    }
  })

  it('DOCKER_HOST=tcp://127.0.0.1:PORT (plain TCP) with --docker alone: everything goes through that port, and shutdown closes the events stream', async () => {
    const before = accepted
    const s = sources({ DOCKER_HOST: `tcp://127.0.0.1:${port}` })
    try {
      const addr = await labelled('tcp')
      await until(() => s.serves(addr), 10_000, 'the container published')
      expect(accepted).toBeGreaterThan(before)
      expect(s.reports.filter((e) => e !== null)).toEqual([])
      // The events stream holds a connection open while the source runs.
      expect(open.size).toBeGreaterThan(0)
    } finally {
      await s.running.stop()
    }
    await until(() => open.size === 0, 5000, 'every connection through the proxy closed after stop')
  })

  it('an explicit endpoint wins over DOCKER_HOST, in the environment given and in the process environment', async () => {
    // A port nothing listens on: a client that followed it would fail.
    const dead = `tcp://127.0.0.1:${await freePort()}`
    const ep = parseEndpoint(`unix://${SOCKET}`, {})
    if ('error' in ep) throw new Error(ep.error)
    // The client library reads DOCKER_HOST from the process environment when a client is made: only then is it set.
    const saved = process.env.DOCKER_HOST
    process.env.DOCKER_HOST = dead
    let c: DockerClient
    let s: ReturnType<typeof sources>
    try {
      c = new DockerClient({ endpoint: ep })
      s = sources({ DOCKER_HOST: dead }, `tcp://127.0.0.1:${port}`)
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST
      else process.env.DOCKER_HOST = saved
    }
    try {
      expect(Array.isArray(await c.listContainers({ label: [`balancer-test=${RUN}`] }, AbortSignal.timeout(10_000)))).toBe(true)
      const addr = await labelled('explicit')
      await until(() => s.serves(addr), 10_000, 'the container published')
      expect(s.reports.filter((e) => e !== null)).toEqual([])
    } finally {
      c.close()
      await s.running.stop()
    }
  })

  it('a DOCKER_HOST it cannot use is refused before anything starts, naming DOCKER_HOST', () => {
    expect(() => sources({ DOCKER_HOST: 'ftp://x' })).toThrow(/^DOCKER_HOST: must be unix:/)
  })

  it('a daemon that is not there is reported by the source, with the endpoint, and retried', async () => {
    const dead = `tcp://127.0.0.1:${await freePort()}`
    const s = sources({ DOCKER_HOST: dead })
    try {
      await until(() => s.reports.some((e) => e !== null), 10_000, 'the failure reported')
      expect(String(s.reports.find((e) => e !== null)?.message)).toContain(`cannot reach the Docker daemon at ${dead}`)
    } finally {
      await s.running.stop()
    }
  })
})
