// Who may receive traffic through discovery, against real containers on the
// real Docker Engine and the real balancer process: --docker-constraint keeps
// out containers the operator does not trust, and they are listed with the
// reason in GET /status.
import { request } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir } from '../e2e/harness.ts'
import type { Running } from '../e2e/harness.ts'
import { until } from '../support/poll.ts'
import { WEB_IMAGE, buildImages, cleanup, docker, ensureDocker, runId } from './docker-env.ts'

const RUN = runId('dtrust')
let bal: Running
let port = 0

function hit(host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false, timeout: 5000 }, (r) => {
      let body = ''
      r.setEncoding('utf8')
      r.on('data', (c: string) => (body += c))
      r.on('end', () => resolve({ status: r.statusCode ?? 0, body: body.trim() }))
    })
    req.on('timeout', () => req.destroy(new Error('ETIMEDOUT')))
    req.on('error', reject)
    req.end()
  })
}

async function status(): Promise<any> {
  const r = await fetch(`${bal.api}/status`)
  return r.json()
}

async function web(name: string, labels: Record<string, string>): Promise<void> {
  const all = { 'balancer.enable': 'true', 'balancer.address': `127.0.0.1:${port}`, 'balancer.port': '8080', 'balancer-test': RUN, ...labels }
  await docker('run', '-d', '--name', name, '--env', `NAME=${name}`, ...Object.entries(all).flatMap(([k, v]) => ['--label', `${k}=${v}`]), WEB_IMAGE)
}

/** Bodies of n requests to host. */
async function answers(host: string, n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push((await hit(host)).body)
  return out
}

beforeAll(async () => {
  ensureDocker()
  await buildImages()
  port = await freePort()
  const cfg = join(tempDir(), 'balancer.json')
  writeFileSync(cfg, '{"servers":[]}\n')
  bal = await startBalancer(['--config', cfg, '--docker', '--docker-resync', '2s', '--docker-constraint', `label:balancer-test=${RUN} && (project:${RUN}-shop || project:${RUN}-blog)`])
}, 300_000)

afterAll(async () => {
  await bal?.stop()
  await cleanup(RUN)
}, 120_000)

describe('--docker-constraint', () => {
  it('a container outside the constraint gets no traffic and is listed as refused with the reason', async () => {
    await web(`${RUN}-shop`, { 'balancer.hosts': 'shop.example.test', 'com.docker.compose.project': `${RUN}-shop` })
    await web(`${RUN}-intruder`, { 'balancer.hosts': 'shop.example.test' })
    await until(async () => (await status()).discovery.refused.some((r: { name: string }) => r.name === `${RUN}-intruder`), 10_000, 'the intruder listed as refused')
    const refused = (await status()).discovery.refused.filter((r: { name: string }) => r.name.startsWith(RUN))
    expect(refused).toEqual([{ origin: 'docker', name: `${RUN}-intruder`, reason: expect.stringContaining('does not match --docker-constraint') }])
    await until(async () => (await hit('shop.example.test')).body === `${RUN}-shop`, 10_000, 'the shop container answering')
    expect(new Set(await answers('shop.example.test', 20))).toEqual(new Set([`${RUN}-shop`]))
    expect(bal.logs.filter((l) => l.name === `${RUN}-intruder` && l.level === 40)).toHaveLength(1)
  })
})
