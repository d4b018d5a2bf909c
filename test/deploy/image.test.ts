// The image users build from the Dockerfile, run as the README says:
// - the README's `docker run` example and its curl steps, with the token;
//   and the image's HEALTHCHECK healthy once it is ready;
// - what production expects of it: not root, yet reads the Docker socket
//   through the socket's group (--group-add); a read-only root filesystem
//   with the configuration in the /data volume; one worker under
//   `--cpus 1` (the quota, not the host's cores); SIGTERM lets an in-flight
//   request finish and exits 0.
// Containers are started with testcontainers (GenericContainer) on the
// locally built image; its reaper is off (test/deploy/env.ts), so afterAll
// stops them.
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { execFileSync } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Wait } from 'testcontainers'
import type { StartedTestContainer } from 'testcontainers'
import { until } from '../support/poll.ts'
import { BalancerContainer, curl, deployImages, docker, ensureDocker, removeByPrefix, runId, socketGroup } from './env.ts'
import type { Images } from './env.ts'

const RUN = runId('image')
const TOKEN = 'change-me-to-a-long-secret'
let images: Images
let gateway = ''
let upstream: Server
let upPort = 0
const started: StartedTestContainer[] = []

beforeAll(async () => {
  ensureDocker()
  images = await deployImages()
  // The README's upstream is the host, seen from the container as the default bridge's gateway.
  const bridge = await docker('network', 'inspect', 'bridge', '-f', '{{index .Options "com.docker.network.bridge.name"}}')
  // From ip(8): os.networkInterfaces() leaves out a bridge with no container attached (not running).
  gateway = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(execFileSync('ip', ['-4', '-o', 'addr', 'show', bridge], { encoding: 'utf8' }))?.[1] ?? ''
  if (gateway === '') throw new Error(`no IPv4 address on the default bridge's interface ${bridge}`)
  upstream = createServer((req, res) => {
    const wait = req.url === '/slow' ? 1500 : 0
    setTimeout(() => res.end(`upstream ${req.url ?? ''}\n`), wait)
  })
  await new Promise<void>((r) => upstream.listen(0, gateway, r))
  upPort = (upstream.address() as { port: number }).port
}, 600_000)

afterAll(async () => {
  for (const c of started) await c.stop({ timeout: 1 }).catch(() => undefined)
  await removeByPrefix(RUN)
  await new Promise<void>((r) => (upstream === undefined ? r() : upstream.close(() => r())))
}, 120_000)

function balancer(): BalancerContainer {
  return new BalancerContainer(images.balancer)
    .withName(`${RUN}-${started.length}`)
    .withExposedPorts(80, 9123)
    .withWaitStrategy(Wait.forLogMessage(/"balancer started"/))
    .withStartupTimeout(60_000)
}

async function start(c: BalancerContainer): Promise<StartedTestContainer> {
  const s = await c.start()
  started.push(s)
  return s
}

describe('the image, as the README runs it', () => {
  it('docker run -e BALANCER_TOKEN -p 8000:80 -p 9123:9123, then the README curl steps', async () => {
    const c = await start(balancer().withEnvironment({ BALANCER_TOKEN: TOKEN }))
    const api = `localhost:${c.getMappedPort(9123)}`
    const auth = `Authorization: Bearer ${TOKEN}`
    // The README's first step, with this host's upstream in place of 172.17.0.1:8080.
    const body = JSON.stringify({ address: ':80', upstreams: [{ Target: gateway, Port: upPort }] })
    expect((await curl('-X', 'POST', `${api}/server`, '--data', body)).status, 'no token: refused').toBe(401)
    const created = await curl('-H', auth, '-X', 'POST', `${api}/server`, '--data', body)
    expect(created.status, created.body).toBe(201)
    const answer = await curl(`localhost:${c.getMappedPort(80)}`)
    expect(answer).toEqual({ status: 200, body: 'upstream /\n' })
    // Without a quota the default is one worker per CPU the container may use.
    const status = JSON.parse((await curl('-H', auth, `${api}/status`)).body) as { workers?: unknown[] }
    expect(status.workers?.length ?? 1).toBe(availableParallelism())
    // The image's own HEALTHCHECK (balancer healthcheck, every 10 s) reports it healthy.
    await until(async () => (await docker('inspect', '-f', '{{.State.Health.Status}}', c.getId())) === 'healthy', 40_000, 'the HEALTHCHECK to pass')
    // The latest check's output (an earlier one may have failed while the machine was busy).
    const log = JSON.parse(await docker('inspect', '-f', '{{json .State.Health.Log}}', c.getId())) as Array<{ Output: string }>
    expect(log.at(-1)?.Output.trim()).toBe('200 {"state":"ready"}')
  }, 60_000)
})

describe('the image in production', () => {
  let c: StartedTestContainer
  let api = ''
  const auth = `Authorization: Bearer ${TOKEN}`
  beforeAll(async () => {
    c = await start(
      balancer()
        // Only this run's containers: the daemon is shared, and another test's
        // labelled container would otherwise join the route and get its traffic.
        .withEnvironment({ BALANCER_TOKEN: TOKEN, BALANCER_DOCKER: '1', BALANCER_DOCKER_CONSTRAINT: `name:${RUN}-*`, BALANCER_GRACE: '20s' })
        .withReadOnlyRootfs()
        .withGroupAdd(await socketGroup())
        .withResourcesQuota({ cpu: 1 })
        .withBindMounts([{ source: '/var/run/docker.sock', target: '/var/run/docker.sock', mode: 'ro' }]),
    )
    api = `localhost:${c.getMappedPort(9123)}`
  }, 120_000)

  it('runs as uid 1000, not root, and reads the Docker socket through its group: a labelled container is served', async () => {
    expect((await c.exec(['id', '-u'])).output.trim()).toBe('1000')
    const name = `${RUN}-hello`
    const port = c.getMappedPort(80)
    await docker('run', '-d', '--name', name, '--label', 'balancer.enable=true', '--label', 'balancer.address=:80', images.demo)
    await until(async () => (await curl(`localhost:${port}`).catch(() => ({ status: 0, body: '' }))).body.startsWith('Server name:'), 20_000, 'the labelled container to be served')
    await docker('rm', '-f', name)
  })

  it('--cpus 1 on a machine with more cores starts one worker', async () => {
    const status = JSON.parse((await curl('-H', auth, `${api}/status`)).body) as { workers?: unknown[] }
    expect(status.workers, 'no worker processes: the engine runs in the main process').toBeUndefined()
    expect(availableParallelism()).toBeGreaterThan(1)
  })

  it('--read-only: API writes land in the /data volume', async () => {
    const body = JSON.stringify({ address: ':8080', upstreams: [{ Target: gateway, Port: upPort }] })
    expect(await curl('-H', auth, '-X', 'POST', `${api}/server`, '--data', body)).toMatchObject({ status: 201 })
    expect((await c.exec(['cat', '/data/balancer.json'])).output).toContain(`"Port": ${upPort}`)
    expect((await c.exec(['touch', '/app/x'])).exitCode, 'the root filesystem is read-only').not.toBe(0)
  })

  it('SIGTERM (docker stop): the in-flight request finishes, the process exits 0 within the grace period', async () => {
    const body = JSON.stringify({ address: ':80', upstreams: [{ Target: gateway, Port: upPort }] })
    await curl('-H', auth, '-X', 'PUT', `${api}/server/:80`, '--data', body)
    await until(async () => (await curl(`localhost:${c.getMappedPort(80)}/`).catch(() => ({ status: 0, body: '' }))).body === 'upstream /\n', 10_000, 'the route to the host upstream')
    const inflight = curl(`localhost:${c.getMappedPort(80)}/slow`)
    await until(
      async () => (await docker('exec', c.getId(), 'sh', '-c', 'cat /proc/net/tcp /proc/net/tcp6')).includes(`:${upPort.toString(16).toUpperCase().padStart(4, '0')} 01`),
      5000,
      'the slow request at the upstream',
    )
    const t0 = Date.now()
    await docker('stop', '-t', '30', c.getId())
    const took = Date.now() - t0
    expect(await inflight).toEqual({ status: 200, body: 'upstream /slow\n' })
    expect(await docker('inspect', '-f', '{{.State.ExitCode}}', c.getId())).toBe('0')
    expect(took).toBeLessThan(30_000)
    console.log(`[measure] docker stop with a 1.5 s request in flight: exited 0 after ${took} ms`)
  }, 60_000)
})

describe('the image size', () => {
  it('holds no dev dependencies; its size is reported', async () => {
    const size = Number(await docker('image', 'inspect', '-f', '{{.Size}}', images.balancer))
    const base = Number(await docker('image', 'inspect', '-f', '{{.Size}}', 'node:26-slim'))
    console.log(`[measure] image ${images.balancer}: ${(size / 1e6).toFixed(1)} MB, of which ${((size - base) / 1e6).toFixed(1)} MB on top of node:26-slim`)
    // The listing only: no balancer needs to start for it.
    const ls = await docker('run', '--rm', '--name', `${RUN}-ls`, '--entrypoint', 'ls', images.balancer, '/app/node_modules')
    for (const dev of ['vitest', 'typescript', 'testcontainers', '@types']) expect(ls.split('\n')).not.toContain(dev)
    expect(ls.split('\n')).toContain('fastify')
  })
})
