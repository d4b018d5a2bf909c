// Traffic through the real data path (sources -> merge -> compile -> Engine,
// test/sources/rig.ts) to real containers: the balancer runs on the host, so
// it reaches containers on the bridge network. Each test listens on its own
// loopback port (balancer.address) and sends traffic only there; the rig
// discovers only this run's containers (--docker-constraint), so neither its
// listeners nor its health checks reach another test's containers on the
// shared daemon.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../e2e/harness.ts'
import { parseConstraint } from '../../src/model/constraint.ts'
import { until } from '../support/poll.ts'
import { WEB_HEALTH_IMAGE, WEB_IMAGE, buildImages, cleanup, docker, ensureDocker, runId } from './docker-env.ts'
import { firstAnswer, get, moreAnswers, steadyLoad } from './load.ts'
import type { Rig } from './rig.ts'
import { startRig } from './rig.ts'

const RUN = runId('dtraffic')
let rig: Rig

beforeAll(async () => {
  ensureDocker()
  await buildImages()
  const mine = parseConstraint(`label:balancer-test=${RUN}`)
  if ('error' in mine) throw new Error(mine.error)
  rig = await startRig({ docker: 'unix:///var/run/docker.sock', swarm: false, dockerResyncMs: 30_000, dockerConstraint: mine })
}, 300_000)

afterAll(async () => {
  await rig?.stop()
  await cleanup(RUN)
}, 120_000)

function labels(port: number, extra: Record<string, string> = {}): string[] {
  return Object.entries({ 'balancer.enable': 'true', 'balancer.address': `127.0.0.1:${port}`, 'balancer-test': RUN, ...extra }).flatMap(([k, v]) => ['--label', `${k}=${v}`])
}

async function web(name: string, port: number, opts: { image?: string; env?: Record<string, string>; labels?: Record<string, string> } = {}): Promise<void> {
  const env = Object.entries({ NAME: name, ...opts.env }).flatMap(([k, v]) => ['--env', `${k}=${v}`])
  await docker('run', '-d', '--name', name, ...env, ...labels(port, opts.labels), opts.image ?? WEB_IMAGE)
}

describe('traffic to discovered containers', () => {
  it('a labelled container gets traffic within a second of starting', async () => {
    const port = await freePort()
    const name = `${RUN}-first`
    const t0 = Date.now()
    await web(name, port)
    const answered = await firstAnswer(port, (r) => r.status === 200 && r.body === name, 5000, 'the first answer from the container')
    const startedAt = Date.parse(await docker('inspect', '-f', '{{.State.StartedAt}}', name))
    console.log(`[measure] docker traffic: first answer through the balancer ${answered - startedAt} ms after the container started (${answered - t0} ms after "docker run" was called)`)
    expect(answered - startedAt).toBeLessThan(1000)
  })

  it('two containers share one route by weight (1:3)', async () => {
    const port = await freePort()
    await web(`${RUN}-w1`, port, { labels: { 'balancer.weight': '1' } })
    await web(`${RUN}-w3`, port, { labels: { 'balancer.weight': '3' } })
    await firstAnswer(port, (r) => r.body === `${RUN}-w1`, 5000, 'the first container')
    await firstAnswer(port, (r) => r.body === `${RUN}-w3`, 5000, 'the second container')
    const counts: Record<string, number> = {}
    for (let i = 0; i < 400; i++) {
      const r = await get(port)
      counts[r.body] = (counts[r.body] ?? 0) + 1
    }
    console.log(`[measure] weights 1:3 over 400 requests: ${JSON.stringify(counts)}`)
    expect((counts[`${RUN}-w1`] ?? 0) + (counts[`${RUN}-w3`] ?? 0)).toBe(400)
    expect(counts[`${RUN}-w1`]).toBeGreaterThanOrEqual(90)
    expect(counts[`${RUN}-w1`]).toBeLessThanOrEqual(110)
  })

  it('docker stop under steady load loses no request', async () => {
    const port = await freePort()
    await web(`${RUN}-stay`, port)
    await web(`${RUN}-leave`, port, { env: { DRAIN: '2' } })
    await firstAnswer(port, (r) => r.body === `${RUN}-stay`, 5000, 'the staying container')
    await firstAnswer(port, (r) => r.body === `${RUN}-leave`, 5000, 'the leaving container')
    const load = steadyLoad(port, 4)
    await moreAnswers(load, 100)
    const before = load.result.byBody[`${RUN}-leave`] ?? 0
    await docker('stop', '-t', '10', `${RUN}-leave`)
    await moreAnswers(load, 100)
    const res = await load.stop()
    console.log(`[measure] docker stop under load: ${res.ok} ok, ${res.failed} failed ${JSON.stringify(res.failures)}; by container ${JSON.stringify(res.byBody)}`)
    expect(before).toBeGreaterThan(0)
    expect(res.failed).toBe(0)
  })

  it('docker stop of an app that exits at once on SIGTERM, under steady load', async () => {
    const port = await freePort()
    await web(`${RUN}-stay2`, port)
    await web(`${RUN}-abrupt`, port, { env: { DRAIN: '0' } })
    await firstAnswer(port, (r) => r.body === `${RUN}-abrupt`, 5000, 'the abrupt container')
    const load = steadyLoad(port, 4)
    await moreAnswers(load, 100)
    await docker('stop', '-t', '10', `${RUN}-abrupt`)
    await moreAnswers(load, 100)
    const res = await load.stop()
    console.log(`[measure] docker stop (app exits at once) under load: ${res.ok} ok, ${res.failed} failed ${JSON.stringify(res.failures)}`)
    expect(res.failed).toBe(0)
  })

  it('an unhealthy container gets no request', async () => {
    const port = await freePort()
    await web(`${RUN}-healthy`, port, { image: WEB_HEALTH_IMAGE })
    await web(`${RUN}-unhealthy`, port, { image: WEB_HEALTH_IMAGE, env: { UNHEALTHY: '1' } })
    await firstAnswer(port, (r) => r.body === `${RUN}-healthy`, 10_000, 'the healthy container')
    await until(async () => (await docker('inspect', '-f', '{{.State.Health.Status}}', `${RUN}-unhealthy`)) === 'unhealthy', 10_000, 'Docker to judge the container unhealthy')
    const bodies = new Set<string>()
    for (let i = 0; i < 100; i++) bodies.add((await get(port)).body)
    expect([...bodies]).toEqual([`${RUN}-healthy`])
  })
})
