// Traffic to Swarm tasks through a balancer running where it runs in
// production: in a container on the service's overlay network, with the
// Docker socket mounted (the rig process, test/sources/rig-main.ts, on the
// project's own Node). The test reaches it only through its port published on
// 127.0.0.1; the balancer reaches the tasks on the overlay network.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { until } from '../support/poll.ts'
import { NODE_IN_IMAGE, REPO, RUNTIME_IMAGE, WEB_IMAGE, buildImages, buildRuntimeImage, cleanup, docker, ensureDocker, runId } from './docker-env.ts'
import { firstAnswer, get, moreAnswers, steadyLoad } from './load.ts'

const RUN = runId('straffic')
const NET = `${RUN}-net`
const SERVICE = `${RUN}-web`
let port = 0

beforeAll(async () => {
  ensureDocker()
  await Promise.all([buildImages(), buildRuntimeImage()])
  await docker('network', 'create', '--driver', 'overlay', '--attachable', '--label', `balancer-test=${RUN}`, NET)
  const labels = { 'balancer.enable': 'true', 'balancer.address': ':8000', 'balancer.port': '8080', 'balancer-test': RUN }
  await docker(
    'service',
    'create',
    '--detach',
    '--quiet',
    '--no-resolve-image',
    '--name',
    SERVICE,
    '--network',
    NET,
    '--replicas',
    '2',
    '--env',
    'DRAIN=1',
    '--stop-grace-period',
    '5s',
    '--container-label',
    `balancer-test=${RUN}`,
    ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
    WEB_IMAGE,
  )
  await docker(
    'run',
    '-d',
    '--name',
    `${RUN}-balancer`,
    '--label',
    `balancer-test=${RUN}`,
    '--network',
    NET,
    '--publish',
    '127.0.0.1::8000',
    '--volume',
    '/var/run/docker.sock:/var/run/docker.sock',
    '--volume',
    `${REPO}:/app:ro`,
    '--workdir',
    '/app',
    // Only this run's services: the daemon is shared, and another labelled
    // service on :8000 would otherwise join the route.
    RUNTIME_IMAGE,
    NODE_IN_IMAGE,
    '/app/test/sources/rig-main.ts',
    '--swarm',
    '--swarm-constraint',
    `label:balancer-test=${RUN}`,
  )
  const published = await docker('port', `${RUN}-balancer`, '8000/tcp')
  port = Number(/127\.0\.0\.1:(\d+)/.exec(published)?.[1] ?? 0)
}, 300_000)

afterAll(async () => {
  const logs = await docker('logs', '--tail', '20', `${RUN}-balancer`).catch(() => '')
  if (logs.includes('"level":50')) console.log(`balancer container log tail:\n${logs}`)
  await cleanup(RUN)
}, 120_000)

async function distinctBodies(n: number): Promise<Set<string>> {
  const seen = new Set<string>()
  for (let i = 0; i < n; i++) seen.add((await get(port)).body)
  return seen
}

/** Waits (bounded) until 12 requests in a row are answered by exactly n distinct tasks. */
async function tasksAnswering(n: number): Promise<void> {
  let seen = new Set<string>()
  try {
    await until(
      async () => {
        seen = await distinctBodies(12)
        return seen.size === n
      },
      45_000,
      `${n} tasks answering`,
    )
  } catch (err) {
    throw new Error(`expected ${n} tasks answering, saw ${JSON.stringify([...seen])}`, { cause: err })
  }
}

describe('traffic to Swarm tasks through a balancer in a container', () => {
  it('reaches every task, follows a scale from 2 to 3 and back to 1', async () => {
    await firstAnswer(port, (r) => r.status === 200, 30_000, 'a first answer from a task')
    await tasksAnswering(2)
    for (const n of [3, 1, 2]) {
      const t0 = Date.now()
      await docker('service', 'scale', '--detach', `${SERVICE}=${n}`)
      await tasksAnswering(n)
      console.log(`[measure] swarm through the balancer: scaled to ${n}, exactly ${n} tasks answering ${Date.now() - t0} ms after "docker service scale"`)
    }
  }, 120_000)

  it('a rolling update (docker service update --force) under steady load loses no request', async () => {
    await tasksAnswering(2)
    const load = steadyLoad(port, 4, 120_000)
    await moreAnswers(load, 100)
    const t0 = Date.now()
    await docker('service', 'update', '--force', '--quiet', SERVICE)
    const took = Date.now() - t0
    await moreAnswers(load, 200)
    const res = await load.stop()
    console.log(`[measure] swarm rolling update (${took} ms) under load: ${res.ok} ok, ${res.failed} failed ${JSON.stringify(res.failures)}; answered by ${Object.keys(res.byBody).length} tasks`)
    expect(Object.keys(res.byBody).length).toBeGreaterThanOrEqual(4)
    expect(res.failed).toBe(0)
  }, 120_000)
})
