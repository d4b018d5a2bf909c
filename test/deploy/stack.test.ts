// swarm-stack.yml as written, deployed with `docker stack deploy` on the
// single-node Swarm: the demo tasks are served in turn, the API needs the
// token from the Docker secret, each node's API shows that node's state, a
// rolling update of the demo loses nothing under load, and neither does an
// upgrade of the balancer itself (`docker service update --force`, then a
// new image): the new task starts beside the old one on the host network,
// is healthy before the old one is stopped, and the old one drains.
//
// The file's names come from the environment of `docker stack deploy` (its
// defaults are what its header creates): here each is unique to the run,
// and the published ports are free ports of this host, so runs on a shared
// daemon do not meet. The images are the real Dockerfile's and the demo
// built under the name the file uses (test/deploy/env.ts).
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../e2e/harness.ts'
import { until } from '../support/poll.ts'
import { ROOT, curl, deployImages, docker, dockerWith, ensureDocker, removeByPrefix, runId, socketGroup } from './env.ts'
import type { Images } from './env.ts'
import { underLoad } from './load.ts'
import type { LoadResult } from './load.ts'

const RUN = runId('stack')
const TOKEN = 'stack-test-token-0123456789'
let images: Images
let httpPort = 0
let apiPort = 0
let env: Record<string, string> = {}

const STACK_FILE = resolve(ROOT, 'swarm-stack.yml')

beforeAll(async () => {
  ensureDocker()
  images = await deployImages()
  httpPort = await freePort()
  apiPort = await freePort()
  await docker('network', 'create', '--driver', 'bridge', '--scope', 'swarm', `${RUN}-local`)
  const tokenFile = join(mkdtempSync(join(tmpdir(), 'balancer-stack-')), 'token')
  writeFileSync(tokenFile, TOKEN)
  await docker('secret', 'create', `${RUN}-token`, tokenFile)
  env = {
    BALANCER_IMAGE: images.balancer,
    DEMO_IMAGE: images.demo,
    DOCKER_GID: await socketGroup(),
    BALANCER_HTTP_PORT: String(httpPort),
    BALANCER_API_PORT: String(apiPort),
    // The file's HTTPS example (hello-tls) listens here, not on 443/8443.
    BALANCER_HTTPS_PORT: String(await freePort()),
    BALANCER_METRICS_PORT: String(await freePort()),
    BALANCER_LOCAL_NETWORK: `${RUN}-local`,
    BALANCER_TOKEN_SECRET: `${RUN}-token`,
  }
  await dockerWith(env, 'stack', 'deploy', '-c', STACK_FILE, RUN)
  await tasksAnswering(3, 90_000)
}, 300_000)

afterAll(async () => {
  await removeByPrefix(RUN)
}, 120_000)

async function names(n: number): Promise<Set<string>> {
  const seen = new Set<string>()
  for (let i = 0; i < n; i++) {
    const r = await curl(`127.0.0.1:${httpPort}/`).catch(() => ({ status: 0, body: '' }))
    if (r.status === 200) seen.add(r.body.trim())
  }
  return seen
}

/** Polls until 9 requests in a row are answered by exactly n distinct demo tasks. */
async function tasksAnswering(n: number, ms = 60_000): Promise<void> {
  let last = new Set<string>()
  await until(async () => (last = await names(9)).size === n, ms, `${n} demo tasks answering (last: ${JSON.stringify([...last])})`)
}

/** The balancer's tasks and the log tails of their containers, for a failure message. */
async function diagnostics(): Promise<string> {
  const tasks = await docker('service', 'ps', '--no-trunc', '--format', '{{.ID}} {{.Image}} {{.DesiredState}} {{.CurrentState}} {{.Error}}', `${RUN}_balancer`).catch((e: Error) => e.message)
  const ids = (await docker('ps', '-aq', '--filter', `label=com.docker.swarm.service.name=${RUN}_balancer`).catch(() => '')).split('\n').filter(Boolean)
  const logs: string[] = []
  for (const id of ids) {
    const state = await docker('inspect', '-f', '{{.State.StartedAt}} {{.State.FinishedAt}} exit {{.State.ExitCode}} {{json .State.Health}}', id).catch(() => '')
    const tail = await docker('logs', '--tail', '15', id).catch(() => '')
    logs.push(`container ${id}: ${state.slice(0, 600)}\n${tail}`)
  }
  return `tasks:\n${tasks}\n${logs.join('\n')}`
}

function report(what: string, r: { keepAlive: LoadResult; perRequest: LoadResult; ms: number }): void {
  const f = (x: LoadResult): string =>
    `${x.ok} ok, ${x.failed} failed${x.failed > 0 ? ` ${JSON.stringify(x.failures)} first at ${x.firstFailures.map(([t, k]) => `${new Date(t).toISOString()} ${k}`).join(', ')}` : ''}`
  console.log(`[measure] ${what} (${r.ms} ms) under load: keep-alive ${f(r.keepAlive)}; new connection per request ${f(r.perRequest)}`)
}

describe('swarm-stack.yml, deployed as written', () => {
  it('serves the demo tasks in turn; the API needs the token from the secret and shows this node', async () => {
    const seen = await names(12)
    expect(seen.size).toBe(3)
    for (const s of seen) expect(s).toMatch(/^Server name: [0-9a-f]{12}$/)
    const api = `127.0.0.1:${apiPort}`
    expect((await curl(`${api}/`)).status).toBe(401)
    expect((await curl('-H', 'Authorization: Bearer not-the-token-at-all', `${api}/`)).status).toBe(401)
    // This node's balancer: its listener on the published port and the tasks it reaches on the node's bridge:
    // the three demo tasks, and the one task of the HTTPS example (hello-tls, global: one per node).
    const status = await curl('-H', `Authorization: Bearer ${TOKEN}`, `${api}/status`)
    expect(status.status).toBe(200)
    const s = JSON.parse(status.body) as { engine: { listeners: Array<{ port: number }>; upstreams: Array<{ port: number; state: string }> } }
    expect(s.engine.listeners.map((l) => l.port)).toContain(httpPort)
    expect(s.engine.upstreams.filter((u) => u.port === 80 && u.state === 'healthy')).toHaveLength(3 + 1)
  })

  it('a rolling update of the demo service under load loses no request', async () => {
    const r = await underLoad(httpPort, () => docker('service', 'update', '--force', '--quiet', `${RUN}_hello`))
    report('demo rolling update (docker service update --force)', r)
    expect(r.keepAlive.failed + r.perRequest.failed).toBe(0)
    await tasksAnswering(3)
  }, 180_000)

  it('upgrading the balancer itself (docker service update --force) under load loses no request', async () => {
    const before = await docker('service', 'ps', '-q', '--filter', 'desired-state=running', `${RUN}_balancer`)
    const r = await underLoad(httpPort, () => docker('service', 'update', '--force', '--quiet', `${RUN}_balancer`))
    report('balancer upgrade (docker service update --force)', r)
    const after = await docker('service', 'ps', '-q', '--filter', 'desired-state=running', `${RUN}_balancer`)
    expect(after, 'a new balancer task serves').not.toBe(before)
    expect(r.keepAlive.failed + r.perRequest.failed, r.keepAlive.failed + r.perRequest.failed > 0 ? await diagnostics() : '').toBe(0)
  }, 180_000)

  it('a new balancer image under load loses no request', async () => {
    // Another image of the same code: what a release is to Swarm.
    const next = `${images.balancer}-next`
    const dir = mkdtempSync(join(tmpdir(), 'balancer-next-'))
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${images.balancer}\nLABEL org.balancer.release=next\n`)
    await docker('build', '-q', '-t', next, dir)
    const r = await underLoad(httpPort, () => docker('service', 'update', '--image', next, '--quiet', `${RUN}_balancer`))
    report('balancer image change (docker service update --image)', r)
    expect(await docker('service', 'inspect', '-f', '{{.Spec.TaskTemplate.ContainerSpec.Image}}', `${RUN}_balancer`)).toBe(next)
    expect(r.keepAlive.failed + r.perRequest.failed, r.keepAlive.failed + r.perRequest.failed > 0 ? await diagnostics() : '').toBe(0)
    await docker('rmi', next).catch(() => '')
  }, 180_000)
})
