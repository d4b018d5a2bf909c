// Route rules from labels on real containers, through the real data path
// (sources -> merge -> compile -> Engine, test/sources/rig.ts). The web
// container serves its name at `/` only, so a request under a PathPrefix is
// answered only when StripPrefix took the prefix off.
import { execFileSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../e2e/harness.ts'
import { httpGet } from '../support/client.ts'
import { until } from '../support/poll.ts'
import { WEB_IMAGE, buildImages, cleanup, docker, ensureDocker, runId } from './docker-env.ts'
import type { Rig } from './rig.ts'
import { startRig } from './rig.ts'

const RUN = runId('drules')
let rig: Rig

beforeAll(async () => {
  ensureDocker()
  await buildImages()
  rig = await startRig({ docker: 'unix:///var/run/docker.sock', swarm: false, dockerResyncMs: 30_000 })
}, 300_000)

afterAll(async () => {
  await rig?.stop()
  await cleanup(RUN)
}, 120_000)

async function web(name: string, port: number, extra: Record<string, string>): Promise<void> {
  const labels = Object.entries({ 'balancer.enable': 'true', 'balancer.address': `127.0.0.1:${port}`, 'balancer-test': RUN, ...extra }).flatMap(([k, v]) => ['--label', `${k}=${v}`])
  await docker('run', '-d', '--name', name, '--env', `NAME=${name}`, ...labels, WEB_IMAGE)
}

describe('route rules from container labels', () => {
  it("balancer.rewrite.stripprefix and balancer.headers.* apply to the container's route", async () => {
    const port = await freePort()
    const name = `${RUN}-strip`
    await web(name, port, {
      'balancer.pathprefix': '/shop',
      'balancer.rewrite.stripprefix': 'true',
      'balancer.headers.response.set.x-served-by': 'edge',
      'balancer.headers.framedeny': 'true',
    })
    let last = { status: 0, text: '', headers: {} as Record<string, unknown> }
    await until(
      async () => {
        last = await httpGet(port, '/shop/').catch(() => last)
        return last.status === 200
      },
      10_000,
      'the container answering /shop/ through StripPrefix',
    )
    expect(last.text.trim()).toBe(name)
    expect(last.headers['x-served-by']).toBe('edge')
    expect(last.headers['x-frame-options']).toBe('DENY')
  })

  it('balancer.access.basicauth with htpasswd -B lines asks for credentials', async () => {
    const port = await freePort()
    const name = `${RUN}-auth`
    const alice = execFileSync('htpasswd', ['-nbB', 'alice', 'alice-pw'], { encoding: 'utf8' }).trim()
    const bob = execFileSync('htpasswd', ['-nbB', 'bob', 'bob-pw'], { encoding: 'utf8' }).trim()
    await web(name, port, { 'balancer.access.basicauth': `${alice},${bob}` })
    let status = 0
    await until(
      async () => {
        status = (await httpGet(port, '/').catch(() => ({ status: 0 }))).status
        return status !== 0
      },
      10_000,
      "the container's route to be served",
    )
    expect(status).toBe(401)
    const ok = await httpGet(port, '/', { authorization: `Basic ${Buffer.from('bob:bob-pw').toString('base64')}` })
    expect(ok.status).toBe(200)
    expect(ok.text.trim()).toBe(name)
    expect((await httpGet(port, '/', { authorization: `Basic ${Buffer.from('alice:nope').toString('base64')}` })).status).toBe(401)
  })

  it("balancer.ratelimit.* limits the container's route: Burst through, then 429 with Retry-After", async () => {
    const port = await freePort()
    const name = `${RUN}-limit`
    await web(name, port, { 'balancer.ratelimit.average': '0.01', 'balancer.ratelimit.burst': '2' })
    let first = 0
    await until(
      async () => {
        first = (await httpGet(port, '/').catch(() => ({ status: 0 }))).status
        return first === 200
      },
      10_000,
      "the container's route to be served",
    )
    expect((await httpGet(port, '/')).status).toBe(200)
    const over = await httpGet(port, '/')
    expect(over.status).toBe(429)
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0)
  })
})
